//! The core error type.
//!
//! Policy: every error names what it concerns (a file in the store, a
//! snapshot, a key) and, where there is one, what the operator should do.
//! Corruption is never papered over: a hash mismatch or an undecryptable blob
//! is an error, not a skipped item. Nothing in this crate panics on bad input.

use crate::backend::BackendError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("no cadang repository at {location}: {reason} (check the --repo path, or create one with `cadang repo init`)")]
    NoRepository { location: String, reason: String },
    #[error("{0} is not a cadang repository (it has no config file); check the --repo path or create one with `cadang repo init`")]
    NotARepository(String),
    #[error("a repository already exists at {0}; refusing to overwrite it")]
    RepositoryExists(String),
    #[error("wrong passphrase: it does not unlock this repository's data key")]
    WrongPassphrase,
    #[error("the key given does not belong to this repository")]
    WrongKey,
    #[error("credential file belongs to repository {found}, not to this repository {expected}")]
    CredentialMismatch { expected: String, found: String },
    #[error("no snapshot matches {0:?}; list them with `cadang snapshots`")]
    UnknownSnapshot(String),
    #[error("{0:?} matches more than one snapshot; give more characters of the id")]
    AmbiguousSnapshot(String),
    #[error("the repository has no snapshots yet")]
    NoSnapshots,
    #[error(
        "repository damaged: {0}; run `cadang check --read-data` to see everything that is broken"
    )]
    Corrupt(String),
    #[error("invalid format: {0}")]
    Format(String),
    #[error("unsupported repository format version {0}; this cadang reads version 1")]
    UnsupportedVersion(u32),
    #[error("snapshot {snapshot} is signed by agent key {signer}, which no trusted key certified ({reason}); it was refused because anyone who can write the store could have added that key. If the agent is genuine, have the custodian (Wali Data) or the controller certify it again")]
    UncertifiedSigner {
        snapshot: String,
        signer: String,
        reason: String,
    },
    #[error("encryption failed: {0}")]
    Crypto(String),
    #[error("{0}")]
    Conflict(String),
}

impl Error {
    pub(crate) fn crypto(e: std::io::Error) -> Error {
        Error::Crypto(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
