//! The controller's one error type. Every message says what happened and,
//! where there is one, what the operator can do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} already exists; refusing to overwrite it (choose an empty directory for `controller init`)")]
    Exists { path: PathBuf },
    #[error("controller config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("the controller state {path} is open in another process, most likely the running controller; do this through the running controller (its API with CADANG_TOKEN), or stop it first")]
    StateBusy { path: PathBuf },
    #[error("controller state: {0}; the state file may be damaged: the controller's administrator restores it from backup or rebuilds it from the stores (`cadang controller rebuild`)")]
    State(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("policies: {0}")]
    Policies(String),
    #[error("store {store}: {message}")]
    Store { store: String, message: String },
    #[error("cannot reach the controller at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the controller answered {status}: {message}")]
    Api { status: u16, message: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        Error::State(e.to_string())
    }
}

macro_rules! redb_into_state {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self { Error::State(e.to_string()) }
        }
    )*};
}
redb_into_state!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<rcgen::Error> for Error {
    fn from(e: rcgen::Error) -> Self {
        Error::Certificate(e.to_string())
    }
}

impl From<rustls::Error> for Error {
    fn from(e: rustls::Error) -> Self {
        Error::Tls(e.to_string())
    }
}
