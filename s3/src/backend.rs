//! `S3Backend`: the `Backend` contract on top of S3 requests.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use bytes::Bytes;
use cadang_core::backend::layout::{listed_name, relative_key, what};
use cadang_core::backend::{Backend, BackendError, BackendResult, FileInfo, FileKind};

use crate::client::{self, S3Options};
use crate::errors::{Failure, Target};
use crate::url::S3Url;

/// Objects up to this size go up in one PutObject; larger ones in parts.
/// A default pack (16 MiB of chunks, plus at most one more 8 MiB chunk)
/// fits, so it costs one request instead of five, and servers that build a
/// multipart object by copying its parts (s3s-fs, for one) write it once.
pub const SINGLE_PUT_LIMIT: usize = 32 << 20;

/// A repository in an S3 bucket, under a key prefix.
pub struct S3Backend {
    pub(crate) client: Client,
    url: S3Url,
    pub(crate) target: Target,
    /// Set once the bucket answered; a HEAD 404 cannot tell "no such key"
    /// from "no such bucket" until then.
    pub(crate) bucket_seen: AtomicBool,
    /// Paces upload bodies (`--bwlimit`); see the `throttle` module.
    pub(crate) pace: Option<std::sync::Arc<cadang_core::ratelimit::RateLimiter>>,
    /// Set once a version listing was refused, so that the warning about
    /// it comes once per store (see the `create_only` module).
    pub(crate) versions_unlisted: AtomicBool,
}

impl fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Backend")
            .field("url", &self.url.to_string())
            .finish()
    }
}

impl S3Backend {
    /// Opens `s3://BUCKET/PREFIX?endpoint=..&region=..&checksums=when-required&path-style=..`
    /// with credentials from the environment or the shared credentials file.
    /// Nothing is sent until the first operation.
    pub fn from_url(url: &str) -> Result<S3Backend, BackendError> {
        S3Backend::with_options(url, S3Options::default())
    }

    /// Like [`S3Backend::from_url`], with explicit credentials, retries or timeouts.
    pub fn with_options(url: &str, options: S3Options) -> Result<S3Backend, BackendError> {
        let parsed = S3Url::parse(url).map_err(|e| BackendError::Unavailable {
            location: S3Url::redacted(url),
            reason: e.0,
        })?;
        let client = client::build(&parsed, &options);
        let endpoint = match &parsed.endpoint {
            Some(e) => e.clone(),
            None => format!("AWS S3 (region {})", client::region(&parsed)),
        };
        Ok(S3Backend {
            client,
            target: Target {
                location: parsed.to_string(),
                bucket: parsed.bucket.clone(),
                endpoint,
                checksums_when_required: parsed.checksums_when_required,
            },
            url: parsed,
            bucket_seen: AtomicBool::new(false),
            versions_unlisted: AtomicBool::new(false),
            pace: options.upload_limit.clone(),
        })
    }

    /// The parsed repository URL.
    pub fn url(&self) -> &S3Url {
        &self.url
    }

    fn key(&self, kind: FileKind, name: &str) -> BackendResult<String> {
        Ok(self.url.key(&relative_key(kind, name)?))
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.url.bucket
    }

    pub(crate) fn fail(
        &self,
        f: Failure,
        op: &'static str,
        kind: FileKind,
        name: &str,
    ) -> BackendError {
        f.into_error(&self.target, op, what(kind, name))
    }

    fn not_found(kind: FileKind, name: &str) -> BackendError {
        let name = if kind == FileKind::Config {
            "config"
        } else {
            name
        };
        BackendError::NotFound {
            kind,
            name: name.to_string(),
        }
    }

    /// `NotFound` once the bucket is known to exist (some servers answer a
    /// GET in a missing bucket with NoSuchKey).
    async fn missing(&self, op: &'static str, kind: FileKind, name: &str) -> BackendError {
        match self.confirm_bucket().await {
            Ok(()) => Self::not_found(kind, name),
            Err(f) => self.fail(f, op, kind, name),
        }
    }
}

#[async_trait]
impl Backend for S3Backend {
    fn location(&self) -> String {
        self.target.location.clone()
    }

