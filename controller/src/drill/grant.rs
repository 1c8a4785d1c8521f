//! Drill grants: what the custodian's CLI fetches to seal one, accepting
//! the sealed envelope (never an identity), revoking, listing.

use std::sync::Arc;

use cadang_proto::agent::AgentRole;
use cadang_proto::drill::{GrantMaterial, GrantUpload, GrantView, MAX_GRANT_DAYS};
use chrono::Duration;
use serde_json::json;

use crate::api::{ApiErr, App};
use crate::audit::NewEntry;
use crate::report::drill::AuditRef;
use crate::state::agents::{self, AgentRecord};
use crate::state::drills::{self, GrantRecord};
use crate::state::users::UserRecord;

/// Only the PD's Wali Data grants drills (an admin's rights do not include it).
fn custodian_of(user: &UserRecord, pd: &str) -> Result<(), ApiErr> {
    if user.is_custodian_of(pd) {
        Ok(())
    } else {
        Err(ApiErr::forbidden(format!(
            "{} is not the custodian (Wali Data) of PD {pd}; only they grant its drills",
            user.name
        )))
    }
}

/// The enrolled drill runner `host` of `pd`, or why it cannot be one.
fn runner_agent(app: &App, pd: &str, host: &str) -> Result<AgentRecord, ApiErr> {
    let agent = app
        .state
        .read(|txn| agents::active_for_host(txn, host))?
        .ok_or_else(|| {
            ApiErr::not_found(format!(
                "no enrolled agent serves host {host}; enroll a drill runner on that host first (with an enrollment token for the drill-runner role), then grant again"
            ))
        })?;
    if agent.role != AgentRole::DrillRunner {
        return Err(ApiErr::bad_request(format!(
            "host {host} is enrolled as a backup agent, not a drill runner; a grant may only go to an agent enrolled with the drill-runner role"
        )));
    }
    if agent.pd != pd {
        return Err(ApiErr::bad_request(format!(
            "drill runner {host} is enrolled for PD {}, not {pd}; enroll a runner for {pd}",
            agent.pd
        )));
    }
    Ok(agent)
}

/// What `cadang drill grant` seals with.
pub async fn material(
    app: &Arc<App>,
    user: &UserRecord,
    pd: &str,
    runner: &str,
) -> Result<GrantMaterial, ApiErr> {
    custodian_of(user, pd)?;
    let agent = runner_agent(app, pd, runner)?;
    let wrapped = crate::restore::filing::wrapped_identity(app, pd).await?;
    Ok(GrantMaterial {
        pd: pd.into(),
        runner: agent.host.clone(),
        runner_agent_id: agent.id.clone(),
        runner_recipient: agent.age_recipient.clone(),
        wrapped_identity: cadang_proto::drill::encode_envelope(&wrapped),
        max_not_after: app.clock.now() + Duration::days(MAX_GRANT_DAYS),
        controller_key: cadang_core::certify::Certifier::controller(&app.signing_secret)
            .public_hex(),
    })
}

/// Refuses anything but a plausible armored age envelope: in particular a
/// body holding the identity itself.
fn check_envelope(envelope: &str) -> Result<(), ApiErr> {
    if envelope.contains("AGE-SECRET-KEY") {
        return Err(ApiErr::bad_request(
            "the body holds an identity (AGE-SECRET-KEY): refused and not stored. The controller never takes one; seal the identity for the drill runner on your own computer (`cadang drill grant` does this) and send only the envelope",
        ));
    }
    if !envelope
        .trim_start()
        .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
        || envelope.len() > 64 * 1024
    {
        return Err(ApiErr::bad_request(
            "the envelope is not an armored age file (-----BEGIN AGE ENCRYPTED FILE-----, at most 64 KiB); seal the grant again on your own computer (`cadang drill grant`)",
        ));
    }
    Ok(())
}

