//! The storage backend: one small trait that every store implements.
//!
//! A backend stores opaque named files in a few kinds (folders). It knows
//! nothing of packs, snapshots or keys; everything it is given is already
//! encrypted or keyless by design. Durability is part of the contract:
//! when `write` returns `Ok`, the file is complete and will survive a crash or
//! power loss, and a reader never sees a partially written file. Retries, rate
//! limits and fault injection wrap a backend ([`wrap`]); they are not part
//! of one. Where files live (folders, names, keys) is [`layout`].

pub mod conformance;
pub mod layout;
mod local;
pub mod wrap;

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;

pub use layout::{check_name, FileKind};
pub use local::LocalBackend;
pub use wrap::{wrap_backend, WrapOptions};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{kind}/{name} does not exist in the store")]
    NotFound { kind: FileKind, name: String },
    #[error("{kind}/{name} already exists in the store")]
    AlreadyExists { kind: FileKind, name: String },
    #[error("store at {location} cannot be used: {reason}")]
    Unavailable { location: String, reason: String },
    #[error("the store is full: no space left while writing {what}; free space or move the store, then run the command again (nothing half-written was kept)")]
    NoSpace { what: String },
    #[error("the store refused to {op} {what}: permission denied ({detail})")]
    PermissionDenied {
        op: &'static str,
        what: String,
        detail: String,
    },
    #[error("I/O error while trying to {op} {what}: {source}")]
    Io {
        op: &'static str,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid file name {0:?} for the store")]
    InvalidName(String),
    #[error("{kind}/{name} is under retention (Object Lock) until {until}; the store refuses to delete it before then")]
    Locked {
        kind: FileKind,
        name: String,
        until: String,
    },
    #[error("store at {location} does not support {feature}")]
    Unsupported {
        location: String,
        feature: &'static str,
    },
}

impl BackendError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, BackendError::NotFound { .. })
    }

    /// Whether the same call may succeed if made again in a moment: an I/O
    /// error of the kind a flaky mount or network gives (timed out,
    /// interrupted, connection reset or refused, broken pipe, a stale NFS
    /// handle). Everything else is an answer, not a hiccup — "not found",
    /// "already exists", an invalid name, permission denied, a full store,
    /// retention, a short file (`UnexpectedEof`) — and is never retried.
    /// `Unavailable` is not transient either: it says the store is missing
    /// or misconfigured, and the S3 backend reports it only after its own
    /// SDK retries have run out.
    pub fn is_transient(&self) -> bool {
        use std::io::ErrorKind as K;
        let BackendError::Io { source, .. } = self else {
            return false;
        };
        if matches!(
            source.raw_os_error(),
            Some(libc::ESTALE) | Some(libc::EAGAIN) | Some(libc::ETIMEDOUT) | Some(libc::EINTR)
        ) {
            return true;
        }
        matches!(
            source.kind(),
            K::TimedOut
                | K::Interrupted
                | K::WouldBlock
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::ConnectionRefused
                | K::NotConnected
                | K::BrokenPipe
        )
    }

    pub(crate) fn from_io(op: &'static str, what: String, e: std::io::Error) -> BackendError {
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => BackendError::NoSpace { what },
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
                BackendError::PermissionDenied {
                    op,
                    what,
                    detail: e.to_string(),
                }
            }
            _ => BackendError::Io {
                op,
                what,
                source: e,
            },
        }
    }
}

pub type BackendResult<T> = Result<T, BackendError>;

/// A store that holds one repository.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// Human-readable location, for messages.
    fn location(&self) -> String;

    /// Creates the folders of an empty repository. Fails if a config exists.
    async fn create(&self) -> BackendResult<()>;

    /// All complete files of a kind. Temporary files of unfinished writes are
    /// never listed.
    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>>;

    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Vec<u8>>;

    /// Reads a whole file like `read`, into `buf`'s allocation (cleared
    /// first) where the store can: a restore reads every needed 16 MiB pack,
    /// and a fresh buffer for each is faulted in page by page, about a tenth
    /// of its CPU. A store that cannot reuse it returns a new buffer; the
    /// bytes are the same either way.
    async fn read_into(&self, kind: FileKind, name: &str, buf: Vec<u8>) -> BackendResult<Vec<u8>> {
        drop(buf);
        self.read(kind, name).await
    }

    /// Reads `length` bytes at `offset`; a short file is an error, not a short read.
    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Vec<u8>>;

    /// Writes a whole file atomically and durably, replacing any file of that name.
    async fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()>;

    /// Like `write`, but fails with `AlreadyExists` instead of replacing.
    async fn write_new(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()>;

    /// Removes a file; removing a missing file is `NotFound`.
    async fn delete(&self, kind: FileKind, name: &str) -> BackendResult<()>;

    /// Size of a file, or `None` if it does not exist.
    async fn stat(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>>;

    /// Writes like `write`, and asks the store to refuse deleting or
    /// overwriting the file until `until` (S3 Object Lock, compliance mode).
    /// Only stores that can enforce it accept: a lock the store does not
    /// enforce would be a promise nobody keeps.
    async fn write_retained(
        &self,
        kind: FileKind,
        name: &str,
        data: Vec<u8>,
        until: std::time::SystemTime,
    ) -> BackendResult<()> {
        let _ = (kind, name, data, until);
        Err(BackendError::Unsupported {
            location: self.location(),
            feature: "Object Lock retention",
        })
    }

    /// Whether `write_retained` will be enforced here, asked before anything
    /// is copied: a replication that promises locks should stop at once,
    /// not after its first pack. `Unsupported` when the store cannot
    /// enforce retention (or cannot say that it would).
    async fn check_retention(&self) -> BackendResult<()> {
        Err(BackendError::Unsupported {
            location: self.location(),
            feature: "Object Lock retention",
        })
    }

    /// When the store will let the file be deleted, if it is under retention.
    async fn retained_until(
        &self,
        kind: FileKind,
        name: &str,
    ) -> BackendResult<Option<std::time::SystemTime>> {
        let _ = (kind, name);
        Ok(None)
    }
}

/// Opens a local-directory store from a `--repo` argument. The binary
/// dispatches `s3://` URLs to the S3 backend before calling this; here they
/// are refused with a clear message rather than taken for a directory name.
pub fn open_store(url: &str) -> BackendResult<Box<dyn Backend>> {
    if url.starts_with("s3://") {
        return Err(BackendError::Unavailable {
            location: url.to_string(),
            reason: "S3 stores are opened by the cadang binary (cadang-s3), not by this function"
                .into(),
        });
    }
    let path = url.strip_prefix("file://").unwrap_or(url);
    Ok(Box::new(LocalBackend::new(PathBuf::from(path))))
}
