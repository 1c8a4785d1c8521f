//! Object Lock: retained writes, retention lookups, and a `delete` that
//! really removes data on a versioned bucket.
//!
//! Object Lock needs bucket versioning, and on a versioned bucket a plain
//! DeleteObject only adds a delete marker: it "succeeds" on a locked object
//! and hides the data instead of removing it. So `delete` removes the
//! object's *current version by its version id* (from a HEAD); the server
//! then refuses a locked version (AccessDenied), which becomes
//! `BackendError::Locked` with the retention date the HEAD reported. If an
//! older version becomes current after that, it is removed the same way, so
//! a deleted file does not come back with older content.

use std::time::SystemTime;

use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{ObjectLockEnabled, ObjectLockLegalHoldStatus, ObjectLockMode};
use base64::Engine as _;
use bytes::Bytes;
use cadang_core::backend::{layout, BackendError, FileKind};
use md5::{Digest, Md5};

use crate::backend::S3Backend;
use crate::errors::Failure;

/// Retained objects go up in one PutObject (S3's limit for one PUT). Packs
/// are about 16 MiB, so multipart (whose parts would each need their own
/// checksum) is not worth it here.
pub const RETAINED_PUT_LIMIT: usize = 5 << 30;

/// How many versions of one key `delete` removes before giving up.
const MAX_VERSIONS: usize = 100;

/// What a HEAD tells about an object.
#[derive(Debug, Clone)]
pub(crate) struct HeadInfo {
    pub size: u64,
    /// `None` on a bucket that never had versioning.
    pub version_id: Option<String>,
    pub retain_until: Option<SystemTime>,
    pub legal_hold: bool,
}

/// RFC 3339 in UTC, for messages.
pub(crate) fn format_time(t: SystemTime) -> String {
    DateTime::from(t)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| format!("{t:?}"))
}

/// Retention not yet over, with five minutes of grace for a server whose
/// clock is behind ours (a denied delete after the date is a permission
/// problem, and is reported as one).
fn still_retained(head: &HeadInfo) -> bool {
    head.retain_until
        .is_some_and(|t| t + std::time::Duration::from_secs(300) > SystemTime::now())
}

/// The result of removing one version.
pub(crate) enum Removed {
    Gone,
    /// Another version became current; remove it too.
    More,
}

impl S3Backend {
    /// HEAD of `key`, or `None` when it does not exist (or its current
    /// version is a delete marker).
    pub(crate) async fn head_info(&self, key: &str) -> Result<Option<HeadInfo>, Failure> {
        match self
            .client
            .head_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
        {
            Ok(o) => {
                self.saw_bucket();
                let size = o
                    .content_length()
                    .and_then(|l| u64::try_from(l).ok())
                    .ok_or_else(|| {
                        Failure::local(format!("HEAD {key} answered without a Content-Length"))
                    })?;
                Ok(Some(HeadInfo {
                    size,
                    version_id: o.version_id().map(str::to_string),
                    retain_until: o
                        .object_lock_retain_until_date()
                        .and_then(|d| SystemTime::try_from(*d).ok()),
                    legal_hold: o.object_lock_legal_hold_status()
                        == Some(&ObjectLockLegalHoldStatus::On),
                }))
            }
            Err(e) => {
                let f = Failure::from_sdk(e);
                if f.is_not_found() {
                    self.confirm_bucket().await?;
                    Ok(None)
                } else {
                    Err(f)
                }
            }
        }
    }

    /// Whether the bucket has Object Lock enabled. "No configuration" is
    /// an answer (false), not an error.
    pub(crate) async fn object_lock_enabled(&self) -> Result<bool, Failure> {
        let res = self
            .client
            .get_object_lock_configuration()
            .bucket(self.bucket())
            .send()
            .await;
        match res {
            Ok(out) => {
                self.saw_bucket();
                Ok(out
                    .object_lock_configuration()
                    .and_then(|c| c.object_lock_enabled())
                    == Some(&ObjectLockEnabled::Enabled))
            }
            Err(e) => {
                let f = Failure::from_sdk(e);
                if f.is_no_lock_configuration() {
                    Ok(false)
                } else {
                    Err(f)
                }
            }
        }
    }

    /// PutObject in COMPLIANCE mode until `until`, with Content-MD5: S3
    /// demands a content checksum on Object Lock PUTs, and MD5 is the one
    /// that Ceph RGW 18 and older MinIO understand too (so this works in
    /// `checksums=when-required` mode as well).
    pub(crate) async fn put_retained(
        &self,
        key: &str,
        data: Bytes,
        until: SystemTime,
    ) -> Result<(), Failure> {
        if data.len() > RETAINED_PUT_LIMIT {
            return Err(Failure::local(format!(
                "{} bytes is more than a retained object may have ({} bytes, one PUT)",
                data.len(),
                RETAINED_PUT_LIMIT
            )));
        }
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&data));
        let req = self
            .client
            .put_object()
            .bucket(self.bucket())
            .key(key)
            .content_type("application/octet-stream")
            .content_md5(md5)
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(DateTime::from(until))
            .body(ByteStream::from(data));
        crate::throttle::paced(req.customize().disable_payload_signing(), &self.pace)
            .send()
            .await
            .map_err(Failure::from_sdk)?;
        self.saw_bucket();
        Ok(())
    }

    /// Removes the current version of `key` (described by `head`).
    pub(crate) async fn remove_version(
        &self,
        key: &str,
        head: &HeadInfo,
    ) -> Result<Removed, Failure> {
        self.client
            .delete_object()
            .bucket(self.bucket())
            .key(key)
            .set_version_id(head.version_id.clone())
            .send()
            .await
            .map_err(Failure::from_sdk)?;
        Ok(if head.version_id.is_some() {
            Removed::More
        } else {
            Removed::Gone
        })
    }

    /// The `delete` of the `Backend` contract; see the module doc.
    pub(crate) async fn delete_all_versions(
        &self,
        kind: FileKind,
        name: &str,
        key: &str,
    ) -> Result<(), BackendError> {
        let op = |f: Failure| f.into_error(&self.target, "delete", layout::what(kind, name));
        let mut removed_any = false;
        for _ in 0..MAX_VERSIONS {
            let Some(head) = self.head_info(key).await.map_err(op)? else {
                return if removed_any {
                    Ok(())
                } else {
                    Err(BackendError::NotFound {
                        kind,
                        name: name.to_string(),
                    })
                };
            };
            match self.remove_version(key, &head).await {
                Ok(Removed::Gone) => return Ok(()),
                Ok(Removed::More) => removed_any = true,
                Err(f) if f.is_access_denied() && (still_retained(&head) || head.legal_hold) => {
                    let until = match head.retain_until {
                        Some(t) if head.legal_hold => {
                            format!("{} and while its legal hold is on", format_time(t))
                        }
                        Some(t) => format_time(t),
                        None => "its legal hold is removed".to_string(),
                    };
                    return Err(BackendError::Locked {
                        kind,
                        name: name.to_string(),
                        until,
                    });
                }
                Err(f) => return Err(op(f)),
            }
        }
        Err(op(Failure::local(format!(
            "{key} still has versions after {MAX_VERSIONS} were deleted; remove them with the bucket's tools"
        ))))
    }
}
