//! Agent routes: enroll, long-poll, reports.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use cadang_proto::agent::{
    EnrollRequest, EnrollResponse, Job, JobKind, PollRequest, PollResponse, ReportAck, ReportBatch,
};
use cadang_proto::api::ApiError;

use super::auth::Caller;
use super::{ApiErr, ApiResult, App, POLL_CAP_SECONDS};
use crate::state::agents::AgentRecord;
use crate::state::jobs::{self, JobRecord};

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

fn wire_job(j: &JobRecord) -> Option<Job> {
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

/// Hands out the agent's queued jobs and marks them delivered, in one
/// transaction. A job the agent never hears of (the answer is lost) stays
/// delivered; the agent's own schedule and the next slot cover it.
async fn take_jobs(app: &Arc<App>, agent: &AgentRecord) -> Result<Vec<Job>, ApiErr> {
    let queued = app.state.read(|txn| jobs::queued_for(txn, &agent.id))?;
    if queued.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = queued.iter().map(|j| j.id.clone()).collect();
    let (agent_id, now) = (agent.id.clone(), app.clock.now());
    app.state
        .write_blocking(move |txn| jobs::mark_delivered(txn, &agent_id, &ids, now))
        .await?;
    Ok(queued.iter().filter_map(wire_job).collect())
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
        app.state
            .write_blocking(move |txn| jobs::mark_running(txn, &agent_id, &ids, now))
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
    let agent2 = agent.clone();
    // One transaction for the batch; the RunBook changes in it too.
    let applied = app
        .state
        .write_blocking(move |txn| {
            let mut book = app2.runbook.lock().unwrap_or_else(|p| p.into_inner());
            let mut draft = book.clone();
            let applied = crate::state::reports::apply_reports(txn, &agent2, &reports, &mut draft)?;
            // ransomware early warning (issue 10): verdicts, holds, `anomaly.flag`
            crate::anomaly::service::on_reports(&app2, txn, &agent2, &applied.new)?;
            jobs::save_runbook(txn, &draft)?;
            // Memory follows inside the closure, before the commit: should the
            // commit fail, memory is one backup success ahead, which can
            // only start a replication early (never skip one).
            *book = draft;
            Ok(applied)
        })
        .await?;
    for r in &applied.new {
        app.metrics.record_report(&agent, r);
    }
    if !applied.new.is_empty() {
        app.wake.notify_one();
    }
    Ok(Json(ReportAck {
        accepted: applied.accepted,
    }))
}
