//! The S3 server of these tests is cadang-testkit's (s3s-fs on 127.0.0.1
//! with SigV4), with the bucket [`BUCKET`]; this adds backends with quick
//! retries.

#![allow(dead_code, unused_imports)]

use std::time::Duration;

use cadang_s3::{S3Backend, S3Options, StaticCredentials};
use cadang_testkit::S3Server;
pub use cadang_testkit::{data, ACCESS_KEY, SECRET_KEY, TRUNCATE};

pub const BUCKET: &str = "backups";

pub struct Server(S3Server);

impl std::ops::Deref for Server {
    type Target = S3Server;
    fn deref(&self) -> &S3Server {
        &self.0
    }
}

impl Server {
    /// Starts a server with the bucket [`BUCKET`].
    pub async fn start() -> Server {
        let s = S3Server::start();
        s.create_bucket(BUCKET);
        Server(s)
    }

    /// `s3://BUCKET/PREFIX?endpoint=..` plus `extra` query parameters.
    pub fn url(&self, bucket: &str, prefix: &str, extra: &str) -> String {
        format!("s3://{bucket}/{prefix}?endpoint={}{extra}", self.endpoint())
    }

    /// A backend with the server's keys and quick retries.
    pub fn backend(&self, prefix: &str, extra: &str) -> S3Backend {
        S3Backend::with_options(&self.url(BUCKET, prefix, extra), options(SECRET_KEY)).unwrap()
    }
}

pub fn options(secret: &str) -> S3Options {
    S3Options {
        credentials: Some(StaticCredentials {
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: secret.into(),
            session_token: None,
        }),
        max_attempts: 3,
        connect_timeout: Duration::from_secs(5),
        attempt_timeout: Duration::from_secs(60),
        operation_timeout: Duration::from_secs(120),
        upload_limit: None,
    }
}
