//! Custodian-approved restores, controller side: filing, the approval
//! material, approval (the envelope), rejection, cancellation and expiry
//! (this file); delivery of the envelope to the agent and the agent's
//! report (`delivery.rs`).
//!
//! The controller never holds a PD's identity: the approval material hands
//! out the identity only wrapped with the custodian's passphrase (as the
//! repository stores it), and an approval body is nothing but an envelope
//! sealed to the restoring agent. A body containing `AGE-SECRET-KEY` is
//! refused before anything is stored.
//!
//! Every step is an audit entry committed in the same transaction as the
//! change it records (`App::record_in`).

mod delivery;
pub(crate) mod filing;

use std::sync::Arc;

use axum::http::StatusCode;
use cadang_proto::restore::{RestoreRequest, RestoreState, Signoff};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::api::{ApiErr, App};
use crate::audit::{NewEntry, CONTROLLER_ACTOR};
use crate::state::jobs;
use crate::state::restores::{self, RestoreRecord};
use crate::state::users::UserRecord;

pub use delivery::{delivered, on_reports, wire_job};
pub use filing::{approval_material, file};

/// The longest an approval body may be (an envelope is ~1 KiB).
pub const MAX_APPROVAL_BYTES: usize = 64 * 1024;

pub(crate) fn conflict(msg: impl Into<String>) -> ApiErr {
    ApiErr::new(StatusCode::CONFLICT, msg)
}

pub(crate) fn signoff(user: &UserRecord, at: DateTime<Utc>) -> Signoff {
    Signoff {
        actor: user.actor(),
        name: user.name.clone(),
        at,
    }
}

/// The request `id` as `user` may see it (custodians: their PDs only),
/// after expiring it if its time ran out.
pub async fn show(app: &Arc<App>, user: &UserRecord, id: &str) -> Result<RestoreRequest, ApiErr> {
    expire_overdue(app).await?;
    let rec = load(app, id)?;
    if !user.covers_pd(&rec.request.pd) {
        return Err(ApiErr::forbidden(format!(
            "{} is not the custodian of PD {}, so may not see its restore requests",
            user.name, rec.request.pd
        )));
    }
    Ok(rec.request)
}

/// Every request `user` may see, newest first.
pub async fn list(app: &Arc<App>, user: &UserRecord) -> Result<Vec<RestoreRequest>, ApiErr> {
    expire_overdue(app).await?;
    let recs = app
        .state
        .read(|txn| restores::list(txn, |pd| user.covers_pd(pd)))?;
    Ok(recs.into_iter().map(|r| r.request).collect())
}

pub(crate) fn load(app: &App, id: &str) -> Result<RestoreRecord, ApiErr> {
    app.state
        .read(|txn| restores::get(txn, id))?
        .ok_or_else(|| {
            ApiErr::not_found(format!(
                "there is no restore request {id}; check the id against Restore requests in the console (or `cadang restore list`)"
            ))
        })
}

pub(crate) fn must_be_custodian(user: &UserRecord, pd: &str) -> Result<(), ApiErr> {
    if user.is_custodian_of(pd) {
        Ok(())
    } else {
        Err(ApiErr::forbidden(format!(
            "{} is not the Wali Data of PD {pd}: only the PD's custodian may approve or reject its restores",
            user.name
        )))
    }
}

/// Refuses an approval body that is not an armored age envelope, or that
/// carries an identity in the clear.
pub fn check_envelope_text(envelope: &str) -> Result<(), ApiErr> {
    if envelope.len() > MAX_APPROVAL_BYTES {
        return Err(ApiErr::bad_request(format!(
            "the approval envelope is {} bytes; an envelope is a few KiB at most — was the right file sent?",
            envelope.len()
        )));
    }
    if envelope.to_ascii_uppercase().contains("AGE-SECRET-KEY") {
        return Err(ApiErr::bad_request(
            "the approval body contains an age secret key (AGE-SECRET-KEY): refused and not stored. \
             The identity must only travel sealed inside the envelope; approve in the console (Approve in this browser) or with `cadang restore approve`, \
             and if this key was exposed, treat it as compromised",
        ));
    }
    if !envelope
        .trim_start()
        .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
    {
        return Err(ApiErr::bad_request(
            "the approval body is not an armored age envelope (-----BEGIN AGE ENCRYPTED FILE-----); approve in the console (Approve in this browser) or with `cadang restore approve`",
        ));
    }
    Ok(())
}

