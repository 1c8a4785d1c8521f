//! The daemon's one error type. Every message says what happened and what
//! the operator can do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({reason}); move it aside and restart the agent, or enroll again")]
    Corrupt { path: PathBuf, reason: String },
    #[error("bad agent configuration {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error(transparent)]
    Token(#[from] cadang_proto::TokenError),
    #[error("the controller at {url} is not the one that issued this token: its CA certificate has SHA-256 fingerprint {found}, the token names {expected}; check the --controller address (a proxy or another controller answered), or ask the operator for a new token from `cadang controller enroll-token`")]
    WrongController {
        url: String,
        found: String,
        expected: String,
    },
    #[error("the controller at {url} refused the enrollment (HTTP {status}): {message}; ask the operator for a new token (`cadang controller enroll-token`)")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("cannot reach the controller at {url}: {reason}; check the address and port, the network path, and that the controller is running")]
    Unreachable { url: String, reason: String },
    #[error("the controller at {url} has revoked this agent ({message}); it will not take jobs again: enroll it anew with a fresh token (`cadang agent enroll`)")]
    Revoked { url: String, message: String },
    #[error("the controller at {url} answered {path} with HTTP {status}: {message}")]
    Http {
        url: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{state_dir} is already enrolled ({config} exists); to enroll again, stop the agent and move the directory aside")]
    AlreadyEnrolled { state_dir: PathBuf, config: PathBuf },
    #[error("another `cadang agent run` already uses {0}; run one agent per state directory")]
    Busy(PathBuf),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("cannot make the agent's keys: {0}")]
    Keys(String),
    #[error(transparent)]
    Repository(#[from] cadang_core::Error),
    #[error("the agent stopped unexpectedly: {0}; restart it (systemd does), and report this if it repeats")]
    Internal(String),
}

impl DaemonError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> DaemonError {
        let path = path.into();
        move |source| DaemonError::Io {
            action,
            path,
            source,
        }
    }
}
