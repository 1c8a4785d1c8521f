//! The envelope's way to the agent and the agent's answer: the restore job
//! on the wire (with read access to the DR copy for this job only), the
//! `envelope.deliver` entry when a poll hands it over, and the report that
//! ends the request (`restore.done` / `restore.failed`).

use std::sync::Arc;

use cadang_proto::agent::{Job, JobKind, JobReport, Outcome, ReportKind, StoreAccess};
use cadang_proto::restore::{RestoreReport, RestoreState};
use redb::WriteTransaction;
use serde_json::json;

use crate::api::App;
use crate::audit::{agent_actor, NewEntry};
use crate::engine::stores::pd_repo_url;
use crate::state::agents::AgentRecord;
use crate::state::jobs::JobRecord;
use crate::state::restores;

fn request_of(job: &JobRecord) -> Option<&str> {
    job.detail.get("request_id").and_then(|v| v.as_str())
}

/// Read access to the PD's DR repository, from the controller's config.
fn dr_access(app: &App, pd: &str) -> Option<StoreAccess> {
    let set = app.policies()?;
    let (_, dr) = set.stores_of(pd)?;
    let s = app.config.stores.get(&dr.name)?;
    Some(StoreAccess {
        url: pd_repo_url(&s.url, pd),
        access_key_id: s.access_key_id.clone(),
        secret_access_key: s.secret_access_key.clone(),
    })
}

/// The wire form of a queued restore job, or `None` when its request can
/// no longer run (expired, cancelled: the sweep finishes the job).
pub fn wire_job(app: &App, job: &JobRecord) -> Option<Job> {
    let id = request_of(job)?;
    let rec = app.state.read(|txn| restores::get(txn, id)).ok()??;
    let now = app.clock.now();
    if rec.request.state != RestoreState::Approved || rec.request.expires <= now {
        return None;
    }
    Some(Job {
        id: job.id.clone(),
        kind: JobKind::Restore {
            request_id: id.to_string(),
            envelope: rec.envelope?,
            dr_store: dr_access(app, &rec.request.pd),
        },
        not_after: Some(rec.request.expires),
        due_at: None,
    })
}

/// After a poll handed jobs to `agent`: each restore among them is now
/// running on the agent; records `envelope.deliver`.
pub async fn delivered(
    app: &Arc<App>,
    agent: &AgentRecord,
    jobs: &[Job],
) -> crate::error::Result<()> {
    let handed: Vec<(String, String)> = jobs
        .iter()
        .filter_map(|j| match &j.kind {
            JobKind::Restore { request_id, .. } => Some((j.id.clone(), request_id.clone())),
            _ => None,
        })
        .collect();
    if handed.is_empty() {
        return Ok(());
    }
    let (app2, agent) = (app.clone(), agent.clone());
    app.state
        .write_blocking(move |txn| {
            let now = app2.clock.now();
            for (job_id, id) in handed {
                let Some(mut rec) = restores::get_in(txn, &id)? else {
                    continue;
                };
                if rec.request.state != RestoreState::Approved || rec.request.delivered.is_some() {
                    continue;
                }
                rec.request.state = RestoreState::Running;
                rec.request.delivered = Some(now);
                rec.request.message = format!("the envelope was handed to agent {}", agent.host);
                restores::put(txn, &rec)?;
                app2.record_in(
                    txn,
                    NewEntry::new(&agent_actor(&agent.id), "envelope.deliver", &id, "ok")
                        .detail(json!({ "pd": rec.request.pd, "job": job_id, "host": agent.host })),
                )?;
            }
            Ok(())
        })
        .await
}

/// Applies the agent's restore reports inside the report transaction: the
/// request ends done or failed with the agent's [`RestoreReport`], the
/// envelope is dropped, and `restore.done` / `restore.failed` is recorded.
/// A report naming a request of another agent changes nothing.
pub fn on_reports(
    app: &App,
    txn: &WriteTransaction,
    agent: &AgentRecord,
    reports: &[JobReport],
) -> crate::error::Result<()> {
    for r in reports {
        let ReportKind::Restore { request_id, detail } = &r.kind else {
            continue;
        };
        let Some(mut rec) = restores::get_in(txn, request_id)? else {
            continue;
        };
        if rec.request.agent_id != agent.id || rec.request.state.is_final() {
            continue;
        }
        let report: Option<RestoreReport> =
            detail.clone().and_then(|d| serde_json::from_value(d).ok());
        let ok =
            r.outcome == Outcome::Succeeded && report.as_ref().is_some_and(RestoreReport::clean);
        rec.request.state = if ok {
            RestoreState::Done
        } else {
            RestoreState::Failed
        };
        rec.request.finished = Some(r.finished);
        rec.request.message = if r.message.is_empty() {
            if ok {
                "restored and verified".into()
            } else {
                "the restore failed".into()
            }
        } else {
            r.message.clone()
        };
        rec.request.report = report.clone();
        rec.envelope = None;
        restores::put(txn, &rec)?;
        // The use (or refusal) of the envelope, as the agent reports it.
        let used = report.as_ref().is_some_and(|r| r.envelope_used);
        app.record_in(
            txn,
            NewEntry::new(
                &agent_actor(&agent.id),
                "envelope.use",
                request_id,
                if used { "ok" } else { "refused" },
            )
            .detail(json!({ "pd": rec.request.pd, "job": r.job_id })),
        )?;
        let action = if ok { "restore.done" } else { "restore.failed" };
        app.record_in(
            txn,
            NewEntry::new(
                &agent_actor(&agent.id),
                action,
                request_id,
                if ok { "ok" } else { "failed" },
            )
            .detail(summary(&rec.request.pd, r, report.as_ref())),
        )?;
    }
    Ok(())
}

/// The audit detail of a restore's end: counts, site, verification, the
/// first problems (never file contents).
fn summary(pd: &str, r: &JobReport, report: Option<&RestoreReport>) -> serde_json::Value {
    let Some(rep) = report else {
        return json!({ "pd": pd, "job": r.job_id, "message": r.message });
    };
    json!({
        "pd": pd,
        "job": r.job_id,
        "snapshot": rep.snapshot,
        "site": rep.site.map(|s| s.name()),
        "onsite_error": rep.onsite_error,
        "files": rep.files,
        "bytes": rep.bytes,
        // Audit details hold no floats (the hash is over canonical JSON).
        "millis": (rep.seconds * 1000.0).round() as u64,
        "verified_files": rep.verified_files,
        "verify_failures": rep.verify_failures.len(),
        "errors": rep.errors.iter().take(5).collect::<Vec<_>>(),
        "moved_aside": rep.moved_aside_count,
        "pipe_status": rep.pipe_status,
        "message": r.message,
    })
}
