//! Filing a restore request (operator) and handing the custodian what the
//! approval needs (approval material).

use std::sync::Arc;

use base64::Engine;
use cadang_core::backend::FileKind;
use cadang_core::repository::IDENTITY_FILE;
use cadang_proto::restore::{
    ApprovalMaterial, FileRestore, RestoreRequest, RestoreState, RestoreWhat,
    DEFAULT_EXPIRY_SECONDS, MAX_EXPIRY_SECONDS,
};
use serde_json::json;

use super::{conflict, expire_overdue, load, must_be_custodian};
use crate::api::{ApiErr, App};
use crate::audit::NewEntry;
use crate::state::agents::{self, AgentRecord};
use crate::state::pds::{self, SnapshotEntry};
use crate::state::restores::{self, RestoreRecord};
use crate::state::users::UserRecord;

/// Checks the body alone: a reason, an absolute target, absolute paths, a
/// stream name, a sane expiry.
fn validate(body: &FileRestore) -> Result<u64, ApiErr> {
    let bad = |m: String| Err(ApiErr::bad_request(m));
    if body.reason.trim().is_empty() {
        return bad("a restore request needs a reason: the Wali Data decides on it".into());
    }
    if !body.target.starts_with('/')
        || body.target.contains('\0')
        || body.target.split('/').any(|c| c == "..")
    {
        return bad(format!(
            "the target {:?} must be an absolute directory on the agent's host, without `..`",
            body.target
        ));
    }
    match &body.what {
        RestoreWhat::Whole => {}
        RestoreWhat::Paths { paths } => {
            if paths.is_empty() {
                return bad(
                    "the list of paths to restore is empty; name at least one path, or restore the whole snapshot".into(),
                );
            }
            if let Some(p) = paths
                .iter()
                .find(|p| !p.starts_with('/') || p.contains('\0'))
            {
                return bad(format!(
                    "the path {p:?} must be an absolute path as backed up (starting with /)"
                ));
            }
        }
        RestoreWhat::Dump { stream, pipe } => {
            if stream.trim().is_empty() || stream.contains('\0') {
                return bad(
                    "a database restore needs the stream name of the database source".into(),
                );
            }
            if pipe.as_deref().is_some_and(|p| p.trim().is_empty()) {
                return bad(
                    "the command to pipe the dump into is empty; give a command, or leave it out"
                        .into(),
                );
            }
        }
    }
    let expiry = body.expires_seconds.unwrap_or(DEFAULT_EXPIRY_SECONDS);
    if expiry == 0 || expiry > MAX_EXPIRY_SECONDS {
        return bad(format!(
            "the expiry must be between 1 second and {} days",
            MAX_EXPIRY_SECONDS / 86_400
        ));
    }
    Ok(expiry)
}

/// `latest` (of the source host, else of the agent's host, else of the
/// PD), or the one catalogue entry an id prefix names.
fn resolve_snapshot(
    catalogue: &[SnapshotEntry],
    which: &str,
    host: Option<&str>,
    agent_host: &str,
) -> Result<SnapshotEntry, ApiErr> {
    if catalogue.is_empty() {
        return Err(conflict(
            "the PD has no snapshot in the controller's catalogue yet: wait for its first backup, or, if its repository already holds snapshots, ask the controller's administrator to rebuild the catalogue from the stores",
        ));
    }
    if which == "latest" {
        // The catalogue is newest first.
        let of = |h: &str| catalogue.iter().find(|s| s.host == h).cloned();
        return match host {
            Some(h) => of(h).ok_or_else(|| {
                ApiErr::bad_request(format!("host {h} has no snapshot in the PD's catalogue"))
            }),
            None => Ok(of(agent_host).unwrap_or_else(|| catalogue[0].clone())),
        };
    }
    let want = which.to_ascii_lowercase();
    if want.is_empty() || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiErr::bad_request(format!(
            "snapshot {which:?} is neither `latest` nor a snapshot id (hex)"
        )));
    }
    let hits: Vec<&SnapshotEntry> = catalogue
        .iter()
        .filter(|s| s.id.starts_with(&want))
        .collect();
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ApiErr::bad_request(format!(
            "snapshot {which} is not in the PD's catalogue; pick one from the PD's snapshot history (the PD's page in the console, or `cadang snapshots --pd PD`)"
        ))),
        _ => Err(ApiErr::bad_request(format!(
            "snapshot prefix {which} names {} snapshots; give more digits",
            hits.len()
        ))),
    }
}

