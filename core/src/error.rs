//! The core error type.
//!
//! Policy: every error names what it concerns (a file in the store, a
//! snapshot, a key) and, where there is one, what the operator should do —
//! in words, never as a command-line flag or subcommand: the controller's
//! console shows these messages too, where there is no command line.
//! A task that crashed is an [`Error::Internal`], never repository damage.
//! Corruption is never papered over: a hash mismatch or an undecryptable blob
//! is an error, not a skipped item. Nothing in this crate panics on bad input.

use crate::backend::BackendError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("no cadang repository at {location}: {reason}. Check the repository's location; if none was made there yet, initialise one first")]
    NoRepository { location: String, reason: String },
    #[error("{0} is not a cadang repository (it has no config file). Check the repository's location; if none was made there yet, initialise one first")]
    NotARepository(String),
    #[error("a repository already exists at {0}; refusing to overwrite it")]
    RepositoryExists(String),
    #[error("wrong passphrase: it does not unlock this repository's data key")]
    WrongPassphrase,
    #[error("the key given does not belong to this repository")]
    WrongKey,
    #[error("credential file belongs to repository {found}, not to this repository {expected}")]
    CredentialMismatch { expected: String, found: String },
    #[error("no snapshot matches {0:?}; list the repository's snapshots to find the id")]
    UnknownSnapshot(String),
    #[error("{0:?} matches more than one snapshot; give more characters of the id")]
    AmbiguousSnapshot(String),
    #[error("the repository has no snapshots yet")]
    NoSnapshots,
    #[error("the repository is damaged: {0}. A full data check (check with read-data) names every damaged pack; repair copies good ones back from the other site")]
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
    /// A task of cadang's own crashed or was cancelled: a bug or a
    /// shutdown, not a fault of the store or the repository.
    #[error("internal error: {0}. This is a fault in cadang itself, not damage in the repository; nothing it wrote before is lost and running the operation again is safe. If it happens again, report it with the log")]
    Internal(String),
}

impl Error {
    pub(crate) fn crypto(e: std::io::Error) -> Error {
        Error::Crypto(e.to_string())
    }

    /// A spawned task that did not finish: it panicked or was cancelled.
    /// `what` says what the task was doing ("decrypting pack X").
    pub fn task(what: &str, e: tokio::task::JoinError) -> Error {
        let how = if e.is_cancelled() {
            "was cancelled"
        } else {
            "crashed"
        };
        Error::Internal(format!("the task {what} {how} ({e})"))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::Error;

    /// A task that panicked is reported as cadang's own fault, in words an
    /// operator can act on, and never as damage in the repository.
    #[tokio::test]
    async fn a_crashed_task_is_an_internal_error_not_damage() {
        let joined = tokio::spawn(async { panic!("deliberate test panic") }).await;
        let e = Error::task("decrypting pack 00ff", joined.unwrap_err());
        assert!(matches!(e, Error::Internal(_)), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("decrypting pack 00ff crashed"), "{text}");
        assert!(text.contains("not damage in the repository"), "{text}");
        assert!(!text.contains("damaged:"), "{text}");
    }

    /// Messages name what to do in words: the controller's console shows
    /// them too, where there are no command-line flags.
    #[test]
    fn messages_name_no_command_line_flags() {
        let errors = [
            Error::NoRepository {
                location: "/srv/x".into(),
                reason: "the directory does not exist".into(),
            },
            Error::NotARepository("/srv/x".into()),
            Error::UnknownSnapshot("abc".into()),
            Error::Corrupt("pack 00ff is missing".into()),
        ];
        for e in errors {
            let text = e.to_string();
            assert!(!text.contains("--") && !text.contains('`'), "{text}");
        }
        assert!(Error::Corrupt("x".into())
            .to_string()
            .contains("A full data check (check with read-data) names every damaged pack"));
    }
}
