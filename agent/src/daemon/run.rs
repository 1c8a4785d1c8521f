//! `cadang agent run`: the daemon's loop.
//!
//! Four tasks share one [`Daemon`]:
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

use cadang_proto::agent::{
    AgentPolicy, Job, JobKind, JobReport, Outcome, PollRequest, PollResponse, ReportAck,
    ReportBatch, ReportKind, StoreAccess,
};
use cadang_proto::{paths, PROTO_VERSION};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

use super::backoff::Backoff;
use super::clock::Clock;
use super::config::{AgentConfig, StatePaths};
use super::http::{CallError, ControllerClient};
use super::ledger::{Admission, Ledger, Work, WorkKind};
use super::runner::{self, BackupEnv, Running, SourceLocks};
use super::schedule::{self, SlotFinder};
use super::spool::Spool;
use super::{fsutil, tls, DaemonError, RunLock};
use crate::Progress;

struct Daemon {
    config: AgentConfig,
    paths: StatePaths,
    clock: Arc<dyn Clock>,
    client: ControllerClient,
    env: BackupEnv,
    policy: Mutex<Option<AgentPolicy>>,
    ledger: Mutex<Ledger>,
    spool: Mutex<Spool>,
    running: Mutex<HashMap<String, Running>>,
    /// Keys queued or running now (a second copy is ignored).
    accepted: Mutex<HashSet<String>>,
    /// When the controller last answered a poll or a delivery.
    last_contact: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    queue: mpsc::UnboundedSender<Work>,
    reports_ready: Notify,
    sources: SourceLocks,
    stop_jobs: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
    tasks.spawn(poller(daemon.clone(), shutdown.clone()));
    tasks.spawn(reporter(daemon.clone(), shutdown.clone()));
    tasks.spawn(scheduler(daemon.clone(), shutdown.clone()));
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

fn enqueue(d: &Daemon, w: Work) {
    if lock(&d.accepted).insert(w.key.clone()) {
        let _ = d.queue.send(w);
    }
}

fn work_of(job: Job) -> Work {
    let kind = match job.kind {
        JobKind::Backup { source, slot } => WorkKind::Backup { source, slot },
        JobKind::Restore { request_id, .. } => WorkKind::Restore { request_id },
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
    let _ = tokio::time::timeout(Duration::from_secs(5), deliver(d)).await;
    tracing::info!(spooled = lock(&d.spool).len(), "agent stopped");
}

/// Runs one piece of work to its report.
async fn handle(d: Arc<Daemon>, w: Work) {
    let result = match &w.kind {
        WorkKind::Restore { request_id } => {
            let now = d.clock.now();
            let report = JobReport {
                report_id: runner::report_id(),
                job_id: w.job_id.clone(),
                kind: ReportKind::Restore {
                    request_id: request_id.clone(),
                    detail: None,
                },
                started: now,
                finished: now,
                outcome: Outcome::Failed,
                message: "restores are not supported by this agent version; upgrade the agent"
                    .into(),
            };
            complete(&d, &w, report)
        }
        WorkKind::Backup { source, slot } => backup_work(&d, &w, source, *slot).await,
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
fn complete(d: &Daemon, w: &Work, report: JobReport) -> Result<(), DaemonError> {
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

fn touched(d: &Daemon) {
    *lock(&d.last_contact) = Some(d.clock.now());
}

fn revoked(d: &Daemon, e: &CallError) -> Option<DaemonError> {
    match e {
        CallError::Status {
            status: 403,
            message,
        } => Some(DaemonError::Revoked {
            url: d.client.url().to_string(),
            message: message.clone(),
        }),
        _ => None,
    }
}

fn backoff_of(d: &Daemon) -> Backoff {
    let t = &d.config.tuning;
    Backoff::new(
        Duration::from_millis(t.backoff_min_millis),
        Duration::from_millis(t.backoff_max_millis),
    )
}

/// Sleeps `delay` unless shutdown comes first (then `false`).
async fn pause(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = super::stopped(shutdown) => false,
    }
}

async fn poller(d: Arc<Daemon>, mut shutdown: watch::Receiver<bool>) -> Result<(), DaemonError> {
    let mut backoff = backoff_of(&d);
    let mut failures = 0u32;
    let wait = d.config.tuning.poll_wait_seconds;
    loop {
        let request = PollRequest {
            proto: PROTO_VERSION,
            policy_version: lock(&d.policy)
                .as_ref()
                .map(|p| p.version.clone())
                .unwrap_or_default(),
            running: lock(&d.running).values().map(Running::snapshot).collect(),
            wait_seconds: wait,
        };
        let asked = Instant::now();
        let call = d.client.post::<_, PollResponse>(
            paths::POLL,
            &request,
            Duration::from_secs(u64::from(wait) + 30),
        );
        let answer = tokio::select! {
            a = call => a,
            _ = super::stopped(&mut shutdown) => return Ok(()),
        };
        match answer {
            Ok(response) => {
                if failures > 0 {
                    tracing::info!(
                        after_failures = failures,
                        "the controller is reachable again"
                    );
                }
                failures = 0;
                backoff.reset();
                touched(&d);
                let idle = response.jobs.is_empty() && response.policy.is_none();
                take_answer(&d, response)?;
                // A controller answering at once with nothing must not
                // make this loop spin.
                if idle
                    && asked.elapsed() < Duration::from_secs(1)
                    && !pause(d.config.tuning.tick(), &mut shutdown).await
                {
                    return Ok(());
                }
            }
            Err(e) => {
                if let Some(r) = revoked(&d, &e) {
                    return Err(r);
                }
                failures += 1;
                let delay = backoff.next_delay();
                if failures == 1 {
                    tracing::warn!(controller = %d.client.url(), error = %e, "the controller is unreachable; backups continue on the cached schedule and reports are spooled");
                } else {
                    tracing::debug!(error = %e, retry_in_ms = delay.as_millis() as u64, "poll failed");
                }
                if !pause(delay, &mut shutdown).await {
                    return Ok(());
                }
            }
        }
    }
}

fn take_answer(d: &Daemon, response: PollResponse) -> Result<(), DaemonError> {
    if let Some(policy) = response.policy {
        fsutil::write_json(&d.paths.policy(), &policy)?;
        tracing::info!(version = %policy.version, sources = policy.sources.len(), "new policy stored");
        *lock(&d.policy) = Some(policy);
    }
    for job in response.jobs {
        // Never the restore envelope: it is large and only for this agent.
        let what = match &job.kind {
            JobKind::Backup { source, slot } => format!("backup of {source} (slot {slot:?})"),
            JobKind::Restore { request_id, .. } => format!("restore {request_id}"),
        };
        tracing::info!(job = %job.id, %what, "job received");
        enqueue(d, work_of(job));
    }
    Ok(())
}

/// One delivery round: the oldest reports, in order. `Ok(true)` when
/// something was delivered.
async fn deliver(d: &Daemon) -> Result<bool, CallError> {
    let batch = lock(&d.spool).head(d.config.tuning.report_batch.max(1));
    if batch.is_empty() {
        return Ok(false);
    }
    let ack: ReportAck = d
        .client
        .post(
            paths::REPORTS,
            &ReportBatch { reports: batch },
            Duration::from_secs(60),
        )
        .await?;
    touched(d);
    match lock(&d.spool).remove_acked(&ack.accepted) {
        Ok(n) => tracing::debug!(delivered = n, "reports acknowledged"),
        Err(e) => {
            tracing::warn!(error = %e, "could not drop acknowledged reports from the spool; they are sent again (the controller ignores repeats)")
        }
    }
    Ok(!ack.accepted.is_empty())
}

async fn reporter(d: Arc<Daemon>, mut shutdown: watch::Receiver<bool>) -> Result<(), DaemonError> {
    let mut backoff = backoff_of(&d);
    loop {
        if lock(&d.spool).is_empty() {
            tokio::select! {
                _ = d.reports_ready.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = super::stopped(&mut shutdown) => return Ok(()),
            }
            continue;
        }
        let round = tokio::select! {
            r = deliver(&d) => r,
            _ = super::stopped(&mut shutdown) => return Ok(()),
        };
        let delay = match round {
            Ok(true) => {
                backoff.reset();
                continue;
            }
            // Nothing acknowledged: wait before asking again.
            Ok(false) => backoff.next_delay(),
            Err(e) => {
                if let Some(r) = revoked(&d, &e) {
                    return Err(r);
                }
                tracing::debug!(error = %e, spooled = lock(&d.spool).len(), "report delivery failed; kept in the spool");
                backoff.next_delay()
            }
        };
        if !pause(delay, &mut shutdown).await {
            return Ok(());
        }
    }
}

async fn scheduler(d: Arc<Daemon>, mut shutdown: watch::Receiver<bool>) -> Result<(), DaemonError> {
    let mut finder = SlotFinder::default();
    let grace = chrono::Duration::seconds(d.config.tuning.unattended_grace_seconds as i64);
    loop {
        let policy = lock(&d.policy).clone();
        if let Some(policy) = policy {
            let now = d.clock.now();
            let since = lock(&d.ledger).since();
            let last_contact = *lock(&d.last_contact);
            for due in finder.due(&policy, since, now) {
                tracing::trace!(source = %due.source, slot = due.slot, %now, ?last_contact, "slot due");
                let key = cadang_proto::agent::slot_key(&d.config.host, &due.source, due.slot);
                if lock(&d.ledger).slot_known(&due.source, due.slot)
                    || lock(&d.accepted).contains(&key)
                {
                    continue;
                }
                if schedule::run_unattended(&due, last_contact, now, grace) {
                    tracing::warn!(source = %due.source, slot = due.slot, "the controller has been unreachable since this slot fell due; running it unattended from the cached policy");
                    enqueue(
                        &d,
                        Work {
                            key,
                            job_id: None,
                            kind: WorkKind::Backup {
                                source: due.source,
                                slot: Some(due.slot),
                            },
                            not_after: None,
                        },
                    );
                }
            }
        }
        if !pause(d.config.tuning.tick(), &mut shutdown).await {
            return Ok(());
        }
    }
}
