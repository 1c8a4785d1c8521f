//! The bounded pool site jobs run on.
//!
//! Limits, each for a reason:
//! - `workers` jobs at once in all: the controller shares its machine.
//! - `per_store` jobs at once per store name: one MinIO or NAS is not
//!   hammered by every PD at the same time.
//! - never two jobs of one kind for one PD on one store: [`SubmitError::Busy`].
//! - jobs of different kinds on one PD's repository in one store wait for
//!   each other rather than run side by side: a prune must never sweep
//!   packs a replication has copied but not yet referenced, and a check
//!   must not report as missing a pack a prune just rightly deleted. This
//!   also means at most one job holding the repository's prune lock runs
//!   in this process, which lets a cancelled one's lock be removed safely.
//!
//! Every attempt runs in its own task under a timeout measured on the given
//! [`Clock`]. A timed-out or cancelled attempt is aborted; core's operations
//! write each file atomically, so any await point is a safe point, and the
//! runner's `after_cancel` then removes the repository lock the dropped
//! operation held. Transient failures (store unavailable) are retried after
//! a capped exponential backoff with jitter, also on the clock, so tests
//! move a `ManualClock` instead of waiting.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::sync::{mpsc, Mutex as AsyncMutex, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod attempt;
mod slots;

use attempt::{run_attempt, AttemptEnd};
use slots::backoff;

use super::clock::Clock;
use super::run::{CoreRunner, JobRunner};
use super::sitejob::{SiteJob, SiteJobResult, SiteOutcome};

pub struct PoolConfig {
    pub workers: usize,
    pub per_store: usize,
    pub timeout: std::time::Duration,
    pub max_attempts: u32,
    pub backoff_base: std::time::Duration,
    pub backoff_cap: std::time::Duration,
}

impl Default for PoolConfig {
    /// Two jobs at once (the controller's machine is small), one per store,
    /// six hours per attempt (a first replication over a slow link), five
    /// attempts 1 min, 2 min, 4 min, 8 min apart (capped at 30 min).
    fn default() -> Self {
        PoolConfig {
            workers: 2,
            per_store: 1,
            timeout: std::time::Duration::from_secs(6 * 3600),
            max_attempts: 5,
            backoff_base: std::time::Duration::from_secs(60),
            backoff_cap: std::time::Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("a job of the same kind for this PD is already queued or running on that store; it was not queued twice (it runs again at its next slot)")]
    Busy,
    #[error("the site-job pool is shutting down and takes no new jobs")]
    ShuttingDown,
}

/// (pd, store name, job kind)
type BusyKey = (String, String, &'static str);

struct Shared {
    config: PoolConfig,
    clock: Arc<dyn Clock>,
    runner: Arc<dyn JobRunner>,
    workers: Arc<Semaphore>,
    per_store: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// One lock per PD repository in a store (`pd\0store`).
    repositories: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
    busy: Mutex<HashSet<BusyKey>>,
    queued: AtomicUsize,
    running: AtomicUsize,
    accepting: AtomicBool,
    cancel: CancellationToken,
    results: mpsc::UnboundedSender<SiteJobResult>,
}

pub struct SiteJobPool {
    shared: Arc<Shared>,
    tracker: TaskTracker,
    runtime: tokio::runtime::Handle,
}

impl SiteJobPool {
    /// Results (one per finished attempt chain) arrive on the receiver.
    ///
    /// Must be called inside a Tokio runtime; jobs run on that runtime.
    pub fn start(
        config: PoolConfig,
        clock: Arc<dyn Clock>,
    ) -> (SiteJobPool, mpsc::UnboundedReceiver<SiteJobResult>) {
        SiteJobPool::start_with(config, clock, Arc::new(CoreRunner::new()))
    }

    /// Like [`SiteJobPool::start`], with jobs run by `runner`.
    pub fn start_with(
        config: PoolConfig,
        clock: Arc<dyn Clock>,
        runner: Arc<dyn JobRunner>,
    ) -> (SiteJobPool, mpsc::UnboundedReceiver<SiteJobResult>) {
        let (results, receiver) = mpsc::unbounded_channel();
        let shared = Shared {
            workers: Arc::new(Semaphore::new(config.workers.max(1))),
            config,
            clock,
            runner,
            per_store: Mutex::new(HashMap::new()),
            repositories: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            queued: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            accepting: AtomicBool::new(true),
            cancel: CancellationToken::new(),
            results,
        };
        let pool = SiteJobPool {
            shared: Arc::new(shared),
            tracker: TaskTracker::new(),
            runtime: tokio::runtime::Handle::current(),
        };
        (pool, receiver)
    }

    /// Refuses (Err(SubmitError::Busy)) a job for a PD that already has a job running or queued on
    /// the same store+kind: never two jobs on one source.
    pub fn submit(&self, job: SiteJob) -> Result<(), SubmitError> {
        if !self.shared.accepting.load(Ordering::SeqCst) {
            return Err(SubmitError::ShuttingDown);
        }
        let keys = busy_keys(&job);
        {
            let mut busy = lock(&self.shared.busy);
            if keys.iter().any(|k| busy.contains(k)) {
                return Err(SubmitError::Busy);
            }
            busy.extend(keys.iter().cloned());
        }
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        let shared = self.shared.clone();
        self.tracker.spawn_on(
            async move {
                let busy = BusyGuard {
                    shared: shared.clone(),
                    keys,
                };
                let result = run_chain(&shared, job).await;
                // A chain counts as queued whenever no attempt of it runs
                // (see `Running`); it leaves the queue only here.
                shared.queued.fetch_sub(1, Ordering::SeqCst);
                // Free the keys before reporting: whoever reads the result
                // may submit the next job for the same PD at once.
                drop(busy);
                let _ = shared.results.send(result);
            },
            &self.runtime,
        );
        Ok(())
    }

    /// Jobs accepted and not running an attempt now (waiting for a slot or
    /// for a retry).
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::SeqCst)
    }