/// The restoring agent: enrolled, not revoked, of the request's PD (an
/// agent of another PD must never receive this PD's identity).
fn restoring_agent(app: &App, host: &str, pd: &str) -> Result<AgentRecord, ApiErr> {
    let agent = app
        .state
        .read(|txn| agents::active_for_host(txn, host))?
        .ok_or_else(|| {
            ApiErr::bad_request(format!(
                "no enrolled agent serves host {host}; restore to a host whose agent is enrolled, or enroll an agent on that host first"
            ))
        })?;
    if agent.pd != pd {
        return Err(ApiErr::bad_request(format!(
            "the agent on {host} belongs to PD {}, not {pd}: a PD's data is restored only by its own agents",
            agent.pd
        )));
    }
    Ok(agent)
}

/// Files a request (operator, admin): pending until the Wali Data acts.
pub async fn file(
    app: &Arc<App>,
    user: &UserRecord,
    body: FileRestore,
) -> Result<RestoreRequest, ApiErr> {
    let expiry = validate(&body)?;
    app.state
        .read(|txn| pds::get(txn, &body.pd))?
        .ok_or_else(|| ApiErr::not_found(format!("PD {} is not registered", body.pd)))?;
    let agent = restoring_agent(app, &body.agent, &body.pd)?;
    let catalogue = app.state.read(|txn| pds::snapshots(txn, &body.pd))?;
    let snap = resolve_snapshot(
        &catalogue,
        &body.snapshot,
        body.source_host.as_deref(),
        &agent.host,
    )?;
    let (app2, user2) = (app.clone(), user.clone());
    let req = app
        .state
        .write_blocking(move |txn| {
            let now = app2.clock.now();
            let request = RestoreRequest {
                id: restores::next_id(txn)?,
                pd: body.pd.clone(),
                snapshot: snap.id.clone(),
                snapshot_time: Some(snap.time),
                snapshot_host: Some(snap.host.clone()),
                what: body.what.clone(),
                agent_id: agent.id.clone(),
                agent_host: agent.host.clone(),
                target: body.target.clone(),
                in_place: body.in_place,
                reason: body.reason.trim().to_string(),
                expires: now + chrono::Duration::seconds(expiry as i64),
                state: RestoreState::Pending,
                filed: super::signoff(&user2, now),
                approved: None,
                rejected: None,
                reject_reason: None,
                cancelled: None,
                job_id: None,
                delivered: None,
                finished: None,
                report: None,
                message: "waiting for the Wali Data's approval".into(),
            };
            restores::put(
                txn,
                &RestoreRecord {
                    request: request.clone(),
                    envelope: None,
                },
            )?;
            app2.record_in(
                txn,
                NewEntry::new(&user2.actor(), "restore.request", &request.id, "ok").detail(json!({
                    "pd": request.pd, "snapshot": request.snapshot, "what": request.what,
                    "agent": request.agent_id, "host": request.agent_host,
                    "target": request.target, "in_place": request.in_place,
                    "reason": request.reason, "expires": request.expires,
                })),
            )?;
            Ok(request)
        })
        .await?;
    Ok(req)
}

/// Reads the PD's passphrase-wrapped identity from its repository: the
/// on-site store, else the DR copy.
/// `keys/identity.age` of the PD's repository: on-site, else the DR copy
/// (approval material for restores and drill grants).
pub(crate) async fn wrapped_identity(app: &App, pd: &str) -> Result<Vec<u8>, ApiErr> {
    let set = app.policies().ok_or_else(|| {
        ApiErr::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the controller has no valid policy set loaded",
        )
    })?;
    let (onsite, dr) = set
        .stores_of(pd)
        .ok_or_else(|| conflict(format!("PD {pd} has no stores in its policy")))?;
    let mut problems = Vec::new();
    for store in [&onsite.name, &dr.name] {
        let Some(target) = app.config.store_target(store) else {
            problems.push(format!(
                "store {store} is not configured in controller.toml"
            ));
            continue;
        };
        let read = async {
            let backend = target.open_pd(pd).map_err(|e| e.to_string())?;
            backend
                .read(FileKind::Keys, IDENTITY_FILE)
                .await
                .map_err(|e| e.to_string())
        };
        match read.await {
            Ok(bytes) => return Ok(bytes),
            Err(e) => problems.push(format!("store {store}: {e}")),
        }
    }
    Err(ApiErr::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the PD's wrapped identity (keys/{IDENTITY_FILE}) cannot be read from either store: {}",
            problems.join("; ")
        ),
    ))
}

