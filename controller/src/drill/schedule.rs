//! A drill falls due (the engine plans `TaskKey::Drill` from the PD's
//! `DrillPolicy.schedule`): find the grant and the runner, pick the
//! snapshot from what the DR store really holds, and queue the drill job.
//! Without a usable grant, runner or snapshot the drill is recorded failed
//! with the reason (audit entry and metric) and nothing runs.

use std::sync::Arc;

use cadang_core::keys::RepoSecret;
use cadang_core::snapshot::Snapshot;
use cadang_policies::model::{DrillCheck, DrillPick, PdPolicy, PolicySet};
use cadang_proto::agent::AgentRole;
use cadang_proto::drill::{DrillCheckSpec, DrillJob};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::api::App;
use crate::audit::{NewEntry, CONTROLLER_ACTOR};
use crate::error::{Error, Result};
use crate::report::drill::AuditRef;
use crate::state::agents::{self, AgentRecord};
use crate::state::drills::{self, DrillRecord, DrillState, GrantRecord};
use crate::state::jobs::{self, JobRecord, JobState};
use crate::state::pds;

/// What the DR store holds of a PD: its snapshots, newest last.
struct DrCopy {
    snapshots: Vec<Snapshot>,
    secret: Option<RepoSecret>,
}

/// Why a drill cannot be started, in words for the operator.
type Refusal = String;

/// Plans and queues the drill of `pd` for `slot`, or records why it failed.
pub async fn start(app: &Arc<App>, set: &PolicySet, pd: &str, now: DateTime<Utc>) -> Result<()> {
    let Some(policy) = set.pds.get(pd) else {
        return Ok(());
    };
    let Some(drill) = &policy.drill else {
        return Ok(());
    };
    let base = base_record(policy, now);
    let grant = match usable_grant(app, policy, now) {
        Ok(g) => g,
        Err(why) => return fail(app, base, why, "no-grant").await,
    };
    let agent = match runner_of(app, &grant) {
        Ok(a) => a,
        Err(why) => return fail(app, base, why, "no-runner").await,
    };
    let base = DrillRecord {
        runner: agent.host.clone(),
        runner_agent_id: Some(agent.id.clone()),
        grant_id: Some(grant.view.id.clone()),
        ..base
    };
    let copy = match dr_copy(app, policy).await {
        Ok(c) => c,
        Err(why) => return fail(app, base, why, "dr-damaged").await,
    };
    let Some(chosen) = pick(&copy.snapshots, drill.pick) else {
        let why = format!(
            "the DR store holds no snapshot of PD {pd} to drill with; check that backups run and replication reaches the DR site"
        );
        return fail(app, base, why, "no-snapshot").await;
    };
    let newest = copy
        .snapshots
        .last()
        .map(|s| s.payload.time.with_timezone(&Utc));
    let record = DrillRecord {
        snapshot: Some(chosen.id.to_hex()),
        snapshot_time: Some(chosen.payload.time.with_timezone(&Utc)),
        source_host: source_host(app, pd, chosen, copy.secret.as_ref()),
        recovery_point_age_seconds: newest
            .map(|t| (now - t).num_seconds().max(0) as u64)
            .unwrap_or(0),
        check: drill.check.as_ref().map(check_spec),
        approvals: grant.audit.clone(),
        ..base
    };
    let job = DrillJob {
        drill_id: String::new(),
        pd: pd.into(),
        envelope: grant.envelope.clone(),
        snapshot: chosen.id.to_hex(),
        snapshot_time: chosen.payload.time.with_timezone(&Utc),
        store: policy.dr_store.clone(),
        check: record.check.clone(),
        rto_seconds: record.rto_seconds,
    };
    queue(app, &agent, record, job, now).await
}

fn base_record(policy: &PdPolicy, now: DateTime<Utc>) -> DrillRecord {
    let drill = policy.drill.as_ref();
    DrillRecord {
        id: String::new(),
        pd: policy.code.clone(),
        runner: drill.and_then(|d| d.runner.clone()).unwrap_or_default(),
        runner_agent_id: None,
        grant_id: None,
        snapshot: None,
        snapshot_time: None,
        source_host: String::new(),
        recovery_point_age_seconds: 0,
        rto_seconds: drill.map(|d| d.rto.as_secs()).unwrap_or(0),
        rpo_seconds: policy.rpo.as_secs(),
        check: None,
        created: now,
        state: DrillState::Queued,
        reasons: Vec::new(),
        started: None,
        finished: None,
        result: None,
        approvals: Vec::new(),
        has_report: false,
    }
}

