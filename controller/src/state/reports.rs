//! Applying agents' reports: each report once (by its id), finishing its
//! job (or the job of the same slot, for a run the agent started alone),
//! with the last run of its source, the snapshot catalogue and the PD's
//! newest backup success, all in the caller's one transaction.
//!
//! Nothing here touches memory: what the engine's RunBook and the fleet
//! view should learn comes back in [`Applied`], for the caller to apply
//! once the transaction is committed (it may be a batch of many callers'
//! changes, run again alone should one of them fail).

use std::collections::BTreeMap;

use cadang_proto::agent::{slot_key, BackupStats, JobReport, Outcome, ReportKind};
use chrono::{DateTime, Utc};
use redb::{ReadableTable, WriteTransaction};

use super::jobs::{
    backup_job, create, finish, outcome_name, put, queue_key, save_backup_successes, JobRecord,
    JobState, LastRun, MAX_AGENT_ATTEMPTS,
};
use super::{get_json, put_json, JOBS, LAST_RUNS, QUEUE, REPORTS, SLOTS};
use crate::error::{Error, Result};
use crate::state::agents::AgentRecord;
use crate::state::pds::{put_snapshot, SnapshotEntry};

/// What a batch of reports did, for memory and metrics after the commit.
#[derive(Debug, Default)]
pub struct Applied {
    /// Every report id now stored (new and resent).
    pub accepted: Vec<String>,
    /// Reports applied by this batch (not seen before).
    pub new: Vec<JobReport>,
    /// The job each of `new` finished (same order).
    pub jobs: Vec<String>,
    /// Last runs written (for the fleet view).
    pub runs: Vec<LastRun>,
    /// PD → end of its newest successful backup in this batch (for the
    /// RunBook: replication follows backups).
    pub successes: BTreeMap<String, DateTime<Utc>>,
}

fn find_job_for_report(
    txn: &WriteTransaction,
    agent: &AgentRecord,
    r: &JobReport,
) -> Result<Option<JobRecord>> {
    let jobs = txn.open_table(JOBS)?;
    if let Some(id) = &r.job_id {
        if let Some(j) = get_json::<JobRecord>(&jobs, id)? {
            // A report names only this agent's jobs.
            if j.agent_id.as_deref() == Some(agent.id.as_str()) {
                return Ok(Some(j));
            }
        }
    }
    // A scheduled run the agent ran by itself (controller unreachable) may
    // meet the job the controller queued for the same slot.
    if let ReportKind::Backup {
        source,
        slot: Some(slot),
        ..
    } = &r.kind
    {
        let key = slot_key(&agent.host, source, *slot);
        let id = txn
            .open_table(SLOTS)?
            .get(key.as_str())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned());
        if let Some(id) = id {
            return get_json(&jobs, &id);
        }
    }
    Ok(None)
}

/// Applies a batch of one agent's reports in the caller's transaction,
/// with the PDs' newest backup successes
/// ([`crate::state::jobs::save_backup_successes`]).
pub fn apply_reports(
    txn: &WriteTransaction,
    agent: &AgentRecord,
    reports: &[JobReport],
) -> Result<Applied> {
    let mut applied = Applied::default();
    for r in reports {
        if r.report_id.is_empty() || r.report_id.len() > 200 {
            continue;
        }
        let key = format!("{}/{}", agent.id, r.report_id);
        if txn.open_table(REPORTS)?.get(key.as_str())?.is_some() {
            applied.accepted.push(r.report_id.clone());
            continue;
        }
        let job_id = apply_one(txn, agent, r, &mut applied)?;
        txn.open_table(REPORTS)?
            .insert(key.as_str(), job_id.as_bytes())?;
        applied.accepted.push(r.report_id.clone());
        applied.new.push(r.clone());
        applied.jobs.push(job_id);
    }
    save_backup_successes(txn, &applied.successes)?;
    Ok(applied)
}

