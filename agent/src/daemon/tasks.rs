//! The daemon's three background loops: the long-poll, report delivery
//! and the local schedule (see `run.rs` for how they fit together).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cadang_proto::agent::{JobKind, PollRequest, PollResponse, ReportAck, ReportBatch};
use cadang_proto::{paths, PROTO_VERSION};
use tokio::sync::watch;

use super::backoff::Backoff;
use super::http::CallError;
use super::ledger::{Work, WorkKind};
use super::run::{enqueue, lock, work_of, Daemon};
use super::runner::Running;
use super::schedule::{self, SlotFinder};
use super::{fsutil, DaemonError};

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

pub(super) async fn poller(
    d: Arc<Daemon>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
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
            JobKind::Drill(drill) => format!("drill {} of PD {}", drill.drill_id, drill.pd),
        };
        tracing::info!(job = %job.id, %what, "job received");
        enqueue(d, work_of(job));
    }
    Ok(())
}

/// One delivery round: the oldest reports, in order. `Ok(true)` when
/// something was delivered.
pub(super) async fn deliver(d: &Daemon) -> Result<bool, CallError> {
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

pub(super) async fn reporter(
    d: Arc<Daemon>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
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

pub(super) async fn scheduler(
    d: Arc<Daemon>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
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
