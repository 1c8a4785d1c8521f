//! Turns SDK errors into `BackendError`s that tell the operator what to do.
//!
//! The SDK's own messages ("service error", "dispatch failure") say nothing
//! useful to someone at 3 a.m. in a data center; the S3 error codes do, once
//! they are translated into the action that fixes them.

use std::error::Error as StdError;
use std::io;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use cadang_core::backend::BackendError;

/// What messages need to know about the store.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The URL without secrets.
    pub location: String,
    pub bucket: String,
    /// The endpoint as the operator wrote it, or the AWS default.
    pub endpoint: String,
    pub checksums_when_required: bool,
}

#[derive(Debug)]
enum Cause {
    /// The server answered with an error status.
    Service,
    /// No credentials could be found or loaded (nothing was sent).
    Credentials {
        not_found: bool,
    },
    /// The request never got an answer: DNS, connect, TLS, reset.
    Dispatch,
    Timeout,
    /// The answer was not an S3 answer (a proxy's HTML page, a truncated body).
    Response,
    Other,
}

/// One failed S3 request, classified.
#[derive(Debug)]
pub(crate) struct Failure {
    cause: Cause,
    status: Option<u16>,
    code: Option<String>,
    message: Option<String>,
    bucket_region: Option<String>,
    detail: String,
}

/// The error and its causes, `outer: inner: innermost` (like the SDK's
/// `DisplayErrorContext`, without the Debug dump it appends).
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

fn credentials_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a CredentialsError> {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return Some(c);
        }
        cur = e.source();
    }
    None
}