fn usable_grant(app: &App, policy: &PdPolicy, now: DateTime<Utc>) -> Result<GrantRecord, Refusal> {
    let runner = policy.drill.as_ref().and_then(|d| d.runner.as_deref());
    let pd = &policy.code;
    let found = app
        .state
        .read(|txn| drills::active_grant(txn, pd, runner, now))
        .map_err(|e| e.to_string())?;
    if let Some(g) = found {
        return Ok(g);
    }
    let newest = app
        .state
        .read(|txn| drills::newest_grant(txn, pd))
        .map_err(|e| e.to_string())?;
    Err(match newest {
        None => format!("PD {pd} has no drill grant: its Wali Data must grant restore drills to the PD's drill runner (e.g. for 365 days) before a drill can run"),
        Some(g) if g.view.revoked.is_some() => format!("the drill grant {} of PD {pd} was revoked; its Wali Data must grant drills again before the next drill can run", g.view.id),
        Some(g) if g.view.not_after <= now => format!("the drill grant {} of PD {pd} expired at {}; its Wali Data must grant drills again (a new grant) before the next drill can run", g.view.id, g.view.not_after),
        Some(g) => format!("the drill grant {} of PD {pd} is for runner {}, but the policy names runner {}; grant drills to that runner", g.view.id, g.view.runner, runner.unwrap_or("-")),
    })
}

/// The grant's runner, still enrolled with the same key it was sealed to.
fn runner_of(app: &App, grant: &GrantRecord) -> Result<AgentRecord, Refusal> {
    let agent = app
        .state
        .read(|txn| agents::get(txn, &grant.view.runner_agent_id))
        .map_err(|e| e.to_string())?;
    match agent {
        Some(a) if a.revoked.is_none() && a.role == AgentRole::DrillRunner => Ok(a),
        _ => Err(format!(
            "drill runner {} (agent {}) the grant was sealed to is no longer enrolled (revoked or enrolled again); the Wali Data grants drills to the new runner",
            grant.view.runner, grant.view.runner_agent_id
        )),
    }
}

/// Lists the PD's snapshots in the DR store (keyless: ids and times).
async fn dr_copy(app: &App, policy: &PdPolicy) -> Result<DrCopy, Refusal> {
    let target = app.config.store_target(&policy.dr_store).ok_or_else(|| {
        format!(
            "the DR store {} is not configured in controller.toml",
            policy.dr_store
        )
    })?;
    let backend = target
        .open_pd(&policy.code)
        .map_err(|e| format!("the DR store {} cannot be opened: {e}", policy.dr_store))?;
    let repo = cadang_core::Repository::open(backend)
        .await
        .map_err(|e| format!("the DR copy of PD {} cannot be read: {e}", policy.code))?;
    let (mut snapshots, _damaged) = repo
        .snapshots()
        .await
        .map_err(|e| format!("the DR copy's snapshots cannot be listed: {e}"))?;
    snapshots.sort_by_key(|s| s.payload.time);
    let secret = app
        .state
        .read(|txn| pds::get(txn, &policy.code))
        .ok()
        .flatten()
        .and_then(|p| RepoSecret::from_json(p.repo_secret_json.as_bytes()).ok());
    Ok(DrCopy { snapshots, secret })
}

/// The latest snapshot, or one drawn at random from those retention keeps.
fn pick(snapshots: &[Snapshot], how: DrillPick) -> Option<&Snapshot> {
    match how {
        DrillPick::Latest => snapshots.last(),
        DrillPick::RandomWithinRetention => {
            if snapshots.is_empty() {
                return None;
            }
            let mut b = [0u8; 8];
            cadang_core::keys::fill_random(&mut b);
            snapshots.get((u64::from_le_bytes(b) % snapshots.len() as u64) as usize)
        }
    }
}

/// The host that made the snapshot: from its sealed metadata (the
/// controller holds the repository secret), else the catalogue.
fn source_host(app: &App, pd: &str, s: &Snapshot, secret: Option<&RepoSecret>) -> String {
    if let Some(meta) = secret.and_then(|k| s.meta(k).ok()) {
        return meta.host;
    }
    app.state
        .read(|txn| pds::snapshots(txn, pd))
        .ok()
        .and_then(|all| all.into_iter().find(|e| e.id == s.id.to_hex()))
        .map(|e| e.host)
        .unwrap_or_default()
}

