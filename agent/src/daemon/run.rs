//! `cadang agent run`: the daemon's loop.
//!
//! Four tasks share one [`Daemon`] (the three loops are in `tasks.rs`):
//! * the **poller** long-polls the controller, stores a new policy, queues
//!   dispatched jobs and reports running jobs' progress;
//! * the **scheduler** evaluates the cached policy every tick and queues a
//!   slot itself when the controller has been silent since it fell due;
//! * the **executor** runs queued work (one backup per source at a time);
//! * the **reporter** delivers the spool, oldest first, until acked.
//!
//! Shutdown (SIGTERM/SIGINT → `shutdown` turns true): no new work is taken,
//! running backups stop at a safe point and write `Interrupted` reports,
//! one last delivery is tried, and `run` returns `Ok`. A 403 from the
//! controller (the agent was revoked) ends `run` with
//! [`DaemonError::Revoked`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cadang_proto::agent::{AgentPolicy, Job, JobKind, JobReport, Outcome, StoreAccess};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

use super::clock::Clock;
use super::config::{AgentConfig, StatePaths};
use super::http::ControllerClient;
use super::ledger::{Admission, Ledger, Work, WorkKind};
use super::runner::{self, BackupEnv, Running, SourceLocks};
use super::spool::Spool;
use super::{fsutil, tls, DaemonError, RunLock};
use crate::Progress;

pub(super) struct Daemon {
    pub(super) config: AgentConfig,
    pub(super) paths: StatePaths,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) client: ControllerClient,
    pub(super) env: BackupEnv,
    pub(super) policy: Mutex<Option<AgentPolicy>>,
    pub(super) ledger: Mutex<Ledger>,
    pub(super) spool: Mutex<Spool>,
    pub(super) running: Mutex<HashMap<String, Running>>,
    /// Keys queued or running now (a second copy is ignored).
    pub(super) accepted: Mutex<HashSet<String>>,
    /// When the controller last answered a poll or a delivery.
    pub(super) last_contact: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    pub(super) queue: mpsc::UnboundedSender<Work>,
    pub(super) reports_ready: Notify,
    pub(super) sources: SourceLocks,
    pub(super) stop_jobs: watch::Sender<bool>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the agent until `shutdown` turns true (then `Ok`) or the
/// controller revokes it.
pub async fn run(
    config: AgentConfig,
    clock: Arc<dyn Clock>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let paths = config.paths();
    let _run_lock = RunLock::acquire(&paths.run_lock())?;
    let (daemon, queue) = open(config, clock)?;
    let daemon = Arc::new(daemon);
    recover(&daemon)?;
    tracing::info!(controller = %daemon.client.url(), host = %daemon.config.host, "agent started");

    let mut tasks: JoinSet<Result<(), DaemonError>> = JoinSet::new();
    tasks.spawn(super::tasks::poller(daemon.clone(), shutdown.clone()));
    tasks.spawn(super::tasks::reporter(daemon.clone(), shutdown.clone()));
    tasks.spawn(super::tasks::scheduler(daemon.clone(), shutdown.clone()));
    let mut jobs = JoinSet::new();
    let ended = executor(&daemon, queue, &mut jobs, &mut tasks, &mut shutdown).await;
    stop(&daemon, &mut jobs, &mut tasks).await;
    ended
}

