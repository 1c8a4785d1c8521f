//! The agent daemon: enrollment with the controller, then a long-running
//! loop that long-polls for jobs over mutual TLS, keeps backing up on the
//! cached schedule when the controller is unreachable, and delivers its
//! reports exactly once from an on-disk spool.
//!
//! The wire contract is `cadang-proto`; this module never depends on the
//! controller.

pub mod backoff;
pub mod clock;
pub mod config;
pub mod drill;
pub mod enroll;
pub mod envelope;
mod error;
mod fsutil;
pub mod guard;
pub mod http;
pub mod ledger;
pub mod restore_job;
mod run;
pub mod runner;
pub mod sandbox;
pub mod schedule;
pub mod spool;
mod tasks;
pub mod tls;

use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub use cadang_proto::EnrollmentToken;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{AgentConfig, StatePaths, Tuning};
pub use enroll::{enroll, EnrollOptions};
pub use error::DaemonError;
pub use run::run;

/// Resolves once `rx` turns true (or its sender is gone). Drops the
/// borrow before returning, so callers stay `Send`.
pub(crate) async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Exit code of `cadang agent run` when the controller revoked the agent.
pub const EXIT_REVOKED: u8 = 4;

/// An exclusive `flock` on the state directory's run lock, held while the
/// daemon runs: a second agent on the same state would back up the same
/// sources at the same time.
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    pub fn acquire(path: &Path) -> Result<RunLock, DaemonError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(DaemonError::io("open", path))?;
        // SAFETY: flock on a file descriptor we own; no memory is touched.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
            return Err(DaemonError::Busy(dir));
        }
        Ok(RunLock { _file: file })
    }
}

/// A shutdown signal for [`run`] that turns true on SIGTERM or SIGINT
/// (systemd's stop, Ctrl-C).
pub fn shutdown_on_signals() -> Result<tokio::sync::watch::Receiver<bool>, DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(DaemonError::io("listen for", "SIGTERM"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(DaemonError::io("listen for", "SIGINT"))?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}
