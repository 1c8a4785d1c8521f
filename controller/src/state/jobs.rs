//! Jobs and their history: queued → delivered → running → finished.
//!
//! Agent jobs wait in a per-agent queue until a poll delivers them; a
//! report finishes them. At most one job is queued or running per source
//! (`ACTIVE`), and a report is applied once however often it is resent
//! (`REPORTS`).

use cadang_proto::agent::{slot_key, BackupStats, JobReport, Outcome, ReportKind};
use chrono::{DateTime, Utc};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    get_json, keys_with_prefix, put_json, scan_prefix, ACTIVE, JOBS, LAST_RUNS, META, QUEUE,
    REPORTS, SLOTS,
};
use crate::engine::RunBook;
use crate::error::{Error, Result};
use crate::state::agents::AgentRecord;
use crate::state::pds::{put_snapshot, SnapshotEntry};

/// An interrupted backup (agent stopped at a safe point) is queued again
/// this many times before it is left failed.
pub const MAX_AGENT_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    Queued,
    Delivered,
    Running,
    Finished,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Delivered => "delivered",
            JobState::Running => "running",
            JobState::Finished => "finished",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobRecord {
    pub id: String,
    /// `backup`, `restore`, `replicate`, `verify`, `retention`, `repair`.
    pub kind: String,
    pub pd: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    pub state: JobState,
    #[serde(default)]
    pub slot: Option<i64>,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub delivered: Option<DateTime<Utc>>,
    #[serde(default)]
    pub started: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished: Option<DateTime<Utc>>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub snapshot: Option<String>,
    #[serde(default)]
    pub stats: Option<BackupStats>,
    #[serde(default)]
    pub detail: serde_json::Value,
    /// The `ACTIVE` key this job holds while not finished.
    #[serde(default)]
    pub active_key: Option<String>,
}

impl JobRecord {
    pub fn failed(&self) -> bool {
        matches!(
            self.outcome.as_deref(),
            Some("failed" | "interrupted" | "timed-out" | "cancelled" | "problems" | "partial")
        )
    }
}

/// The newest run of one source, for fleet status and metrics.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LastRun {
    pub pd: String,
    pub host: String,
    pub source: String,
    pub last_attempt: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub last_success: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub bytes_read: u64,
    pub bytes_added: u64,
}

pub fn backup_active_key(host: &str, source: &str) -> String {
    format!("backup/{host}/{source}")
}

fn queue_key(agent_id: &str, job_id: &str) -> String {
    format!("{agent_id}\0{job_id}")
}

pub fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::Partial => "partial",
        Outcome::Failed => "failed",
        Outcome::Interrupted => "interrupted",
    }
}

/// A new, sortable job id (`j000000000042`).
pub fn next_id(txn: &WriteTransaction) -> Result<String> {
    let mut meta = txn.open_table(META)?;
    let n: u64 = get_json(&meta, "job_seq")?.unwrap_or(0) + 1;
    put_json(&mut meta, "job_seq", &n)?;
    Ok(format!("j{n:012}"))
}

pub fn get(txn: &ReadTransaction, id: &str) -> Result<Option<JobRecord>> {
    get_json(&txn.open_table(JOBS)?, id)
}

pub fn put(txn: &WriteTransaction, job: &JobRecord) -> Result<()> {
    put_json(&mut txn.open_table(JOBS)?, &job.id, job)
}