/// The custodian's approval: stores the envelope and queues the restore
/// job for the named agent, if the request is still pending and unexpired.
pub async fn approve(
    app: &Arc<App>,
    user: &UserRecord,
    id: &str,
    envelope: String,
) -> Result<RestoreRequest, ApiErr> {
    check_envelope_text(&envelope)?;
    expire_overdue(app).await?;
    let rec = load(app, id)?;
    must_be_custodian(user, &rec.request.pd)?;
    let (app2, user2, id2) = (app.clone(), user.clone(), id.to_string());
    let outcome = app
        .state
        .write_blocking(move |txn| {
            let now = app2.clock.now();
            let Some(mut rec) = restores::get_in(txn, &id2)? else {
                return Ok(Err(ApiErr::not_found(format!("there is no restore request {id2}"))));
            };
            if rec.request.state != RestoreState::Pending || rec.request.expires <= now {
                return Ok(Err(conflict(format!(
                    "restore request {id2} is {}, not pending: only a pending request can be approved",
                    rec.request.state.name()
                ))));
            }
            let agent: Option<crate::state::agents::AgentRecord> = crate::state::get_json(
                &txn.open_table(crate::state::AGENTS)?,
                &rec.request.agent_id,
            )?;
            let Some(agent) = agent.filter(|a| a.revoked.is_none()) else {
                return Ok(Err(conflict("the restoring agent is no longer enrolled; file the request again")));
            };
            let mut job = jobs::backup_job(&agent, "", None, now);
            job.kind = "restore".into();
            job.source = None;
            job.active_key = None;
            job.detail = json!({ "request_id": id2 });
            let job = jobs::create(txn, job)?
                .ok_or_else(|| crate::error::Error::State("a restore job was refused".into()))?;
            let fingerprint = crate::state::hash_hex(envelope.as_bytes());
            rec.envelope = Some(envelope);
            rec.request.state = RestoreState::Approved;
            rec.request.approved = Some(signoff(&user2, now));
            rec.request.job_id = Some(job.id.clone());
            rec.request.message = format!("approved; job {} waits for agent {}", job.id, agent.host);
            restores::put(txn, &rec)?;
            app2.record_in(
                txn,
                NewEntry::new(&user2.actor(), "restore.approve", &id2, "ok").detail(json!({
                    "pd": rec.request.pd, "agent": agent.id, "job": job.id,
                    "envelope_sha256": fingerprint,
                })),
            )?;
            Ok(Ok(rec.request))
        })
        .await??;
    app.notifier(&outcome.agent_id).notify_one();
    Ok(outcome)
}

/// The custodian says no, with a reason.
pub async fn reject(
    app: &Arc<App>,
    user: &UserRecord,
    id: &str,
    reason: String,
) -> Result<RestoreRequest, ApiErr> {
    let reason = reason.trim().to_string();
    if reason.is_empty() {
        return Err(ApiErr::bad_request(
            "a rejection needs a reason: the requester is told why",
        ));
    }
    expire_overdue(app).await?;
    let rec = load(app, id)?;
    must_be_custodian(user, &rec.request.pd)?;
    step(app, id, "restore.reject", user, move |rec, user, now| {
        if rec.request.state != RestoreState::Pending {
            return Err(conflict(format!(
                "restore request {} is {}: only a pending request can be rejected",
                rec.request.id,
                rec.request.state.name()
            )));
        }
        rec.request.state = RestoreState::Rejected;
        rec.request.rejected = Some(signoff(user, now));
        rec.request.reject_reason = Some(reason.clone());
        rec.request.message = format!("rejected by the Wali Data: {reason}");
        Ok(json!({ "reason": reason }))
    })
    .await
}