    /// Attempts running now.
    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::SeqCst)
    }

    /// Stop taking jobs; running ones stop at a safe point (cancellation token) within `deadline`,
    /// releasing repository locks; returns the results of what finished.
    ///
    /// Queued jobs and running attempts are cancelled at once (each reports
    /// `Cancelled` on the result channel, after its repository locks were
    /// removed); this waits up to `deadline` of real time for that to end.
    pub async fn shutdown(self, deadline: std::time::Duration) {
        self.shared.accepting.store(false, Ordering::SeqCst);
        self.shared.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.running(),
                "site jobs did not stop within {deadline:?}; abandoning them"
            );
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn busy_keys(job: &SiteJob) -> Vec<BusyKey> {
    let kind = job.kind.name();
    job.kind
        .stores()
        .into_iter()
        .map(|s| (job.pd.clone(), s.name.clone(), kind))
        .collect()
}

/// Removes a job's busy keys when its chain ends, panics included.
struct BusyGuard {
    shared: Arc<Shared>,
    keys: Vec<BusyKey>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut busy = lock(&self.shared.busy);
        for k in &self.keys {
            busy.remove(k);
        }
    }
}

async fn run_chain(shared: &Arc<Shared>, job: SiteJob) -> SiteJobResult {
    let clock = shared.clock.clone();
    let mut attempt = 1;
    loop {
        let started = clock.now();
        let end = run_attempt(shared, &job).await;
        let finished = clock.now();
        let result = |outcome, message: String, detail| SiteJobResult {
            job: job.clone(),
            attempt,
            outcome,
            message,
            detail,
            started,
            finished,
        };
        let (outcome, message, detail) = match end {
            AttemptEnd::Done(r) if r.problems => (SiteOutcome::Problems, r.message, r.detail),
            AttemptEnd::Done(r) => (SiteOutcome::Succeeded, r.message, r.detail),
            AttemptEnd::Error(e) if e.is_transient() && attempt < shared.config.max_attempts => {
                let wait = backoff(&shared.config, &job.id, attempt);
                tracing::warn!(job = %job.id, pd = %job.pd, attempt, error = %e,
                    "site job failed, retrying in {} s", wait.num_seconds());
                let retry_at = clock.now() + wait;
                let waited = cancellable(&shared.cancel, clock.sleep_until(retry_at)).await;
                if waited.is_none() {
                    let message = format!("cancelled while waiting to retry after: {e}");
                    return result(SiteOutcome::Cancelled, message, json!({ "error": e.to_string() }));
                }
                attempt += 1;
                continue;
            }
            AttemptEnd::Error(e) => {
                let detail = json!({ "error": e.to_string(), "transient": e.is_transient() });
                let message = if e.is_transient() {
                    format!("{e}; gave up after {attempt} attempt(s)")
                } else {
                    e.to_string()
                };
                (SiteOutcome::Failed, message, detail)
            }
            AttemptEnd::Panicked => (
                SiteOutcome::Failed,
                "internal error: the job crashed (this is a bug in cadang, not damage to the repository); see the controller log".to_string(),
                json!({ "internal_error": true }),
            ),
            AttemptEnd::TimedOut => (
                SiteOutcome::TimedOut,
                format!(
                    "stopped after the job time limit of {} s; it continues at its next run, and its repository lock was removed",
                    shared.config.timeout.as_secs()
                ),
                json!({ "timeout_seconds": shared.config.timeout.as_secs() }),
            ),
            AttemptEnd::Cancelled => (
                SiteOutcome::Cancelled,
                "cancelled: the controller is shutting down; the job continues at its next run".to_string(),
                json!({}),
            ),
        };
        return result(outcome, message, detail);
    }
}

/// `fut`'s output, or `None` if the pool is cancelled first.
async fn cancellable<F: Future>(cancel: &CancellationToken, fut: F) -> Option<F::Output> {
    // Biased towards cancellation: when a slot frees because a cancelled
    // job let go of it, a waiting job must see the shutdown, not the slot.
    tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        out = fut => Some(out),
    }
}