impl Failure {
    pub(crate) fn from_sdk<E>(e: SdkError<E, HttpResponse>) -> Failure
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let detail = chain(&e);
        let raw = e.raw_response();
        let status = raw.map(|r| r.status().as_u16());
        let bucket_region = raw
            .and_then(|r| r.headers().get("x-amz-bucket-region"))
            .map(str::to_string);
        let cause = match &e {
            SdkError::ServiceError(_) => Cause::Service,
            SdkError::DispatchFailure(_) => match credentials_error(&e) {
                Some(c) => Cause::Credentials {
                    not_found: matches!(c, CredentialsError::CredentialsNotLoaded(_)),
                },
                None => Cause::Dispatch,
            },
            SdkError::TimeoutError(_) => Cause::Timeout,
            SdkError::ResponseError(_) => Cause::Response,
            _ => Cause::Other,
        };
        Failure {
            cause,
            status,
            code: e.code().map(str::to_string),
            message: e.message().map(str::to_string),
            bucket_region,
            detail,
        }
    }

    /// A failure made up locally (a malformed answer, a short body).
    pub(crate) fn local(detail: impl Into<String>) -> Failure {
        Failure {
            cause: Cause::Other,
            status: None,
            code: None,
            message: None,
            bucket_region: None,
            detail: detail.into(),
        }
    }

    /// HeadBucket's 404 (a HEAD has no body, hence no error code).
    pub(crate) fn no_such_bucket() -> Failure {
        Failure {
            cause: Cause::Service,
            status: Some(404),
            code: Some("NoSuchBucket".into()),
            message: None,
            bucket_region: None,
            detail: "NoSuchBucket".into(),
        }
    }

    fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    fn is_service(&self) -> bool {
        matches!(self.cause, Cause::Service)
    }

    /// The key (or, for a HEAD, possibly the bucket) does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        self.is_service()
            && (matches!(self.code(), "NoSuchKey" | "NotFound")
                || (self.status == Some(404) && self.code() != "NoSuchBucket"))
    }

    /// A conditional write lost: the object exists (412), or another
    /// conditional write to the same key is in progress (409).
    pub(crate) fn is_precondition_failed(&self) -> bool {
        self.is_service()
            && (matches!(
                self.code(),
                "PreconditionFailed" | "ConditionalRequestConflict"
            ) || self.status == Some(412))
    }

    /// The server refused the request for lack of permission (which is also
    /// how S3 refuses to delete a version under Object Lock).
    pub(crate) fn is_access_denied(&self) -> bool {
        self.is_service() && (self.code() == "AccessDenied" || self.status == Some(403))
    }

    /// The requested range starts at or past the end of the object.
    pub(crate) fn is_invalid_range(&self) -> bool {
        self.is_service() && (self.code() == "InvalidRange" || self.status == Some(416))
    }

    /// The bucket has no Object Lock configuration (AWS and moto say
    /// `ObjectLockConfigurationNotFoundError`, MinIO and Ceph variants of it).
    pub(crate) fn is_no_lock_configuration(&self) -> bool {
        self.is_service()
            && (self.code().contains("ObjectLockConfiguration")
                || self.code() == "NoSuchObjectLockConfiguration")
    }

    /// The server does not implement a header or operation we sent.
    pub(crate) fn is_not_implemented(&self) -> bool {
        self.is_service() && (self.code() == "NotImplemented" || self.status == Some(501))
    }

    fn service_text(&self) -> String {
        let status = self.status.map(|s| format!("HTTP {s}")).unwrap_or_default();
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => format!("{c}: {m}, {status}"),
            (Some(c), None) => format!("{c}, {status}"),
            _ => status,
        }
    }

    /// The error to report for `op` on `what` (e.g. "read", "index/00ff").
    pub(crate) fn into_error(self, t: &Target, op: &'static str, what: String) -> BackendError {
        let unavailable = |reason: String| BackendError::Unavailable {
            location: t.location.clone(),
            reason,
        };
        let denied = |detail: String| BackendError::PermissionDenied {
            op,
            what: what.clone(),
            detail,
        };
        let io = |msg: String| BackendError::Io {
            op,
            what: what.clone(),
            source: io::Error::other(msg),
        };
        match self.cause {
            Cause::Credentials { not_found: true } => unavailable(
                "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, \
                 or put them in the credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, \
                 profile chosen with AWS_PROFILE)"
                    .into(),
            ),
            Cause::Credentials { not_found: false } => unavailable(format!(
                "the S3 credentials could not be loaded ({}); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY \
                 or the credentials file and AWS_PROFILE",
                self.detail
            )),
            Cause::Dispatch => {
                let mut reason = format!(
                    "could not reach the S3 endpoint {} ({}); check the endpoint in the URL, DNS, the firewall \
                     and any proxy (HTTPS_PROXY), and that the server is running",
                    t.endpoint, self.detail
                );
                if self.detail.contains("certificate") {
                    reason.push_str(
                        "; for a server with a private CA, add the CA to the system trust store or set SSL_CERT_FILE",
                    );
                }
                unavailable(reason)
            }
            Cause::Timeout => unavailable(format!(
                "the S3 endpoint {} did not answer in time ({}); check the network and the server's load",
                t.endpoint, self.detail
            )),
            Cause::Response => io(format!(
                "the server at {} sent an answer that is not S3's ({}); check that the endpoint is the S3 API \
                 port and not a web console or a proxy page",
                t.endpoint, self.detail
            )),
            Cause::Other => io(self.detail),
            Cause::Service => self.service_error(t, unavailable, denied, io),
        }
    }

    fn service_error(
        self,
        t: &Target,
        unavailable: impl Fn(String) -> BackendError,
        denied: impl Fn(String) -> BackendError,
        io: impl Fn(String) -> BackendError,
    ) -> BackendError {
        let text = self.service_text();
        let code = self.code();
        let status = self.status.unwrap_or(0);
        match code {
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" => denied(format!(
                "the S3 credentials were refused ({code}): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY \
                 (or the credentials file and AWS_PROFILE)"
            )),
            "InvalidToken" | "ExpiredToken" | "TokenRefreshRequired" => denied(format!(
                "the S3 session token was refused ({code}): renew AWS_SESSION_TOKEN, or unset it when using \
                 long-term keys"
            )),
            "NoSuchBucket" => unavailable(format!(
                "the bucket \"{}\" does not exist at {}: create it first (e.g. `mc mb` or `aws s3 mb s3://{}`) \
                 or fix the bucket name in the URL",
                t.bucket, t.endpoint, t.bucket
            )),
            "RequestTimeTooSkewed" => unavailable(
                "this machine's clock differs from the S3 server's; fix NTP (check with `timedatectl`), \
                 then run the command again"
                    .into(),
            ),
            "AuthorizationHeaderMalformed" | "PermanentRedirect" | "IllegalLocationConstraintException" => {
                unavailable(self.region_hint(t, &text))
            }
            "XAmzContentSHA256Mismatch" => io(self.checksum_hint(t, &text)),
            _ if self.mentions_object_lock() => io(format!(
                "the bucket \"{}\" cannot keep objects under Object Lock ({text}): Object Lock can only be \
                 switched on when a bucket is created; create a new bucket with Object Lock enabled \
                 (e.g. `aws s3api create-bucket --object-lock-enabled-for-bucket`) and use that one",
                t.bucket
            )),
            c if c.contains("QuotaExceeded") => BackendError::NoSpace {
                what: format!("{} (the bucket's quota is used up: {text})", t.location),
            },
            "" if status == 403 => denied(format!(
                "HTTP 403 without details (a HEAD request): the credentials are wrong or lack permission on \
                 bucket \"{}\"; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the bucket policy",
                t.bucket
            )),
            "" if status == 301 || (status == 400 && self.bucket_region.is_some()) => {
                unavailable(self.region_hint(t, &text))
            }
            "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => denied(format!(
                "{text}; give this user s3:GetObject, s3:PutObject, s3:DeleteObject (and s3:DeleteObjectVersion on a \
                 versioned bucket) and s3:ListBucket on \
                 bucket \"{}\" and the repository prefix",
                t.bucket
            )),
            _ if status == 403 => denied(text),
            _ if !t.checksums_when_required && self.mentions_checksums() => io(self.checksum_hint(t, &text)),
            _ if status >= 500 || code == "SlowDown" => unavailable(format!(
                "the S3 server at {} kept failing after several attempts ({text}); try again later or check \
                 the server",
                t.endpoint
            )),
            _ => io(format!("the S3 server answered {text}")),
        }
    }

    /// A retained write to a bucket without Object Lock.
    fn mentions_object_lock(&self) -> bool {
        let m = self.message.as_deref().unwrap_or("").to_ascii_lowercase();
        self.status == Some(400) && (m.contains("objectlock") || m.contains("object lock"))
    }

    fn mentions_checksums(&self) -> bool {
        let m = format!("{} {}", self.code(), self.message.as_deref().unwrap_or(""))
            .to_ascii_lowercase();
        m.contains("checksum") || m.contains("aws-chunked") || m.contains("trailer")
    }

    fn checksum_hint(&self, t: &Target, text: &str) -> String {
        if t.checksums_when_required {
            format!("the server rejected the request's content checksum ({text})")
        } else {
            format!(
                "the server rejected the request's content checksum ({text}); Ceph RGW 18 and MinIO before \
                 2024 do not understand the checksums this client sends by default: add \
                 checksums=when-required to the repository URL"
            )
        }
    }

    fn region_hint(&self, t: &Target, text: &str) -> String {
        match &self.bucket_region {
            Some(r) => format!(
                "the bucket \"{}\" is in region {r}: add region={r} to the URL ({text})",
                t.bucket
            ),
            None => format!(
                "the bucket \"{}\" is in another region ({text}): add region=REGION to the URL",
                t.bucket
            ),
        }
    }
}

#[cfg(test)]
#[path = "errors_tests.rs"]
mod tests;