fn apply_one(
    txn: &WriteTransaction,
    agent: &AgentRecord,
    r: &JobReport,
    applied: &mut Applied,
) -> Result<String> {
    let existing = find_job_for_report(txn, agent, r)?.filter(|j| j.state != JobState::Finished);
    let mut job = match existing {
        Some(j) => j,
        None => {
            let (source, slot) = match &r.kind {
                ReportKind::Backup { source, slot, .. } => (Some(source.clone()), *slot),
                ReportKind::Restore { .. } => (None, None),
                ReportKind::Drill { .. } => (None, None),
            };
            let mut j = backup_job(agent, source.as_deref().unwrap_or(""), slot, r.started);
            j.kind = kind_of(r).into();
            j.source = source;
            j.active_key = None;
            j.state = JobState::Running;
            j.attempts = 1;
            let mut j = create(txn, j)?
                .ok_or_else(|| Error::State("job without a source slot was refused".into()))?;
            // Created only to be finished below: it never waits in a queue.
            txn.open_table(QUEUE)?
                .remove(queue_key(&agent.id, &j.id).as_str())?;
            j.state = JobState::Running;
            j
        }
    };
    job.started.get_or_insert(r.started);
    if let ReportKind::Backup {
        snapshot, stats, ..
    } = &r.kind
    {
        job.snapshot = snapshot.clone();
        job.stats = Some(stats.clone());
    }
    if r.outcome == Outcome::Interrupted
        && job.attempts < MAX_AGENT_ATTEMPTS
        && job.active_key.is_some()
    {
        // Stopped at a safe point: run it again on the next poll.
        job.state = JobState::Queued;
        job.message = r.message.clone();
        job.outcome = Some("interrupted".into());
        txn.open_table(QUEUE)?
            .insert(queue_key(&agent.id, &job.id).as_str(), &[][..])?;
        put(txn, &job)?;
    } else {
        finish(
            txn,
            &mut job,
            outcome_name(r.outcome),
            &r.message,
            r.finished,
        )?;
    }
    if let ReportKind::Backup {
        source,
        snapshot,
        stats,
        ..
    } = &r.kind
    {
        record_backup(txn, agent, source, r, snapshot.as_deref(), stats, applied)?;
    }
    Ok(job.id)
}

fn kind_of(r: &JobReport) -> &'static str {
    match r.kind {
        ReportKind::Backup { .. } => "backup",
        ReportKind::Restore { .. } => "restore",
        ReportKind::Drill { .. } => "drill",
    }
}

fn record_backup(
    txn: &WriteTransaction,
    agent: &AgentRecord,
    source: &str,
    r: &JobReport,
    snapshot: Option<&str>,
    stats: &BackupStats,
    applied: &mut Applied,
) -> Result<()> {
    let key = format!("{}/{}/{}", agent.pd, agent.host, source);
    let mut runs = txn.open_table(LAST_RUNS)?;
    let mut last: LastRun = get_json(&runs, &key)?.unwrap_or_else(|| LastRun {
        pd: agent.pd.clone(),
        host: agent.host.clone(),
        source: source.to_string(),
        ..Default::default()
    });
    if last.last_attempt.is_some_and(|t| t > r.finished) {
        // An older report arriving late (spooled) does not hide a newer run.
        return record_snapshot(txn, agent, source, r, snapshot, stats);
    }
    last.last_attempt = Some(r.finished);
    last.last_outcome = Some(outcome_name(r.outcome).into());
    last.duration_seconds = Some((r.finished - r.started).num_milliseconds() as f64 / 1000.0);
    last.bytes_read = stats.bytes_read;
    last.bytes_added = stats.bytes_added;
    let ok = matches!(r.outcome, Outcome::Succeeded | Outcome::Partial) && snapshot.is_some();
    if ok {
        last.last_success = Some(r.finished);
        let newest = applied
            .successes
            .entry(agent.pd.clone())
            .or_insert(r.finished);
        if *newest < r.finished {
            *newest = r.finished;
        }
    }
    put_json(&mut runs, &key, &last)?;
    drop(runs);
    applied.runs.push(last);
    record_snapshot(txn, agent, source, r, snapshot, stats)
}

fn record_snapshot(
    txn: &WriteTransaction,
    agent: &AgentRecord,
    source: &str,
    r: &JobReport,
    snapshot: Option<&str>,
    stats: &BackupStats,
) -> Result<()> {
    let Some(id) = snapshot else { return Ok(()) };
    put_snapshot(
        txn,
        &SnapshotEntry {
            pd: agent.pd.clone(),
            id: id.to_string(),
            host: agent.host.clone(),
            source: source.to_string(),
            time: r.finished,
            files: stats.files,
            bytes_read: stats.bytes_read,
            bytes_added: stats.bytes_added,
        },
    )
}
