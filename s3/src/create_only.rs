//! Create-only writes (`write_new`), kept create-only on servers that
//! ignore `If-None-Match: *` on versioned buckets.
//!
//! The stages, in order:
//!
//! 1. **HEAD.** An existing object is refused without writing anything.
//!    This is what stops cadang's own repeated writes on every server, and
//!    on a versioned bucket it keeps them from leaving a version behind that
//!    restricted credentials could not remove.
//! 2. **PUT with `If-None-Match: *`.** AWS S3 and current MinIO evaluate it
//!    atomically: of two racing writers exactly one gets `200`. A `412` is
//!    compared byte for byte with what is there (a retried PUT whose first
//!    answer was lost finds its own object; that counts as success).
//! 3. **On a versioned bucket, ask what came before.** Ceph RGW 16 answers
//!    `200` to a conditional PUT on a versioned bucket (every Object Lock
//!    bucket is one) even when the key exists, and stores the write as a new
//!    version. So when the PUT's answer carries a version id, one
//!    ListObjectVersions (`key-marker` = the key, `version-id-marker` = our
//!    version, `max-keys=1`) returns the entry just older than ours. If that
//!    is an object version, the key was not new: our version is deleted by
//!    its id and the caller gets the same `AlreadyExists` as from a `412`
//!    (success when its bytes are ours, by ETag and size or read back, as
//!    for a `412`). If it is a delete marker, or there is none, the key was
//!    free and the write stands.
//!
//! What this guarantees, and what not:
//!
//! * Racing writers of one key on such a server are ordered by the bucket's
//!   own version order, which every writer sees the same way: the oldest
//!   version wins, every later writer finds an older version and withdraws
//!   its own. Exactly one writer reports success, and once the others have
//!   withdrawn, the winner's bytes are current. In between, a reader may see
//!   a loser's version for the moment between its PUT and its DELETE.
//! * A version the server will not let us delete (the bucket's default
//!   Object Lock retention, or credentials without `s3:DeleteObjectVersion`,
//!   as an agent's) stays current. If its bytes differ from the original's,
//!   the write fails with `PermissionDenied` naming both version ids, so the
//!   operator can remove ours with the owner's keys: `AlreadyExists` would
//!   hide that readers now get our bytes. (Same bytes: nothing changed for
//!   readers, so that is success.)
//! * Nothing is asked on a bucket without versioning: there the PUT's
//!   answer has no version id, and a write costs the HEAD and one PUT as
//!   before. A bucket whose versioning is *suspended* answers with the
//!   `null` version, which a PUT replaces in place; that is not detected.
//! * Credentials that may not list versions (`s3:ListBucketVersions`) turn
//!   stage 3 off with one warning per store: the write then stands after the
//!   HEAD check alone, as before this guard existed.
//! * A rogue writer that does not use cadang is not stopped by any of this;
//!   versioning keeps the original where it cannot be deleted without
//!   `s3:DeleteObjectVersion` (docs/sites.md).

use std::sync::atomic::Ordering;

use aws_sdk_s3::primitives::DateTime;
use bytes::Bytes;
use cadang_core::backend::{BackendError, BackendResult, FileKind};

use crate::backend::S3Backend;
use crate::errors::Failure;
use crate::requests::{unquote, Written};

/// The entry just older than our version of a key.
#[derive(Debug)]
enum Before {
    /// An object version: the key existed when we wrote.
    Object {
        version_id: String,
        e_tag: Option<String>,
        size: Option<u64>,
    },
    /// A delete marker: the key had been deleted, so it was free.
    Deleted,
}

impl S3Backend {
    /// The `write_new` of the `Backend` contract; see the module doc.
    pub(crate) async fn create_only(
        &self,
        kind: FileKind,
        name: &str,
        key: &str,
        data: Vec<u8>,
    ) -> BackendResult<()> {
        let fail = |f: Failure| self.fail(f, "write", kind, name);
        if self.head(key).await.map_err(fail)?.is_some() {
            return Err(exists(kind, name));
        }
        let data = Bytes::from(data);
        let written = match self.put(key, data.clone(), true).await {
            Ok(w) => w,
            Err(f) if f.is_precondition_failed() => {
                return self.ours_or_exists(kind, name, &data).await;
            }
            Err(f) if f.is_not_implemented() => {
                tracing::warn!(key, "the S3 server does not support conditional writes (If-None-Match); writing after a HEAD check only");
                self.put(key, data.clone(), false).await.map_err(fail)?
            }
            Err(f) => return Err(fail(f)),
        };
        match &written.version_id {
            Some(ours) => {
                self.confirm_new(kind, name, key, ours, &written, &data)
                    .await
            }
            None => Ok(()),
        }
    }