fn open(
    config: AgentConfig,
    clock: Arc<dyn Clock>,
) -> Result<(Daemon, mpsc::UnboundedReceiver<Work>), DaemonError> {
    let paths = config.paths();
    let tls = tls::mtls_config(
        &fsutil::read_text(&paths.ca_cert())?,
        &fsutil::read_text(&paths.client_cert())?,
        &fsutil::read_text(&paths.tls_key())?,
    )?;
    let client = ControllerClient::new(&config.controller, tls);
    let store: StoreAccess =
        fsutil::read_json(&paths.store())?.ok_or_else(|| DaemonError::Config {
            path: paths.store(),
            reason: "missing; enroll the agent again".into(),
        })?;
    let policy: Option<AgentPolicy> = fsutil::read_json(&paths.policy())?;
    let ledger = Ledger::open(&paths.ledger(), &config.host, clock.now())?;
    let t = &config.tuning;
    let spool = Spool::open(&paths.spool(), t.spool_max_reports, t.spool_max_bytes)?;
    let env = BackupEnv {
        store,
        credentials_path: paths.credentials(),
        host: config.host.clone(),
        cache_dir: config.cache_dir(),
        workers: if t.workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            t.workers
        },
        stop_deadline: Duration::from_secs(t.stop_deadline_seconds),
    };
    let (queue, rx) = mpsc::unbounded_channel();
    let (stop_jobs, _) = watch::channel(false);
    let daemon = Daemon {
        config,
        paths,
        clock,
        client,
        env,
        policy: Mutex::new(policy),
        ledger: Mutex::new(ledger),
        spool: Mutex::new(spool),
        running: Mutex::new(HashMap::new()),
        accepted: Mutex::new(HashSet::new()),
        last_contact: Mutex::new(None),
        queue,
        reports_ready: Notify::new(),
        sources: SourceLocks::default(),
        stop_jobs,
    };
    Ok((daemon, rx))
}

/// After a restart: spool reports of finished jobs that may not have
/// reached the spool, and run again the work that was cut off.
fn recover(d: &Daemon) -> Result<(), DaemonError> {
    let (unspooled, pending) = {
        let l = lock(&d.ledger);
        (l.unspooled(), l.pending())
    };
    for (key, report) in unspooled {
        lock(&d.spool).append(report)?;
        lock(&d.ledger).mark_spooled(&key)?;
    }
    for w in pending {
        tracing::info!(work = %w.key, "resuming work cut off when the agent last stopped");
        enqueue(d, w);
    }
    Ok(())
}

pub(super) fn enqueue(d: &Daemon, w: Work) {
    if lock(&d.accepted).insert(w.key.clone()) {
        let _ = d.queue.send(w);
    }
}

pub(super) fn work_of(job: Job) -> Work {
    let kind = match job.kind {
        JobKind::Backup { source, slot } => WorkKind::Backup { source, slot },
        JobKind::Restore {
            request_id,
            envelope,
            dr_store,
        } => WorkKind::Restore {
            request_id,
            envelope,
            dr_store,
        },
        JobKind::Drill(drill) => WorkKind::Drill(Box::new(drill)),
    };
    Work {
        key: format!("job:{}", job.id),
        job_id: Some(job.id),
        kind,
        not_after: job.not_after,
    }
}

async fn executor(
    d: &Arc<Daemon>,
    mut queue: mpsc::UnboundedReceiver<Work>,
    jobs: &mut JoinSet<()>,
    tasks: &mut JoinSet<Result<(), DaemonError>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    loop {
        tokio::select! {
            _ = super::stopped(shutdown) => return Ok(()),
            Some(w) = queue.recv() => {
                jobs.spawn(handle(d.clone(), w));
            }
            Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
            Some(ended) = tasks.join_next() => match ended {
                Ok(Err(e)) => return Err(e),
                Ok(Ok(())) => return Ok(()),
                Err(e) => return Err(DaemonError::Internal(format!("an agent task failed: {e}"))),
            },
        }
    }
}

async fn stop(d: &Daemon, jobs: &mut JoinSet<()>, tasks: &mut JoinSet<Result<(), DaemonError>>) {
    tracing::info!(
        running = lock(&d.running).len(),
        "agent stopping: no new jobs; running backups end at a safe point"
    );
    let _ = d.stop_jobs.send(true);
    while jobs.join_next().await.is_some() {}
    tasks.abort_all();
    // One last try to hand the reports over; the spool keeps them if not.
    let _ = tokio::time::timeout(Duration::from_secs(5), super::tasks::deliver(d)).await;
    tracing::info!(spooled = lock(&d.spool).len(), "agent stopped");
}

