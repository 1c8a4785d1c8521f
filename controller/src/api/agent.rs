//! Agent routes: enroll, long-poll, reports. Their writes go through the
//! state writer (group commit), answered only after the commit.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use cadang_proto::agent::{
    EnrollRequest, EnrollResponse, Job, JobKind, JobReport, Outcome, PollRequest, PollResponse,
    ReportAck, ReportBatch, ReportKind,
};
use cadang_proto::api::ApiError;
use serde_json::json;

use super::auth::Caller;
use super::{ApiErr, ApiResult, App, POLL_CAP_SECONDS};
use crate::audit::entry::agent_actor;
use crate::audit::NewEntry;
use crate::state::agents::AgentRecord;
use crate::state::jobs::{self, JobRecord};
use crate::state::reports::Applied;
use crate::state::writer::Batch;

/// Reports accepted in one batch; the agent sends the rest next time.
pub const MAX_REPORTS_PER_BATCH: usize = 500;

#[utoipa::path(post, path = "/api/v1/agent/enroll", tag = "agent",
    request_body = EnrollRequest,
    responses(
        (status = 200, description = "Enrolled: client certificate, repository grant, store access, policy", body = EnrollResponse),
        (status = 403, description = "Token unknown, used, expired or for another host; PD not registered", body = ApiError),
    ))]
pub async fn enroll(
    State(app): State<Arc<App>>,
    Json(req): Json<EnrollRequest>,
) -> ApiResult<EnrollResponse> {
    crate::enroll::enroll(&app, req).await.map(Json)
}

fn wire_job(app: &App, j: &JobRecord) -> Option<Job> {
    match j.kind.as_str() {
        "backup" => Some(Job {
            id: j.id.clone(),
            kind: JobKind::Backup {
                source: j.source.clone()?,
                slot: j.slot,
            },
            not_after: None,
            due_at: j.due_at,
        }),
        // restores (issue 8): the envelope and the DR read access
        "restore" => crate::restore::wire_job(app, j),
        // drills (issue 8): the drill job as planned (grant envelope inside)
        "drill" => serde_json::from_value(j.detail.clone())
            .ok()
            .map(|drill| Job {
                id: j.id.clone(),
                kind: JobKind::Drill(drill),
                not_after: None,
                due_at: j.due_at,
            }),
        _ => None,
    }
}

#[utoipa::path(post, path = "/api/v1/agent/poll", tag = "agent",
    request_body = PollRequest,
    responses(
        (status = 200, description = "Jobs for the agent, and its policy when the agent's copy is stale", body = PollResponse),
        (status = 401, description = "No client certificate", body = ApiError),
        (status = 403, description = "Certificate unknown or revoked", body = ApiError),
    ))]
pub async fn poll(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<PollRequest>,
) -> ApiResult<PollResponse> {
    let agent = caller.agent()?.clone();
    let now = app.clock.now();
    app.touch(&agent.id, now);
    note_running(&app, &agent, &req).await?;
    let policy = app
        .agent_policy(&agent.id, &agent.pd, &agent.host)
        .filter(|p| p.version != req.policy_version)
        .map(|p| (*p).clone());
    let notify = app.notifier(&agent.id);
    let mut stopping = app.stopping.subscribe();
    let mut jobs = take_jobs(&app, &agent).await?;
    if jobs.is_empty() && policy.is_none() && !*stopping.borrow() {
        let wait = Duration::from_secs(req.wait_seconds.min(POLL_CAP_SECONDS).into());
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stopping.changed() => {}
        }
        jobs = take_jobs(&app, &agent).await?;
    }
    Ok(Json(PollResponse { policy, jobs }))
}

/// Hands out the agent's queued jobs, marked delivered in a committed
/// transaction before the answer leaves (group commit: one transaction
/// with the other requests of the moment, see `state::writer`). A job the
/// agent never hears of (the answer is lost) stays delivered; the agent's
/// own schedule and the next slot cover it.
async fn take_jobs(app: &Arc<App>, agent: &AgentRecord) -> Result<Vec<Job>, ApiErr> {
    let queued = app.state.read(|txn| jobs::queued_for(txn, &agent.id))?;
    if queued.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = queued.iter().map(|j| j.id.clone()).collect();
    let (agent_id, now) = (agent.id.clone(), app.clock.now());
    let delivered = app
        .writer
        .write(move |b| jobs::mark_delivered(b.txn, &agent_id, &ids, now))
        .await?;
    let out: Vec<Job> = queued
        .iter()
        .filter(|j| delivered.contains(&j.id))
        .filter_map(|j| wire_job(app, j))
        .collect();
    // restores (issue 8): `envelope.deliver` for each envelope handed over
    crate::restore::delivered(app, agent, &out).await?;
    Ok(out)
}

