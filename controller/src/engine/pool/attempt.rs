//! One attempt of a job: run in its own task under the timeout, aborted on
//! timeout or shutdown, cleaned up after.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::slots::acquire_slots;
use super::Shared;
use crate::engine::run::{JobError, Report};
use crate::engine::sitejob::SiteJob;

/// How one attempt ended.
pub(super) enum AttemptEnd {
    Done(Report),
    Error(JobError),
    Panicked,
    TimedOut,
    Cancelled,
}

/// Moves a chain from queued to running while an attempt runs.
struct Running<'a>(&'a Shared);

impl<'a> Running<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.queued.fetch_sub(1, Ordering::SeqCst);
        shared.running.fetch_add(1, Ordering::SeqCst);
        Running(shared)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        self.0.queued.fetch_add(1, Ordering::SeqCst);
    }
}

pub(super) async fn run_attempt(shared: &Arc<Shared>, job: &SiteJob) -> AttemptEnd {
    let Some(_slots) = acquire_slots(shared, job).await else {
        return AttemptEnd::Cancelled;
    };
    if shared.cancel.is_cancelled() {
        return AttemptEnd::Cancelled;
    }
    let _running = Running::new(shared);
    attempt_in_task(shared, job).await
}

/// Runs the attempt in its own task, so a panic is caught as a result and a
/// timeout or cancellation can abort it.
async fn attempt_in_task(shared: &Arc<Shared>, job: &SiteJob) -> AttemptEnd {
    let deadline: DateTime<Utc> = shared.clock.now()
        + chrono::Duration::from_std(shared.config.timeout).unwrap_or(chrono::Duration::MAX);
    let runner = shared.runner.clone();
    let clock = shared.clock.clone();
    let task_job = job.clone();
    let mut task = tokio::spawn(async move { runner.run(&task_job, clock).await });
    let stopped = tokio::select! {
        joined = &mut task => {
            return match joined {
                Ok(Ok(report)) => AttemptEnd::Done(report),
                Ok(Err(e)) => AttemptEnd::Error(e),
                Err(e) if e.is_panic() => {
                    tracing::error!(job = %job.id, pd = %job.pd, "site job panicked: {e}");
                    AttemptEnd::Panicked
                }
                Err(_) => AttemptEnd::Cancelled,
            };
        }
        _ = shared.clock.sleep_until(deadline) => AttemptEnd::TimedOut,
        _ = shared.cancel.cancelled() => AttemptEnd::Cancelled,
    };
    task.abort();
    // Wait until the aborted future is dropped, so nothing of it writes
    // after the lock is removed.
    let _ = task.await;
    clean_up_after(shared, job).await;
    stopped
}

/// Longest real time the clean-up of a stopped attempt may take: a store
/// that hung the job may hang the clean-up too, and the job's busy keys
/// must be freed regardless (the lock then goes stale on its own).
const CLEANUP_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs the runner's `after_cancel` in its own task, bounded in time, so
/// neither a panic nor a hung store in it keeps the job's chain from ending.
async fn clean_up_after(shared: &Arc<Shared>, job: &SiteJob) {
    let runner = shared.runner.clone();
    let task_job = job.clone();
    let cleanup = tokio::spawn(async move { runner.after_cancel(&task_job).await });
    let abort = cleanup.abort_handle();
    match tokio::time::timeout(CLEANUP_LIMIT, cleanup).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(job = %job.id, pd = %job.pd, "clean-up after a stopped job failed: {e}")
        }
        Err(_) => {
            abort.abort();
            tracing::warn!(job = %job.id, pd = %job.pd,
                "clean-up after a stopped job did not finish in {CLEANUP_LIMIT:?}; a lock it held goes stale in 30 minutes");
        }
    }
}
