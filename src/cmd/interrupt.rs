//! Ctrl-C (SIGINT) and SIGTERM during the CLI commands that write a store
//! (`backup`, `prune`, `replicate`).
//!
//! Without this a signal kills the process where it stands and the
//! command's lock file stays in the store: prune then waits 30 minutes for
//! a backup lock to go stale, and a prune lock blocks every later prune
//! until someone deletes it. Instead the stores are wrapped in the agent's
//! [`StopGuard`]: on the first signal every further store operation fails,
//! so the command meets an error at its next store operation and winds
//! down through its normal error path (the session aborts and releases its
//! lock), and then any lock file it created and did not remove is deleted.
//! The repository's write order (packs, index, then snapshot) makes any cut
//! harmless: what was uploaded is reused by the next run.
//!
//! A second signal stops at once (the locks are still removed first).

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result};
use cadang_agent::daemon::guard::StopGuard;
use cadang_core::backend::Backend;
use tokio::signal::unix::{signal, SignalKind};

/// Exit codes of an interrupted command, as shells report a death by that
/// signal (128 + signal number), so scripts can tell it from a failure.
pub const EXIT_SIGINT: u8 = 130;
pub const EXIT_SIGTERM: u8 = 143;

/// How a stoppable command ended.
pub enum Ended<T> {
    /// It ran to its end (possibly after a signal, when the signal came too
    /// late to matter: the snapshot was already written).
    Finished(T),
    /// A signal stopped it at a safe point; the exit code to return.
    Interrupted(u8),
}

/// Wraps a store so that [`until_signal`] can stop the command using it.
pub fn guard(backend: Arc<dyn Backend>) -> Arc<StopGuard> {
    Arc::new(StopGuard::new(backend))
}

/// Runs `work` until it ends or SIGINT/SIGTERM arrives; see the module
/// documentation. `what` names the command in the message to the operator.
pub async fn until_signal<T>(
    what: &str,
    guards: &[Arc<StopGuard>],
    work: impl Future<Output = Result<T>>,
) -> Result<Ended<T>> {
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::pin!(work);
    // Stage 1: the command runs; a signal interrupts the wait.
    let (name, code) = tokio::select! {
        r = &mut work => {
            remove_locks(guards).await;
            return r.map(Ended::Finished);
        }
        _ = int.recv() => ("SIGINT", EXIT_SIGINT),
        _ = term.recv() => ("SIGTERM", EXIT_SIGTERM),
    };
    // Stage 2: refuse further store operations and let the command wind
    // down through its own error path, unless a second signal comes first.
    eprintln!(
        "\n{name} received: the {what} stops at its next store operation and releases its lock (signal again to stop at once)"
    );
    for g in guards {
        g.stop();
    }
    let late = tokio::select! {
        r = &mut work => r.ok(),
        _ = int.recv() => None,
        _ = term.recv() => None,
    };
    // Stage 3: whatever state it stopped in, no lock of ours stays behind.
    remove_locks(guards).await;
    Ok(match late {
        Some(v) => Ended::Finished(v),
        None => {
            eprintln!(
                "the {what} was interrupted and its lock removed; the repository is consistent (what was uploaded is reused): run the {what} again"
            );
            Ended::Interrupted(code)
        }
    })
}

async fn remove_locks(guards: &[Arc<StopGuard>]) {
    for g in guards {
        let n = g.remove_leftover_locks().await;
        if n > 0 {
            tracing::info!(locks = n, "removed lock files the command left behind");
        }
    }
}