    /// Checks that the bucket exists and holds no repository under the prefix.
    /// S3 has no folders, so there is nothing else to create.
    async fn create(&self) -> BackendResult<()> {
        let op = |f: Failure| f.into_error(&self.target, "create", self.target.location.clone());
        self.confirm_bucket().await.map_err(op)?;
        match self.head(&self.url.key("config")).await.map_err(op)? {
            Some(_) => Err(BackendError::AlreadyExists {
                kind: FileKind::Config,
                name: "config".into(),
            }),
            None => Ok(()),
        }
    }

    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        if kind == FileKind::Config {
            let size = self
                .head(&self.url.key("config"))
                .await
                .map_err(|f| self.fail(f, "list", kind, "config"))?;
            return Ok(size
                .map(|size| FileInfo {
                    name: "config".into(),
                    size,
                })
                .into_iter()
                .collect());
        }
        let prefix = self.url.key(&format!("{}/", kind.dir()));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(self.bucket())
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    Failure::from_sdk(e).into_error(&self.target, "list", kind.to_string())
                })?;
            self.saw_bucket();
            for obj in page.contents() {
                let Some(rest) = obj.key().and_then(|k| k.strip_prefix(&prefix)) else {
                    continue;
                };
                if let Some(name) = listed_name(kind, rest) {
                    let size = obj.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
                    out.push(FileInfo {
                        name: name.to_string(),
                        size,
                    });
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Vec<u8>> {
        let key = self.key(kind, name)?;
        match self.get(&key, None, None).await {
            Ok(data) => Ok(data),
            Err(f) if f.is_not_found() => Err(self.missing("read", kind, name).await),
            Err(f) => Err(self.fail(f, "read", kind, name)),
        }
    }

    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Vec<u8>> {
        let key = self.key(kind, name)?;
        let past_end = || BackendError::Io {
            op: "read",
            what: what(kind, name),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "bytes {offset}..{} are past the end of the object",
                    offset.saturating_add(length)
                ),
            ),
        };
        let Some(end) = offset.checked_add(length) else {
            return Err(past_end());
        };
        if length == 0 {
            // An empty range cannot be asked for; the size decides.
            return match self
                .head(&key)
                .await
                .map_err(|f| self.fail(f, "read", kind, name))?
            {
                None => Err(Self::not_found(kind, name)),
                Some(size) if end > size => Err(past_end()),
                Some(_) => Ok(Vec::new()),
            };
        }
        match self
            .get(
                &key,
                Some(format!("bytes={offset}-{}", end - 1)),
                Some(length),
            )
            .await
        {
            // S3 answers a range that runs past the end with the bytes it has.
            Ok(data) if data.len() as u64 != length => Err(past_end()),
            Ok(data) => Ok(data),
            Err(f) if f.is_not_found() => Err(self.missing("read", kind, name).await),
            Err(f) if f.is_invalid_range() => Err(past_end()),
            Err(f) => Err(self.fail(f, "read", kind, name)),
        }
    }

    async fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        let key = self.key(kind, name)?;
        self.put(&key, Bytes::from(data), false)
            .await
            .map(drop)
            .map_err(|f| self.fail(f, "write", kind, name))
    }

    /// Create-only write: a HEAD, then a PUT with `If-None-Match: *`, and on
    /// a versioned bucket a look at the version just older than ours, which
    /// withdraws our version if the key already existed (Ceph RGW ignores
    /// the condition there). What that does and does not guarantee, and the
    /// remaining race on servers that ignore the condition on a bucket
    /// *without* versioning: the `create_only` module.
    ///
    /// On such servers (no versioning, condition ignored) only the HEAD
    /// guards the object: two writers that both pass it before either PUT
    /// lands both "succeed", and the later one replaces the earlier. Names
    /// that embed a random or content-derived id (locks of backups, index,
    /// snapshots, pending marks) do not collide in practice; the fixed-name
    /// ones (`config`, `keys/*` at init, `locks/prune`) can, so on such a
    /// server never run two `init`s or two prunes at the same time.
    async fn write_new(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        let key = self.key(kind, name)?;
        self.create_only(kind, name, &key, data).await
    }

    /// Removes the object's current version by version id, and any older
    /// version that becomes current, so that the data is gone and not just
    /// hidden behind a delete marker (see the `retention` module). A HEAD
    /// comes first: S3's DeleteObject succeeds on a missing key, and the
    /// contract asks for `NotFound`. A version under Object Lock is refused
    /// by the server and reported as `BackendError::Locked` with its date.
    async fn delete(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        let key = self.key(kind, name)?;
        self.delete_all_versions(kind, name, &key).await
    }

    async fn stat(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        let key = self.key(kind, name)?;
        self.head(&key)
            .await
            .map_err(|f| self.fail(f, "stat", kind, name))
    }

    /// PutObject with COMPLIANCE retention until `until` and Content-MD5.
    /// Always one PUT (up to 5 GiB): see [`crate::RETAINED_PUT_LIMIT`].
    async fn write_retained(
        &self,
        kind: FileKind,
        name: &str,
        data: Vec<u8>,
        until: SystemTime,
    ) -> BackendResult<()> {
        let key = self.key(kind, name)?;
        self.put_retained(&key, Bytes::from(data), until)
            .await
            .map_err(|f| self.fail(f, "write", kind, name))
    }

    /// Asks the bucket's Object Lock configuration: retention is enforced
    /// only on a bucket created with Object Lock enabled. A server that
    /// cannot answer (s3s-fs, for one, ignores Object Lock) is treated as
    /// one that does not enforce it.
    async fn check_retention(&self) -> BackendResult<()> {
        match self.object_lock_enabled().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(BackendError::Unsupported {
                location: self.location(),
                feature: "Object Lock: the bucket was created without it, and it cannot be \
                          added later to every server; create a new bucket with Object Lock \
                          enabled for the DR copy",
            }),
            Err(f) if f.is_not_implemented() => Err(BackendError::Unsupported {
                location: self.location(),
                feature: "Object Lock (the server does not implement it)",
            }),
            Err(f) => Err(f.into_error(
                &self.target,
                "read the Object Lock configuration of",
                self.target.location.clone(),
            )),
        }
    }

    /// The retain-until date from a HEAD, if it is still in the future.
    /// (HEAD rather than GetObjectRetention: it needs no extra permission,
    /// and some servers do not implement GetObjectRetention.)
    async fn retained_until(
        &self,
        kind: FileKind,
        name: &str,
    ) -> BackendResult<Option<SystemTime>> {
        let key = self.key(kind, name)?;
        let head = self
            .head_info(&key)
            .await
            .map_err(|f| self.fail(f, "stat", kind, name))?;
        let now = SystemTime::now();
        Ok(head.and_then(|h| h.retain_until).filter(|t| *t > now))
    }
}