    /// After a `412`: the same bytes are our own earlier attempt (or an
    /// identical write, which is just as good); anything else a conflict.
    async fn ours_or_exists(&self, kind: FileKind, name: &str, data: &Bytes) -> BackendResult<()> {
        use cadang_core::backend::Backend as _;
        match self.read(kind, name).await {
            Ok(existing) if existing == data[..] => Ok(()),
            _ => Err(exists(kind, name)),
        }
    }

    /// Stage 3 of the module doc: keeps the write only if nothing was there.
    async fn confirm_new(
        &self,
        kind: FileKind,
        name: &str,
        key: &str,
        ours: &str,
        written: &Written,
        data: &Bytes,
    ) -> BackendResult<()> {
        let fail = |f: Failure| self.fail(f, "write", kind, name);
        let before = match self.version_before(key, ours).await {
            Ok(b) => b,
            Err(f) if f.is_access_denied() || f.is_not_implemented() => {
                self.warn_unlisted(key, &f);
                return Ok(());
            }
            Err(f) => return Err(fail(f)),
        };
        let Some(Before::Object {
            version_id: original,
            e_tag,
            size,
        }) = before
        else {
            return Ok(());
        };
        let removed = match self.remove_our_version(key, ours).await {
            Ok(()) => true,
            Err(f) if f.is_access_denied() => false,
            Err(f) => return Err(fail(f)),
        };
        let same_tag = e_tag.is_some() && e_tag == written.e_tag && size == Some(data.len() as u64);
        let same = same_tag || (removed && self.ours_or_exists(kind, name, data).await.is_ok());
        match (same, removed) {
            (true, _) => Ok(()),
            (false, true) => Err(exists(kind, name)),
            (false, false) => Err(BackendError::PermissionDenied {
                op: "write",
                what: cadang_core::backend::layout::what(kind, name),
                detail: kept_version_text(self.bucket(), key, ours, &original),
            }),
        }
    }

    /// The entry just older than version `ours` of `key`, if any.
    async fn version_before(&self, key: &str, ours: &str) -> Result<Option<Before>, Failure> {
        let page = self
            .client
            .list_object_versions()
            .bucket(self.bucket())
            .prefix(key)
            .key_marker(key)
            .version_id_marker(ours)
            .max_keys(1)
            .send()
            .await
            .map_err(Failure::from_sdk)?;
        let version = page.versions().iter().find(|v| v.key() == Some(key));
        let marker = page.delete_markers().iter().find(|m| m.key() == Some(key));
        // With max-keys=1 at most one of them is there. A server that sent
        // more is ordered by time; a tie counts as "existed" (the safe side).
        let newer = |a: Option<&DateTime>, b: Option<&DateTime>| match (a, b) {
            (Some(a), Some(b)) => a > b,
            _ => false,
        };
        Ok(match (version, marker) {
            (Some(v), Some(m)) if newer(m.last_modified(), v.last_modified()) => {
                Some(Before::Deleted)
            }
            (Some(v), _) => Some(Before::Object {
                version_id: v.version_id().unwrap_or("null").to_string(),
                e_tag: v.e_tag().map(unquote),
                size: v.size().and_then(|s| u64::try_from(s).ok()),
            }),
            (None, Some(_)) => Some(Before::Deleted),
            (None, None) => None,
        })
    }

    async fn remove_our_version(&self, key: &str, ours: &str) -> Result<(), Failure> {
        self.client
            .delete_object()
            .bucket(self.bucket())
            .key(key)
            .version_id(ours)
            .send()
            .await
            .map_err(Failure::from_sdk)?;
        Ok(())
    }

    fn warn_unlisted(&self, key: &str, f: &Failure) {
        if !self.versions_unlisted.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                key,
                error = ?f,
                "cannot list object versions in bucket \"{}\": on this versioned bucket create-only \
                 writes are checked by a HEAD only, so a racing writer may add a version; give these \
                 credentials s3:ListBucketVersions",
                self.bucket()
            );
        }
    }
}

fn exists(kind: FileKind, name: &str) -> BackendError {
    BackendError::AlreadyExists {
        kind,
        name: name.to_string(),
    }
}

/// The operator's instructions when our version of an existing key stays.
fn kept_version_text(bucket: &str, key: &str, ours: &str, original: &str) -> String {
    format!(
        "it already existed, but the server ignored If-None-Match on this versioned bucket (Ceph RGW \
         does) and stored this write as a new version {ours}, which it refuses to remove (the bucket's \
         default Object Lock retention, or these credentials lack s3:DeleteObjectVersion); readers now \
         get that version instead of the original {original}. With the bucket owner's keys, delete \
         the new version once it is not retained: aws s3api delete-object --bucket {bucket} --key \
         {key} --version-id {ours}"
    )
}
