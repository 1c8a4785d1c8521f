//! The requests behind the `Backend` operations: HEAD with the bucket
//! check, GET into memory, PUT (single or multipart).

use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use crate::backend::{S3Backend, SINGLE_PUT_LIMIT};
use crate::errors::Failure;
use crate::multipart;

/// Tries for a GET whose body breaks off (the SDK's own retries end once
/// the answer has started).
const BODY_ATTEMPTS: u32 = 3;

/// What the server said about an object it stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct Written {
    /// The new version's id on a versioned bucket; `None` on a bucket that
    /// never had versioning, and for the `null` version of a suspended one.
    pub version_id: Option<String>,
    /// Without the quotes S3 puts around it.
    pub e_tag: Option<String>,
}

impl Written {
    pub(crate) fn new(version_id: Option<&str>, e_tag: Option<&str>) -> Written {
        Written {
            version_id: version_id
                .filter(|v| !v.is_empty() && *v != "null")
                .map(str::to_string),
            e_tag: e_tag.map(unquote),
        }
    }
}

/// An ETag as listings and PUT answers spell it, without the quotes.
pub(crate) fn unquote(e_tag: &str) -> String {
    e_tag.trim_matches('"').to_string()
}

enum Download {
    /// Worth fetching again: the connection dropped mid-body.
    BrokeOff(Failure),
    Failed(Failure),
}

impl S3Backend {
    pub(crate) fn saw_bucket(&self) {
        self.bucket_seen.store(true, Ordering::Relaxed);
    }

    /// Makes sure a 404 meant "no such key": asks the bucket once per backend.
    pub(crate) async fn confirm_bucket(&self) -> Result<(), Failure> {
        if self.bucket_seen.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.client.head_bucket().bucket(self.bucket()).send().await {
            Ok(_) => {
                self.saw_bucket();
                Ok(())
            }
            Err(e) => {
                let f = Failure::from_sdk(e);
                Err(if f.is_not_found() {
                    Failure::no_such_bucket()
                } else {
                    f
                })
            }
        }
    }

    /// Size of the object at `key`, or `None`.
    pub(crate) async fn head(&self, key: &str) -> Result<Option<u64>, Failure> {
        Ok(self.head_info(key).await?.map(|h| h.size))
    }

    /// GETs `key` (or a range of it) into memory, refusing more than `limit`
    /// bytes. The SDK retries a request until the answer starts; a body that
    /// breaks off after that is fetched again here.
    pub(crate) async fn get(
        &self,
        key: &str,
        range: Option<String>,
        limit: Option<u64>,
    ) -> Result<Vec<u8>, Failure> {
        let mut attempt = 1;
        loop {
            match self.get_once(key, range.clone(), limit).await {
                Ok(data) => return Ok(data),
                Err(Download::BrokeOff(f)) if attempt < BODY_ATTEMPTS => {
                    tracing::warn!(key, attempt, error = ?f, "download broke off; fetching again");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    attempt += 1;
                }
                Err(Download::BrokeOff(f) | Download::Failed(f)) => return Err(f),
            }
        }
    }

    async fn get_once(
        &self,
        key: &str,
        range: Option<String>,
        limit: Option<u64>,
    ) -> Result<Vec<u8>, Download> {
        let out = self
            .client
            .get_object()
            .bucket(self.bucket())
            .key(key)
            .set_range(range)
            .send()
            .await
            .map_err(|e| Download::Failed(Failure::from_sdk(e)))?;
        self.saw_bucket();
        let announced = out.content_length().and_then(|l| u64::try_from(l).ok());
        if let (Some(announced), Some(limit)) = (announced, limit) {
            if announced > limit {
                return Err(Download::Failed(Failure::local(format!(
                    "the server ignored the Range header and sent {announced} bytes instead of {limit}"
                ))));
            }
        }
        // Trust the announced size for the allocation only up to a sane cap.
        let mut buf = Vec::with_capacity(announced.unwrap_or(0).min(256 << 20) as usize);
        let mut body = out.body;
        loop {
            let chunk = body.try_next().await.map_err(|e| {
                Download::BrokeOff(Failure::local(format!(
                    "the download of {key} broke off: {e}"
                )))
            })?;
            let Some(chunk) = chunk else { break };
            buf.extend_from_slice(&chunk);
            if let Some(limit) = limit.filter(|&l| buf.len() as u64 > l) {
                return Err(Download::Failed(Failure::local(format!(
                    "the server sent more than the {limit} bytes asked for"
                ))));
            }
        }
        match announced {
            Some(n) if n != buf.len() as u64 => Err(Download::BrokeOff(Failure::local(format!(
                "the download of {key} ended after {} of {n} bytes",
                buf.len()
            )))),
            _ => Ok(buf),
        }
    }

    /// PutObject, or a multipart upload above [`SINGLE_PUT_LIMIT`].
    /// `create_only` adds `If-None-Match: *`. The answer's version id tells
    /// whether the bucket keeps versions (see the `create_only` module).
    pub(crate) async fn put(
        &self,
        key: &str,
        data: Bytes,
        create_only: bool,
    ) -> Result<Written, Failure> {
        if data.len() > SINGLE_PUT_LIMIT {
            return multipart::upload(self, key, data, create_only).await;
        }
        let mut req = self
            .client
            .put_object()
            .bucket(self.bucket())
            .key(key)
            .content_type("application/octet-stream")
            .body(ByteStream::from(data));
        if create_only {
            req = req.if_none_match("*");
        }
        let out = crate::throttle::paced(req.customize().disable_payload_signing(), &self.pace)
            .send()
            .await
            .map_err(Failure::from_sdk)?;
        self.saw_bucket();
        Ok(Written::new(out.version_id(), out.e_tag()))
    }
}