/// The job holding `active_key`, if one is queued or running there.
pub fn active(txn: &WriteTransaction, active_key: &str) -> Result<Option<String>> {
    Ok(txn
        .open_table(ACTIVE)?
        .get(active_key)?
        .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
}

/// Records a new job and takes its `ACTIVE` slot. Returns `None` (and
/// changes nothing) when another job holds the slot.
pub fn create(txn: &WriteTransaction, mut job: JobRecord) -> Result<Option<JobRecord>> {
    if let Some(key) = &job.active_key {
        if active(txn, key)?.is_some() {
            return Ok(None);
        }
    }
    job.id = next_id(txn)?;
    if let Some(key) = &job.active_key {
        txn.open_table(ACTIVE)?
            .insert(key.as_str(), job.id.as_bytes())?;
    }
    if let (Some(agent), JobState::Queued) = (&job.agent_id, job.state) {
        txn.open_table(QUEUE)?
            .insert(queue_key(agent, &job.id).as_str(), &[][..])?;
    }
    if let (Some(host), Some(source), Some(slot)) = (&job.host, &job.source, job.slot) {
        txn.open_table(SLOTS)?
            .insert(slot_key(host, source, slot).as_str(), job.id.as_bytes())?;
    }
    put(txn, &job)?;
    Ok(Some(job))
}

/// A queued backup of `source` on `agent`.
pub fn backup_job(
    agent: &AgentRecord,
    source: &str,
    slot: Option<i64>,
    now: DateTime<Utc>,
) -> JobRecord {
    JobRecord {
        id: String::new(),
        kind: "backup".into(),
        pd: agent.pd.clone(),
        host: Some(agent.host.clone()),
        source: Some(source.to_string()),
        site: None,
        agent_id: Some(agent.id.clone()),
        state: JobState::Queued,
        slot,
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
        active_key: Some(backup_active_key(&agent.host, source)),
    }
}

/// Jobs waiting for `agent_id`, oldest first.
pub fn queued_for(txn: &ReadTransaction, agent_id: &str) -> Result<Vec<JobRecord>> {
    let keys = keys_with_prefix(&txn.open_table(QUEUE)?, &format!("{agent_id}\0"))?;
    let jobs = txn.open_table(JOBS)?;
    let mut out = Vec::new();
    for k in keys {
        let id = k.split('\0').nth(1).unwrap_or_default();
        if let Some(j) = get_json::<JobRecord>(&jobs, id)? {
            out.push(j);
        }
    }
    Ok(out)
}

/// Marks jobs delivered to their agent (they leave its queue).
pub fn mark_delivered(
    txn: &WriteTransaction,
    agent_id: &str,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<()> {
    let mut queue = txn.open_table(QUEUE)?;
    let mut jobs = txn.open_table(JOBS)?;
    for id in ids {
        queue.remove(queue_key(agent_id, id).as_str())?;
        if let Some(mut j) = get_json::<JobRecord>(&jobs, id)? {
            if j.state == JobState::Queued {
                j.state = JobState::Delivered;
                j.delivered = Some(now);
                j.attempts += 1;
                put_json(&mut jobs, id, &j)?;
            }
        }
    }
    Ok(())
}

/// Marks delivered jobs the agent says it runs as running.
pub fn mark_running(
    txn: &WriteTransaction,
    agent_id: &str,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<bool> {
    let mut jobs = txn.open_table(JOBS)?;
    let mut changed = false;
    for id in ids {
        if let Some(mut j) = get_json::<JobRecord>(&jobs, id)? {
            if j.agent_id.as_deref() == Some(agent_id) && j.state == JobState::Delivered {
                j.state = JobState::Running;
                j.started.get_or_insert(now);
                put_json(&mut jobs, id, &j)?;
                changed = true;
            }
        }
    }
    Ok(changed)
}

/// Ends a job: frees its source and records the outcome.
pub fn finish(
    txn: &WriteTransaction,
    job: &mut JobRecord,
    outcome: &str,
    message: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    job.state = JobState::Finished;
    job.outcome = Some(outcome.to_string());
    job.message = message.to_string();
    job.finished = Some(at);
    if let Some(key) = job.active_key.take() {
        let mut active = txn.open_table(ACTIVE)?;
        let holder = active
            .get(key.as_str())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned());
        if holder.as_deref() == Some(job.id.as_str()) {
            active.remove(key.as_str())?;
        }
    }
    if let Some(agent) = &job.agent_id {
        txn.open_table(QUEUE)?
            .remove(queue_key(agent, &job.id).as_str())?;
    }
    put(txn, job)
}

/// What a batch of reports did, for metrics after the commit.
#[derive(Debug, Default)]
pub struct Applied {
    /// Every report id now stored (new and resent).
    pub accepted: Vec<String>,
    /// Reports applied by this batch (not seen before).
    pub new: Vec<JobReport>,
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

/// Applies a batch of one agent's reports in the caller's transaction.
pub fn apply_reports(
    txn: &WriteTransaction,
    agent: &AgentRecord,
    reports: &[JobReport],
    book: &mut RunBook,
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
        let job_id = apply_one(txn, agent, r, book)?;
        txn.open_table(REPORTS)?
            .insert(key.as_str(), job_id.as_bytes())?;
        applied.accepted.push(r.report_id.clone());
        applied.new.push(r.clone());
    }
    Ok(applied)
}

fn apply_one(
    txn: &WriteTransaction,
    agent: &AgentRecord,
    r: &JobReport,
    book: &mut RunBook,
) -> Result<String> {
    let existing = find_job_for_report(txn, agent, r)?.filter(|j| j.state != JobState::Finished);
    let mut job = match existing {
        Some(j) => j,
        None => {
            let (source, slot) = match &r.kind {
                ReportKind::Backup { source, slot, .. } => (Some(source.clone()), *slot),
                ReportKind::Restore { .. } => (None, None),
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
        record_backup(txn, agent, source, r, snapshot.as_deref(), stats, book)?;
    }
    Ok(job.id)
}

fn kind_of(r: &JobReport) -> &'static str {
    match r.kind {
        ReportKind::Backup { .. } => "backup",
        ReportKind::Restore { .. } => "restore",
    }
}

fn record_backup(
    txn: &WriteTransaction,
    agent: &AgentRecord,
    source: &str,
    r: &JobReport,
    snapshot: Option<&str>,
    stats: &BackupStats,
    book: &mut RunBook,
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
        book.record_backup_success(&agent.pd, r.finished);
    }
    put_json(&mut runs, &key, &last)?;
    drop(runs);
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

pub fn last_runs(txn: &ReadTransaction, pd: Option<&str>) -> Result<Vec<LastRun>> {
    let prefix = pd.map(|p| format!("{p}/")).unwrap_or_default();
    Ok(scan_prefix(&txn.open_table(LAST_RUNS)?, &prefix)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// Which jobs a listing shows.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub failed: bool,
    pub pd: Option<String>,
    pub kind: Option<String>,
    pub limit: usize,
}

/// Jobs newest first, filtered.
pub fn list(
    txn: &ReadTransaction,
    f: &JobFilter,
    visible: impl Fn(&str) -> bool,
) -> Result<Vec<JobRecord>> {
    let table = txn.open_table(JOBS)?;
    let limit = if f.limit == 0 { 500 } else { f.limit };
    let mut out = Vec::new();
    for item in table.iter()?.rev() {
        let (_, v) = item?;
        let j: JobRecord =
            serde_json::from_slice(v.value()).map_err(|e| Error::State(e.to_string()))?;
        if (f.failed && !j.failed())
            || f.pd.as_deref().is_some_and(|p| p != j.pd)
            || f.kind.as_deref().is_some_and(|k| k != j.kind)
            || !visible(&j.pd)
        {
            continue;
        }
        out.push(j);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Jobs not finished (for queue-length metrics and restart).
pub fn unfinished(txn: &ReadTransaction) -> Result<Vec<JobRecord>> {
    let active = txn.open_table(ACTIVE)?;
    let jobs = txn.open_table(JOBS)?;
    let mut out = Vec::new();
    for item in active.iter()? {
        let (_, v) = item?;
        let id = String::from_utf8_lossy(v.value()).into_owned();
        if let Some(j) = get_json::<JobRecord>(&jobs, &id)? {
            out.push(j);
        }
    }
    Ok(out)
}

pub fn load_runbook(txn: &ReadTransaction) -> Result<RunBook> {
    Ok(get_json(&txn.open_table(META)?, "runbook")?.unwrap_or_default())
}

pub fn save_runbook(txn: &WriteTransaction, book: &RunBook) -> Result<()> {
    put_json(&mut txn.open_table(META)?, "runbook", book)
}