/// Stores a sealed grant and its `drill.grant` entry in one transaction.
pub async fn accept(
    app: &Arc<App>,
    user: &UserRecord,
    pd: &str,
    upload: GrantUpload,
) -> Result<GrantView, ApiErr> {
    custodian_of(user, pd)?;
    check_envelope(&upload.envelope)?;
    let now = app.clock.now();
    if upload.not_after <= now {
        return Err(ApiErr::bad_request(format!(
            "the grant would end at {}, which is past; grant again with a validity in the future, e.g. 365 days",
            upload.not_after
        )));
    }
    if upload.not_after > now + Duration::days(MAX_GRANT_DAYS) + Duration::minutes(10) {
        return Err(ApiErr::bad_request(format!(
            "a drill grant is valid for at most {MAX_GRANT_DAYS} days; grant again for 365 days or less"
        )));
    }
    let agent = runner_agent(app, pd, &upload.runner)?;
    let mut rnd = [0u8; 4];
    cadang_core::keys::fill_random(&mut rnd);
    let view = GrantView {
        id: format!("g{}-{}", now.format("%Y%m%d%H%M%S"), hex::encode(rnd)),
        pd: pd.into(),
        runner: agent.host.clone(),
        runner_agent_id: agent.id.clone(),
        not_after: upload.not_after,
        granted_by: user.actor(),
        granted: now,
        revoked: None,
        revoked_by: None,
    };
    let (app2, view2, envelope) = (app.clone(), view.clone(), upload.envelope);
    app.state
        .write_blocking(move |txn| {
            let entry = app2.record_in(
                txn,
                NewEntry::new(
                    &view2.granted_by,
                    "drill.grant",
                    &format!("{}/drill-grant/{}", view2.pd, view2.id),
                    "ok",
                )
                .detail(json!({
                    "runner": view2.runner,
                    "runner_agent": view2.runner_agent_id,
                    "not_after": view2.not_after.to_rfc3339(),
                })),
            )?;
            drills::put_grant(
                txn,
                &GrantRecord {
                    view: view2,
                    envelope,
                    audit: vec![AuditRef {
                        seq: entry.seq,
                        hash: entry.hash,
                        action: entry.action,
                    }],
                },
            )
        })
        .await?;
    Ok(view)
}

/// Revokes a grant (its custodian, or an admin): drills stop using it.
pub async fn revoke(app: &Arc<App>, user: &UserRecord, id: &str) -> Result<GrantView, ApiErr> {
    let mut g = app
        .state
        .read(|txn| drills::grant(txn, id))?
        .ok_or_else(|| {
            ApiErr::not_found(format!(
                "there is no drill grant {id}; check the id against the PD's list of drill grants"
            ))
        })?;
    if !(user.is_custodian_of(&g.view.pd) || user.has("admin")) {
        return Err(ApiErr::forbidden(format!(
            "{} may not revoke drill grants of PD {}: only its custodian or an admin",
            user.name, g.view.pd
        )));
    }
    if g.view.revoked.is_some() {
        return Ok(g.view);
    }
    g.view.revoked = Some(app.clock.now());
    g.view.revoked_by = Some(user.actor());
    let (app2, g2) = (app.clone(), g.clone());
    app.state
        .write_blocking(move |txn| {
            app2.record_in(
                txn,
                NewEntry::new(
                    g2.view.revoked_by.as_deref().unwrap_or_default(),
                    "drill.grant.revoke",
                    &format!("{}/drill-grant/{}", g2.view.pd, g2.view.id),
                    "ok",
                ),
            )?;
            drills::put_grant(txn, &g2)
        })
        .await?;
    Ok(g.view)
}

/// The grants `user` may see.
pub fn list(app: &App, user: &UserRecord) -> Result<Vec<GrantView>, ApiErr> {
    Ok(app
        .state
        .read(drills::grants)?
        .into_iter()
        .filter(|g| user.covers_pd(&g.view.pd))
        .map(|g| g.view)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sealed_envelopes_are_accepted() {
        assert!(check_envelope(
            "-----BEGIN AGE ENCRYPTED FILE-----\nabc\n-----END AGE ENCRYPTED FILE-----\n"
        )
        .is_ok());
        assert!(check_envelope("AGE-SECRET-KEY-1QQQ").is_err());
        assert!(check_envelope("-----BEGIN AGE ENCRYPTED FILE-----\nAGE-SECRET-KEY-1\n").is_err());
        assert!(check_envelope("plain text").is_err());
    }
}