/// Runs one piece of work to its report.
async fn handle(d: Arc<Daemon>, w: Work) {
    let result = match &w.kind {
        // restores (issue 8): daemon/restore_job.rs
        WorkKind::Restore { .. } => super::restore_job::restore_work(&d, &w).await,
        WorkKind::Backup { source, slot } => backup_work(&d, &w, source, *slot).await,
        WorkKind::Drill(job) => super::drill::drill_work(&d, &w, job).await,
    };
    lock(&d.accepted).remove(&w.key);
    if let Err(e) = result {
        tracing::error!(work = %w.key, error = %e, "could not record the end of a job; it runs again when the agent restarts");
    }
}

async fn backup_work(
    d: &Daemon,
    w: &Work,
    source: &str,
    slot: Option<i64>,
) -> Result<(), DaemonError> {
    let mutex = d.sources.of(source);
    let _one_at_a_time = mutex.lock().await;
    if *d.stop_jobs.borrow() {
        return Ok(());
    }
    let admission = lock(&d.ledger).admit(w);
    match admission {
        Admission::Resend(report) => return resend(d, w, *report),
        Admission::Duplicate => return Ok(()),
        Admission::Run => {}
    }
    let started = d.clock.now();
    let refuse = |message: String| {
        let ended = runner::Ended {
            outcome: Outcome::Failed,
            snapshot: None,
            stats: Default::default(),
            message,
            signals: None,
        };
        runner::backup_report(w.job_id.clone(), source, slot, started, started, ended)
    };
    if let Some(limit) = w.not_after.filter(|l| started > *l) {
        return complete(d, w, refuse(format!("the job could not start before its deadline {limit}; the controller schedules it again")));
    }
    let spec = lock(&d.policy)
        .as_ref()
        .and_then(|p| p.sources.iter().find(|s| s.name == source).cloned());
    let Some(spec) = spec else {
        return complete(
            d,
            w,
            refuse(format!(
                "this agent's policy has no source named {source:?}; check the PD's policy file"
            )),
        );
    };
    lock(&d.ledger).begin(w)?;
    let progress = Arc::new(Progress::default());
    lock(&d.running).insert(
        w.key.clone(),
        Running {
            job_id: w.job_id.clone(),
            source: source.to_string(),
            started,
            since: Instant::now(),
            progress: progress.clone(),
        },
    );
    tracing::info!(work = %w.key, source, slot, "backup started");
    let ended = runner::run_backup(&d.env, &spec, progress, d.stop_jobs.subscribe()).await;
    lock(&d.running).remove(&w.key);
    let report = runner::backup_report(
        w.job_id.clone(),
        source,
        slot,
        started,
        d.clock.now(),
        ended,
    );
    complete(d, w, report)
}

/// Ledger first, then spool, then the spooled mark: see the ledger's
/// module comment for why a crash anywhere here is harmless.
pub(super) fn complete(d: &Daemon, w: &Work, report: JobReport) -> Result<(), DaemonError> {
    match report.outcome {
        Outcome::Succeeded | Outcome::Interrupted => {
            tracing::info!(work = %w.key, outcome = ?report.outcome, report = %report.report_id, message = %report.message, "job ended")
        }
        Outcome::Partial | Outcome::Failed => {
            tracing::warn!(work = %w.key, outcome = ?report.outcome, report = %report.report_id, message = %report.message, "job ended with problems")
        }
    }
    lock(&d.ledger).finish(w, &report)?;
    lock(&d.spool).append(report)?;
    lock(&d.ledger).mark_spooled(&w.key)?;
    d.reports_ready.notify_one();
    Ok(())
}

/// A job or slot done before: its report goes again, nothing is backed up.
fn resend(d: &Daemon, w: &Work, report: JobReport) -> Result<(), DaemonError> {
    tracing::info!(work = %w.key, report = %report.report_id, "already done; sending its report again instead of backing up again");
    lock(&d.spool).append(report.clone())?;
    lock(&d.ledger).alias(w, &report)?;
    d.reports_ready.notify_one();
    Ok(())
}
