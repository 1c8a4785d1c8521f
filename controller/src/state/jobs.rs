//! Jobs and their history: queued → delivered → running → finished.
//!
//! Agent jobs wait in a per-agent queue until a poll delivers them; a
//! report finishes them. At most one job is queued or running per source
//! (`ACTIVE`), and a report is applied once however often it is resent
//! (`REPORTS`).

use std::collections::BTreeMap;

use cadang_proto::agent::{slot_key, BackupStats, Outcome};
use chrono::{DateTime, Utc};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    get_json, keys_with_prefix, put_json, scan_prefix, ACTIVE, JOBS, LAST_RUNS, META, QUEUE, SLOTS,
};
use crate::engine::RunBook;
use crate::error::{Error, Result};
use crate::state::agents::AgentRecord;

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
    /// When a scheduled job fell due (its slot plus jitter): delivery is
    /// measured against this.
    #[serde(default)]
    pub due_at: Option<DateTime<Utc>>,
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

pub(crate) fn queue_key(agent_id: &str, job_id: &str) -> String {
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
        due_at: None,
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

/// Marks jobs delivered to their agent (they leave its queue). Returns the
/// ids that were still queued: only those are handed out, so a job is
/// never delivered twice (two polls at once, a report that finished it).
pub fn mark_delivered(
    txn: &WriteTransaction,
    agent_id: &str,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let mut queue = txn.open_table(QUEUE)?;
    let mut jobs = txn.open_table(JOBS)?;
    let mut delivered = Vec::new();
    for id in ids {
        queue.remove(queue_key(agent_id, id).as_str())?;
        if let Some(mut j) = get_json::<JobRecord>(&jobs, id)? {
            if j.state == JobState::Queued {
                j.state = JobState::Delivered;
                j.delivered = Some(now);
                j.attempts += 1;
                put_json(&mut jobs, id, &j)?;
                delivered.push(id.clone());
            }
        }
    }
    Ok(delivered)
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

/// The RunBook as persisted: the whole book (written by dispatch rounds)
/// with the newest backup successes written by report batches merged in.
pub fn load_runbook(txn: &ReadTransaction) -> Result<RunBook> {
    let meta = txn.open_table(META)?;
    let mut book: RunBook = get_json(&meta, RUNBOOK_KEY)?.unwrap_or_default();
    let successes: BTreeMap<String, DateTime<Utc>> =
        get_json(&meta, BACKUP_SUCCESS_KEY)?.unwrap_or_default();
    for (pd, t) in successes {
        book.record_backup_success(&pd, t);
    }
    Ok(book)
}

/// Writes the whole RunBook (one value of ~85 bytes per backup source:
/// the dispatcher's business, once per round, not per report).
pub fn save_runbook(txn: &WriteTransaction, book: &RunBook) -> Result<()> {
    put_json(&mut txn.open_table(META)?, RUNBOOK_KEY, book)
}

/// Records backup successes (PD → end of the newest successful backup)
/// without rewriting the whole RunBook: a report batch touches a few
/// PDs, while the book holds a slot for every source of the regency.
/// Merged by newest, so a late (spooled) report never moves time back.
pub fn save_backup_successes(
    txn: &WriteTransaction,
    successes: &BTreeMap<String, DateTime<Utc>>,
) -> Result<()> {
    if successes.is_empty() {
        return Ok(());
    }
    let mut meta = txn.open_table(META)?;
    let mut stored: BTreeMap<String, DateTime<Utc>> =
        get_json(&meta, BACKUP_SUCCESS_KEY)?.unwrap_or_default();
    for (pd, t) in successes {
        let entry = stored.entry(pd.clone()).or_insert(*t);
        if *entry < *t {
            *entry = *t;
        }
    }
    put_json(&mut meta, BACKUP_SUCCESS_KEY, &stored)
}

const RUNBOOK_KEY: &str = "runbook";
const BACKUP_SUCCESS_KEY: &str = "runbook.backup_success";