/// What `cadang restore approve` needs (the PD's custodian only): the
/// request, the agent's recipient, the wrapped identity.
pub async fn approval_material(
    app: &Arc<App>,
    user: &UserRecord,
    id: &str,
) -> Result<ApprovalMaterial, ApiErr> {
    expire_overdue(app).await?;
    let rec = load(app, id)?;
    must_be_custodian(user, &rec.request.pd)?;
    if rec.request.state != RestoreState::Pending {
        return Err(conflict(format!(
            "restore request {id} is {}: only a pending request can be approved",
            rec.request.state.name()
        )));
    }
    let agent = app
        .state
        .read(|txn| agents::get(txn, &rec.request.agent_id))?
        .filter(|a| a.revoked.is_none())
        .ok_or_else(|| {
            conflict("the restoring agent was revoked; cancel this request and file it again")
        })?;
    let pd = app
        .state
        .read(|txn| pds::get(txn, &rec.request.pd))?
        .ok_or_else(|| conflict(format!("PD {} is no longer registered", rec.request.pd)))?;
    let wrapped = wrapped_identity(app, &rec.request.pd).await?;
    app.record(
        NewEntry::new(&user.actor(), "restore.material", id, "ok")
            .detail(json!({ "pd": rec.request.pd, "agent": agent.id })),
    )?;
    Ok(ApprovalMaterial {
        request: rec.request,
        agent_recipient: agent.age_recipient,
        wrapped_identity: base64::engine::general_purpose::STANDARD.encode(wrapped),
        data_recipient: pd.data_recipient,
        controller_key: cadang_core::certify::Certifier::controller(&app.signing_secret)
            .public_hex(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, host: &str, minute: u32) -> SnapshotEntry {
        SnapshotEntry {
            pd: "P".into(),
            id: id.into(),
            host: host.into(),
            source: "files".into(),
            time: format!("2026-12-03T00:{minute:02}:00Z").parse().unwrap(),
            files: 1,
            bytes_read: 1,
            bytes_added: 1,
        }
    }

    #[test]
    fn latest_prefers_the_named_host_then_the_agents_then_the_pds() {
        // Newest first, as the catalogue returns it.
        let cat = vec![
            entry("cc01", "b", 3),
            entry("bb01", "a", 2),
            entry("aa01", "a", 1),
        ];
        assert_eq!(
            resolve_snapshot(&cat, "latest", None, "a").unwrap().id,
            "bb01"
        );
        assert_eq!(
            resolve_snapshot(&cat, "latest", None, "new").unwrap().id,
            "cc01"
        );
        assert_eq!(
            resolve_snapshot(&cat, "latest", Some("a"), "b").unwrap().id,
            "bb01"
        );
        assert!(resolve_snapshot(&cat, "latest", Some("zz"), "b").is_err());
        assert_eq!(resolve_snapshot(&cat, "AA", None, "b").unwrap().id, "aa01");
        assert!(resolve_snapshot(&cat, "../x", None, "b").is_err());
        assert!(resolve_snapshot(&[], "latest", None, "b").is_err());
    }

    #[test]
    fn bodies_need_a_reason_an_absolute_target_and_a_sane_expiry() {
        let ok = FileRestore {
            pd: "P".into(),
            snapshot: "latest".into(),
            source_host: None,
            what: RestoreWhat::Whole,
            agent: "h".into(),
            target: "/srv/restore".into(),
            in_place: false,
            reason: "disk failed".into(),
            expires_seconds: None,
        };
        assert_eq!(validate(&ok).unwrap(), DEFAULT_EXPIRY_SECONDS);
        for bad in [
            FileRestore {
                reason: " ".into(),
                ..ok.clone()
            },
            FileRestore {
                target: "rel".into(),
                ..ok.clone()
            },
            FileRestore {
                target: "/a/../etc".into(),
                ..ok.clone()
            },
            FileRestore {
                expires_seconds: Some(MAX_EXPIRY_SECONDS + 1),
                ..ok.clone()
            },
            FileRestore {
                what: RestoreWhat::Paths {
                    paths: vec!["x".into()],
                },
                ..ok.clone()
            },
        ] {
            assert!(validate(&bad).is_err());
        }
    }
}
