//! How each site job runs against `cadang-core`, one attempt at a time. The
//! pool ([`super::pool`]) decides when, how many at once, for how long and
//! how often; this module only does the work and says what came of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cadang_core::backend::{Backend, BackendError, FileKind};
use cadang_core::lock::{self, LockInfo, PRUNE_LOCK};
use cadang_core::ratelimit::RateLimiter;
use cadang_core::replicate::{self, ReplicateOptions};
use cadang_core::Repository;
use serde_json::json;

use super::clock::Clock;
use super::sitejob::{SiteJob, SiteJobKind};
use super::stores::StoreTarget;

mod maintain;

/// What one attempt produced when it ran to its end.
#[derive(Debug, Clone)]
pub struct Report {
    /// Damage found, or not everything done: a result, never retried.
    pub problems: bool,
    pub message: String,
    pub detail: serde_json::Value,
}

/// Why an attempt did not run to its end.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// The store could not be reached (missing directory, network, S3
    /// unavailable): the pool retries with backoff.
    #[error("{0} (will retry)")]
    Transient(String),
    /// Retrying will not help (wrong repository, refused by the store, bad
    /// policy): reported as `Failed` at once.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    /// Sorts a core error by whether a later attempt may succeed.
    pub fn from_core(context: &str, e: cadang_core::Error) -> JobError {
        use cadang_core::Error as E;
        let message = format!("{context}: {e}");
        match e {
            E::Backend(BackendError::Unavailable { .. } | BackendError::Io { .. })
            | E::NoRepository { .. } => JobError::Transient(message),
            _ => JobError::Permanent(message),
        }
    }

    fn from_backend(context: &str, e: BackendError) -> JobError {
        JobError::from_core(context, cadang_core::Error::Backend(e))
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, JobError::Transient(_))
    }
}

/// Runs site jobs. The pool calls `run` once per attempt and `after_cancel`
/// when an attempt was stopped (timeout, shutdown) so what the dropped run
/// left behind can be cleaned up. Tests substitute their own runner to
/// observe the pool's limits.
#[async_trait::async_trait]
pub trait JobRunner: Send + Sync + 'static {
    async fn run(&self, job: &SiteJob, clock: Arc<dyn Clock>) -> Result<Report, JobError>;
    async fn after_cancel(&self, job: &SiteJob) {
        let _ = job;
    }
}

/// Opens the repository store of a PD inside a store target.
pub type StoreOpener =
    Arc<dyn Fn(&StoreTarget, &str) -> Result<Arc<dyn Backend>, BackendError> + Send + Sync>;

/// The real runner: `cadang-core`'s replicate, check, forget/prune, repair.
pub struct CoreRunner {
    opener: StoreOpener,
    /// Whether `opener` is the stock one (S3 uploads can then be paced in
    /// 64 KiB slices by the S3 client instead of file by file).
    stock_opener: bool,
    /// Where each store's rolling `read_share` check stopped last, by
    /// `store/pd`.
    positions: Mutex<HashMap<String, String>>,
    /// Where `positions` is kept across restarts (see [`CoreRunner::with_state_file`]).
    state_file: Option<std::path::PathBuf>,
    /// Ransomware retention holds, asked before retention forgets anything
    /// (see `maintain.rs`, [`CoreRunner::with_holds`]).
    holds: Option<Arc<dyn crate::anomaly::HoldBook>>,
}

impl Default for CoreRunner {
    fn default() -> Self {
        CoreRunner::new()
    }
}

impl CoreRunner {
    pub fn new() -> CoreRunner {
        CoreRunner {
            opener: Arc::new(|store: &StoreTarget, pd: &str| store.open_pd(pd)),
            stock_opener: true,
            positions: Mutex::new(HashMap::new()),
            state_file: None,
            holds: None,
        }
    }

    /// Keeps the rolling check positions in `path` (JSON, rewritten
    /// atomically after each check), so a restart continues the rotation
    /// instead of re-reading the first packs. Without it they live in
    /// memory only. A missing or unreadable file starts from the beginning.
    pub fn with_state_file(mut self, path: std::path::PathBuf) -> CoreRunner {
        let loaded = std::fs::read(&path)
            .ok()
            .and_then(|d| serde_json::from_slice::<HashMap<String, String>>(&d).ok())
            .unwrap_or_default();
        self.positions = Mutex::new(loaded);
        self.state_file = Some(path);
        self
    }

    /// A runner that opens stores through `opener` (tests: a store that stalls).
    pub fn with_opener(opener: StoreOpener) -> CoreRunner {
        CoreRunner {
            opener,
            stock_opener: false,
            positions: Mutex::new(HashMap::new()),
            state_file: None,
            holds: None,
        }
    }

    fn open(&self, store: &StoreTarget, pd: &str) -> Result<Arc<dyn Backend>, JobError> {
        (self.opener)(store, pd)
            .map_err(|e| JobError::from_backend(&format!("opening store {}", store.name), e))
    }

    async fn open_repo(&self, store: &StoreTarget, pd: &str) -> Result<Repository, JobError> {
        let backend = self.open(store, pd)?;
        Repository::open(backend).await.map_err(|e| {
            JobError::from_core(
                &format!("opening the repository of PD {pd} in store {}", store.name),
                e,
            )
        })
    }
}