pub fn check_spec(c: &DrillCheck) -> DrillCheckSpec {
    match c {
        DrillCheck::Command { command } => DrillCheckSpec::Command {
            command: command.clone(),
        },
        DrillCheck::Postgres { stream, query, min } => DrillCheckSpec::Postgres {
            stream: stream.clone(),
            query: query.clone(),
            min: *min,
        },
    }
}

/// One transaction: the job for the runner, the drill, `drill.schedule`.
async fn queue(
    app: &Arc<App>,
    agent: &AgentRecord,
    mut record: DrillRecord,
    mut job: DrillJob,
    now: DateTime<Utc>,
) -> Result<()> {
    let (app2, agent2) = (app.clone(), agent.clone());
    let skipped = record.clone();
    let queued = app
        .state
        .write_blocking(move |txn| {
            let Some(created) = jobs::create(txn, job_record(&agent2, &record.pd, now))? else {
                // The previous drill of this PD is still queued or running.
                return Ok(None);
            };
            record.id = created.id.clone();
            job.drill_id = created.id.clone();
            let mut created = created;
            created.detail = serde_json::to_value(&job).map_err(|e| Error::State(e.to_string()))?;
            jobs::put(txn, &created)?;
            let entry = app2.record_in(
                txn,
                NewEntry::new(
                    CONTROLLER_ACTOR,
                    "drill.schedule",
                    &format!("{}/drill/{}", record.pd, record.id),
                    "ok",
                )
                .detail(json!({
                    "runner": record.runner,
                    "grant": record.grant_id,
                    "snapshot": record.snapshot,
                })),
            )?;
            record.approvals.push(AuditRef {
                seq: entry.seq,
                hash: entry.hash,
                action: entry.action,
            });
            drills::put_drill(txn, &record)?;
            Ok(Some(record.id.clone()))
        })
        .await?;
    match queued {
        Some(id) => {
            tracing::info!(drill = %id, runner = %agent.host, "drill queued for the runner");
            app.notifier(&agent.id).notify_one();
        }
        // A missed drill is a failed one: the runner has not taken or
        // finished the previous drill (offline, stopped, stuck).
        None => {
            let why = format!(
                "drill runner {} has not finished the previous drill of PD {} (is it running and connected?); this drill was not started",
                agent.host, skipped.pd
            );
            return fail(app, skipped, why, "runner-busy").await;
        }
    }
    Ok(())
}

fn job_record(agent: &AgentRecord, pd: &str, now: DateTime<Utc>) -> JobRecord {
    JobRecord {
        id: String::new(),
        kind: "drill".into(),
        pd: pd.into(),
        host: Some(agent.host.clone()),
        source: None,
        site: Some("dr".into()),
        agent_id: Some(agent.id.clone()),
        state: JobState::Queued,
        slot: None,
        due_at: Some(now),
        created: now,
        delivered: None,
        started: None,
        finished: None,
        attempts: 0,
        outcome: None,
        message: String::new(),
        snapshot: None,
        stats: None,
        detail: serde_json::Value::Null,
        active_key: Some(format!("drill/{pd}")),
    }
}

/// A drill that could not start: recorded failed with `why`, `drill.report`
/// (outcome failed) and the failure metric. No job, nothing runs.
async fn fail(app: &Arc<App>, mut record: DrillRecord, why: Refusal, code: &str) -> Result<()> {
    tracing::warn!(pd = %record.pd, reason = %why, "drill failed before it could start");
    record.state = DrillState::Failed;
    record.reasons = vec![why.clone()];
    record.finished = Some(record.created);
    let (app2, code) = (app.clone(), code.to_string());
    let rec = record.clone();
    app.state
        .write_blocking(move |txn| {
            record.id = format!(
                "d{}-{}",
                record.created.format("%Y%m%d%H%M%S"),
                record.pd.to_lowercase()
            );
            app2.record_in(
                txn,
                NewEntry::new(
                    CONTROLLER_ACTOR,
                    "drill.report",
                    &format!("{}/drill/{}", record.pd, record.id),
                    "failed",
                )
                .detail(json!({ "reason": code, "message": why })),
            )?;
            drills::put_drill(txn, &record)
        })
        .await?;
    super::report::count(app, &rec.pd, false);
    Ok(())
}