async fn note_running(
    app: &Arc<App>,
    agent: &AgentRecord,
    req: &PollRequest,
) -> Result<(), ApiErr> {
    let ids: Vec<String> = req
        .running
        .iter()
        .filter_map(|p| p.job_id.clone())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    // Only a write when something changes state (the first poll after start).
    let pending = app.state.read(|txn| {
        let mut any = false;
        for id in &ids {
            any |= jobs::get(txn, id)?.is_some_and(|j| j.state == jobs::JobState::Delivered);
        }
        Ok(any)
    })?;
    if pending {
        let (agent_id, now) = (agent.id.clone(), app.clock.now());
        app.writer
            .write(move |b| jobs::mark_running(b.txn, &agent_id, &ids, now))
            .await?;
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/agent/reports", tag = "agent",
    request_body = ReportBatch,
    responses(
        (status = 200, description = "Ids of every report stored (new and resent)", body = ReportAck),
        (status = 401, description = "No client certificate", body = ApiError),
        (status = 403, description = "Certificate unknown or revoked", body = ApiError),
    ))]
pub async fn reports(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Json(batch): Json<ReportBatch>,
) -> ApiResult<ReportAck> {
    let agent = caller.agent()?.clone();
    app.touch(&agent.id, app.clock.now());
    let mut reports = batch.reports;
    reports.truncate(MAX_REPORTS_PER_BATCH);
    let app2 = app.clone();
    // One op of the writer's batch: acknowledged once committed.
    let applied = app
        .writer
        .write(move |b| store_reports(&app2, b, &agent, &reports))
        .await?;
    // drills (issue 8): the signed reports to both sites, metrics
    crate::drill::report::publish_reported(&app, &applied.new).await;
    Ok(Json(ReportAck {
        accepted: applied.accepted,
    }))
}

/// Stores a batch of one agent's reports, their audit entries (and
/// whatever else must commit with a report) in the writer's transaction;
/// memory (RunBook, fleet view, metrics) follows after the commit.
fn store_reports(
    app: &Arc<App>,
    b: &mut Batch<'_>,
    agent: &AgentRecord,
    reports: &[JobReport],
) -> crate::error::Result<Applied> {
    let applied = crate::state::reports::apply_reports(b.txn, agent, reports)?;
    for (r, job) in applied.new.iter().zip(&applied.jobs) {
        if let Some(entry) = backup_entry(agent, r, job) {
            app.record_in(b.txn, entry)?;
        }
    }
    // Hooks on accepted reports go here, inside the same transaction
    // (e.g. the ransomware early warning on `applied.new`).
    // restores (issue 8): the request ends with the agent's report
    crate::restore::on_reports(app, b.txn, agent, &applied.new)?;
    // drills (issue 8): the signed drill report and `drill.report`
    crate::drill::report::on_reports(app, b.txn, agent, &applied.new)?;
    // ransomware early warning (issue 10): verdicts, holds, `anomaly.flag`
    crate::anomaly::service::on_reports(app, b.txn, agent, &applied.new)?;
    let (app, agent) = (app.clone(), agent.clone());
    let (new, runs, successes) = (
        applied.new.clone(),
        applied.runs.clone(),
        applied.successes.clone(),
    );
    b.after_commit(move || {
        let mut book = app.runbook.lock().unwrap_or_else(|p| p.into_inner());
        // Replication follows backups: the dispatcher needs waking only
        // when a PD's first backup since its last replication lands (later
        // ones do not make it due sooner). Not on every report: at 10,000
        // agents that kept the dispatcher evaluating without pause.
        let first_since_replication = successes.keys().any(|pd| {
            let last = book.last_backup_success.get(pd);
            last.is_none() || last <= book.last_replication.get(pd)
        });
        for (pd, t) in &successes {
            book.record_backup_success(pd, *t);
        }
        drop(book);
        if first_since_replication {
            app.wake.notify_one();
        }
        app.fleet.record_runs(&runs);
        for r in &new {
            app.metrics.record_report(&agent, r);
        }
    });
    Ok(applied)
}

/// `backup.report` for an accepted backup report: who, which source, how
/// it went, which snapshot.
fn backup_entry(agent: &AgentRecord, r: &JobReport, job: &str) -> Option<NewEntry> {
    let ReportKind::Backup {
        source,
        snapshot,
        slot,
        ..
    } = &r.kind
    else {
        return None;
    };
    let ok = matches!(r.outcome, Outcome::Succeeded | Outcome::Partial) && snapshot.is_some();
    Some(
        NewEntry::new(
            &agent_actor(&agent.id),
            "backup.report",
            &format!("{}/{}/{source}", agent.pd, agent.host),
            if ok { "ok" } else { "failed" },
        )
        .detail(json!({
            "snapshot": snapshot,
            "outcome": jobs::outcome_name(r.outcome),
            "job": job,
            "report": r.report_id,
            "slot": slot,
        })),
    )
}