#[async_trait::async_trait]
impl JobRunner for CoreRunner {
    async fn run(&self, job: &SiteJob, clock: Arc<dyn Clock>) -> Result<Report, JobError> {
        match &job.kind {
            SiteJobKind::Replicate {
                from,
                to,
                bandwidth_limit,
                window_end,
                lock_days,
            } => {
                let params = ReplicateParams {
                    bandwidth_limit: *bandwidth_limit,
                    window_end: *window_end,
                    lock_days: *lock_days,
                };
                self.replicate(&job.pd, from, to, params, clock).await
            }
            SiteJobKind::Verify {
                store,
                read_share_percent,
                ..
            } => self.verify(&job.pd, store, *read_share_percent).await,
            SiteJobKind::Retention { store, keep, .. } => {
                self.retention(&job.pd, store, keep).await
            }
            SiteJobKind::Repair { store, from } => self.repair(&job.pd, store, from).await,
        }
    }

    async fn after_cancel(&self, job: &SiteJob) {
        if !job.kind.takes_prune_lock() {
            return;
        }
        // prune and repair hold `locks/prune` and release it only when they
        // finish; a dropped future leaves it for 30 minutes (until stale).
        if let Some(store) = job.kind.stores().first() {
            if let Ok(backend) = self.open(store, &job.pd) {
                release_own_prune_lock(backend.as_ref()).await;
            }
        }
    }
}

/// Deletes `locks/prune` if this process wrote it. The pool never runs two
/// prune-lock jobs of one PD and store at once, so a lock with our host and
/// pid is the cancelled job's; one from another process is left alone.
pub async fn release_own_prune_lock(backend: &dyn Backend) {
    let Ok(data) = backend.read(FileKind::Locks, PRUNE_LOCK).await else {
        return;
    };
    let Ok(info) = serde_json::from_slice::<LockInfo>(&data) else {
        return;
    };
    if info.host == lock::hostname() && info.pid == std::process::id() {
        if let Err(e) = backend.delete(FileKind::Locks, PRUNE_LOCK).await {
            tracing::warn!(store = %backend.location(), error = %e,
                "could not remove the prune lock of a cancelled job; it goes stale in 30 minutes");
        }
    }
}

struct ReplicateParams {
    bandwidth_limit: Option<u64>,
    window_end: Option<chrono::DateTime<chrono::Utc>>,
    lock_days: u32,
}

impl CoreRunner {
    async fn replicate(
        &self,
        pd: &str,
        from: &StoreTarget,
        to: &StoreTarget,
        params: ReplicateParams,
        clock: Arc<dyn Clock>,
    ) -> Result<Report, JobError> {
        let deadline = match params.window_end {
            Some(end) => match (end - clock.now()).to_std() {
                Ok(left) if !left.is_zero() => Some(tokio::time::Instant::now() + left),
                _ => return Ok(window_closed(end)),
            },
            None => None,
        };
        let limiter = params
            .bandwidth_limit
            .filter(|b| *b > 0)
            .map(|b| Arc::new(RateLimiter::new(b)));
        let source = self.open(from, pd)?;
        let (target, file_limiter) = self.open_target(to, pd, limiter)?;
        let retain_until = (params.lock_days > 0)
            .then(|| SystemTime::now() + Duration::from_secs(u64::from(params.lock_days) * 86_400));
        let opts = ReplicateOptions {
            pd: Some(pd.to_string()),
            parallel: 4,
            limiter: file_limiter,
            retain_until,
            deadline,
        };
        let r = replicate::replicate(source, target, &opts)
            .await
            .map_err(|e| {
                JobError::from_core(
                    &format!("replicating PD {pd} from {} to {}", from.name, to.name),
                    e,
                )
            })?;
        let bytes = r.packs.bytes + r.index.bytes + r.snapshots.bytes + r.keys.bytes;
        let mut message = format!(
            "replicated PD {pd} from {} to {}: {} packs ({bytes} bytes in all), {} snapshots; lag before the run {} s",
            from.name, to.name, r.packs.files, r.snapshots.files, r.lag_seconds
        );
        if r.stopped_at_window_end {
            message.push_str(&format!(
                "; stopped at the end of the window with {} files left for the next run",
                r.left
            ));
        } else if r.left > 0 {
            message.push_str(&format!(
                "; {} files are still missing at the target",
                r.left
            ));
        }
        if !r.corrupt_at_source.is_empty() {
            message.push_str(&format!(
                "; {} files are damaged at the source and were not copied (verify and repair {} from {})",
                r.corrupt_at_source.len(),
                from.name,
                to.name
            ));
        }
        let mut detail = serde_json::to_value(&r).unwrap_or_default();
        detail["bytes"] = json!(bytes);
        Ok(Report {
            problems: r.left > 0 || !r.corrupt_at_source.is_empty(),
            message,
            detail,
        })
    }

    /// The target store, pacing its own writes when it is opened by the
    /// stock opener (the S3 client in 64 KiB slices, a directory file by
    /// file); otherwise the limiter is handed to replicate to pace file by
    /// file.
    #[allow(clippy::type_complexity)]
    fn open_target(
        &self,
        to: &StoreTarget,
        pd: &str,
        limiter: Option<Arc<RateLimiter>>,
    ) -> Result<(Arc<dyn Backend>, Option<Arc<RateLimiter>>), JobError> {
        match limiter {
            Some(l) if self.stock_opener => {
                let backend = to.open_pd_paced(pd, l).map_err(|e| {
                    JobError::from_backend(&format!("opening store {}", to.name), e)
                })?;
                Ok((backend, None))
            }
            limiter => Ok((self.open(to, pd)?, limiter)),
        }
    }
}

fn window_closed(end: chrono::DateTime<chrono::Utc>) -> Report {
    Report {
        problems: true,
        message: format!(
            "the replication window ended at {end} before the job could start; nothing was copied, the next window continues"
        ),
        detail: json!({ "outside_window": true, "window_end": end, "copied": 0 }),
    }
}
