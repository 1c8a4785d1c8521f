//! Building the SDK client: credentials, region, addressing, checksums,
//! retries and timeouts.
//!
//! The credentials chain is built by hand (environment, then the shared
//! credentials file) instead of aws-config's default chain, because the
//! default chain ends with the EC2 instance metadata service: on a machine
//! that is not in EC2 that lookup hangs for seconds per request before the
//! real error ("no credentials") can be reported.

use std::fmt;
use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedCredentialsProvider,
};
use aws_sdk_s3::Client;

use crate::url::S3Url;

/// Long-term or temporary keys handed over by a program (a test, or a caller
/// that reads them from its own secret store). Never parsed from the URL.
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

/// How the client behaves on a slow or failing network.
#[derive(Clone, Debug)]
pub struct S3Options {
    /// `None`: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`,
    /// then the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE` or
    /// `~/.aws/credentials`, profile `AWS_PROFILE`).
    pub credentials: Option<StaticCredentials>,
    /// Attempts per request, first one included (standard retry mode:
    /// exponential backoff with jitter, throttling-aware).
    pub max_attempts: u32,
    pub connect_timeout: Duration,
    /// Limit for one attempt of one request, upload or download included.
    pub attempt_timeout: Duration,
    /// Limit for one request with all its retries.
    pub operation_timeout: Duration,
    /// Paces every upload body through this limiter (`--bwlimit`).
    pub upload_limit: Option<std::sync::Arc<cadang_core::ratelimit::RateLimiter>>,
}

impl Default for S3Options {
    fn default() -> S3Options {
        S3Options {
            credentials: None,
            max_attempts: 6,
            connect_timeout: Duration::from_secs(10),
            // A 24 MiB pack in one PUT at 1 Mbit/s takes ~3.5 minutes. Stalls are caught
            // sooner by the SDK's stalled-stream protection.
            attempt_timeout: Duration::from_secs(300),
            operation_timeout: Duration::from_secs(1200),
            upload_limit: None,
        }
    }
}

/// The region from the URL, else `AWS_REGION`/`AWS_DEFAULT_REGION`, else
/// `us-east-1` (which MinIO and Ceph RGW accept unless configured otherwise).
pub(crate) fn region(url: &S3Url) -> String {
    url.region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
        .or_else(|| {
            std::env::var("AWS_DEFAULT_REGION")
                .ok()
                .filter(|r| !r.is_empty())
        })
        .unwrap_or_else(|| "us-east-1".to_string())
}

pub(crate) fn build(url: &S3Url, options: &S3Options) -> Client {
    let credentials = match &options.credentials {
        Some(c) => SharedCredentialsProvider::new(Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            c.session_token.clone(),
            None,
            "cadang-static",
        )),
        None => SharedCredentialsProvider::new(
            CredentialsProviderChain::first_try(
                "environment",
                EnvironmentVariableCredentialsProvider::new(),
            )
            .or_else(
                "profile file",
                ProfileFileCredentialsProvider::builder().build(),
            ),
        ),
    };
    let (request_checksums, response_checksums) = if url.checksums_when_required {
        (
            RequestChecksumCalculation::WhenRequired,
            ResponseChecksumValidation::WhenRequired,
        )
    } else {
        (
            RequestChecksumCalculation::WhenSupported,
            ResponseChecksumValidation::WhenSupported,
        )
    };
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::v2026_01_12())
        .region(Region::new(region(url)))
        .credentials_provider(credentials)
        .force_path_style(url.path_style)
        .request_checksum_calculation(request_checksums)
        .response_checksum_validation(response_checksums)
        .retry_config(RetryConfig::standard().with_max_attempts(options.max_attempts.max(1)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(options.connect_timeout)
                .operation_attempt_timeout(options.attempt_timeout)
                .operation_timeout(options.operation_timeout)
                .build(),
        );
    if let Some(endpoint) = &url.endpoint {
        config = config.endpoint_url(endpoint);
    }

    Client::from_conf(config.build())
}