/// The operator withdraws a request not yet handed to the agent.
pub async fn cancel(app: &Arc<App>, user: &UserRecord, id: &str) -> Result<RestoreRequest, ApiErr> {
    expire_overdue(app).await?;
    load(app, id)?;
    step(app, id, "restore.cancel", user, |rec, user, now| {
        let open = matches!(rec.request.state, RestoreState::Pending)
            || (rec.request.state == RestoreState::Approved && rec.request.delivered.is_none());
        if !open {
            return Err(conflict(format!(
                "restore request {} is {}: only a pending request, or an approved one the agent has not received, can be cancelled",
                rec.request.id,
                rec.request.state.name()
            )));
        }
        rec.request.state = RestoreState::Cancelled;
        rec.request.cancelled = Some(signoff(user, now));
        rec.request.message = format!("cancelled by {}", user.name);
        Ok(json!({}))
    })
    .await
}

type StepFn = dyn Fn(&mut RestoreRecord, &UserRecord, DateTime<Utc>) -> Result<serde_json::Value, ApiErr>
    + Send;

/// One person's state change: check and change the record, drop the
/// envelope and finish the queued job if the request ended, and record
/// the audit entry, all in one transaction.
async fn step(
    app: &Arc<App>,
    id: &str,
    action: &'static str,
    user: &UserRecord,
    change: impl Fn(&mut RestoreRecord, &UserRecord, DateTime<Utc>) -> Result<serde_json::Value, ApiErr>
        + Send
        + 'static,
) -> Result<RestoreRequest, ApiErr> {
    let change: Box<StepFn> = Box::new(change);
    let (app2, user2, id2) = (app.clone(), user.clone(), id.to_string());
    app.state
        .write_blocking(move |txn| {
            let now = app2.clock.now();
            let Some(mut rec) = restores::get_in(txn, &id2)? else {
                return Ok(Err(ApiErr::not_found(format!(
                    "there is no restore request {id2}"
                ))));
            };
            let detail = match change(&mut rec, &user2, now) {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
            let outcome = rec.request.state.name();
            close_job(txn, &mut rec, outcome, now)?;
            restores::put(txn, &rec)?;
            let mut detail = detail;
            detail["pd"] = json!(rec.request.pd);
            app2.record_in(
                txn,
                NewEntry::new(&user2.actor(), action, &id2, "ok").detail(detail),
            )?;
            Ok(Ok(rec.request))
        })
        .await?
}

/// A request that ended before its agent got it: the queued job is
/// finished (it leaves the agent's queue) and the envelope forgotten.
fn close_job(
    txn: &redb::WriteTransaction,
    rec: &mut RestoreRecord,
    outcome: &str,
    now: DateTime<Utc>,
) -> crate::error::Result<()> {
    if !rec.request.state.is_final() {
        return Ok(());
    }
    rec.envelope = None;
    if let Some(job_id) = &rec.request.job_id {
        let read = txn.open_table(crate::state::JOBS)?;
        let job: Option<jobs::JobRecord> = crate::state::get_json(&read, job_id)?;
        drop(read);
        if let Some(mut job) = job.filter(|j| j.state != jobs::JobState::Finished) {
            let message = format!("restore request {} was {outcome}", rec.request.id);
            jobs::finish(txn, &mut job, "cancelled", &message, now)?;
        }
    }
    Ok(())
}

/// Expires every request whose time ran out before its agent got it (on
/// each read and approval, and from the dispatcher): it can never run.
pub async fn expire_overdue(app: &Arc<App>) -> Result<usize, ApiErr> {
    let now = app.clock.now();
    let due = app.state.read(|txn| restores::overdue(txn, now))?;
    if due.is_empty() {
        return Ok(0);
    }
    let app2 = app.clone();
    let n = app
        .state
        .write_blocking(move |txn| {
            let now = app2.clock.now();
            let mut n = 0;
            for id in due {
                let Some(mut rec) = restores::get_in(txn, &id)? else {
                    continue;
                };
                if !restores::is_overdue(&rec.request, now) {
                    continue;
                }
                let was = rec.request.state.name();
                rec.request.state = RestoreState::Expired;
                rec.request.message = format!(
                    "expired at {} while {was}; file the request again if it is still needed",
                    rec.request.expires
                );
                close_job(txn, &mut rec, "expired", now)?;
                restores::put(txn, &rec)?;
                app2.record_in(
                    txn,
                    NewEntry::new(CONTROLLER_ACTOR, "restore.expire", &id, "ok").detail(json!({
                        "pd": rec.request.pd, "expires": rec.request.expires, "was": was,
                    })),
                )?;
                n += 1;
            }
            Ok(n)
        })
        .await?;
    Ok(n)
}
