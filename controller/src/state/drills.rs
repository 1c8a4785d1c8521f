//! Drill grants (sealed envelopes only, never an identity), drills and
//! their signed reports.

use cadang_proto::drill::{DrillCheckSpec, DrillResult, DrillView, GrantView};
use chrono::{DateTime, Utc};
use redb::{ReadTransaction, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{get_json, put_json, scan_prefix, JsonTable};
use crate::error::Result;
use crate::report::drill::AuditRef;

/// Grant id → [`GrantRecord`].
pub const DRILL_GRANTS: JsonTable = TableDefinition::new("drill_grants");
/// Drill id (its job id) → [`DrillRecord`].
pub const DRILLS: JsonTable = TableDefinition::new("drills");
/// Drill id → the signed report's JSON file, byte for byte.
pub const DRILL_REPORTS: JsonTable = TableDefinition::new("drill_reports");

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct GrantRecord {
    pub view: GrantView,
    /// age, armored, to the runner's recipient: opaque to the controller.
    pub envelope: String,
    /// The `drill.grant` entry the drill reports rest on.
    pub audit: Vec<AuditRef>,
}

impl std::fmt::Debug for GrantRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantRecord")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

impl GrantRecord {
    /// Usable at `now`: not revoked and not past its end.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.view.revoked.is_none() && self.view.not_after > now
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DrillState {
    /// Queued for the runner (or running there).
    Queued,
    Passed,
    Failed,
}

impl DrillState {
    pub fn name(&self) -> &'static str {
        match self {
            DrillState::Queued => "queued",
            DrillState::Passed => "passed",
            DrillState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DrillRecord {
    pub id: String,
    pub pd: String,
    /// The runner host (empty when no grant named one).
    pub runner: String,
    #[serde(default)]
    pub runner_agent_id: Option<String>,
    #[serde(default)]
    pub grant_id: Option<String>,
    #[serde(default)]
    pub snapshot: Option<String>,
    #[serde(default)]
    pub snapshot_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub source_host: String,
    /// Age of the newest snapshot at the DR site when the drill was planned.
    #[serde(default)]
    pub recovery_point_age_seconds: u64,
    pub rto_seconds: u64,
    pub rpo_seconds: u64,
    #[serde(default)]
    pub check: Option<DrillCheckSpec>,
    /// The slot of the schedule it ran for.
    pub created: DateTime<Utc>,
    pub state: DrillState,
    /// Why it failed, in words (the signed report has the codes).
    #[serde(default)]
    pub reasons: Vec<String>,
    #[serde(default)]
    pub started: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished: Option<DateTime<Utc>>,
    #[serde(default)]
    pub result: Option<DrillResult>,
    /// The audit entries of its grant and its scheduling.
    #[serde(default)]
    pub approvals: Vec<AuditRef>,
    #[serde(default)]
    pub has_report: bool,
}

impl DrillRecord {
    pub fn view(&self) -> DrillView {
        DrillView {
            id: self.id.clone(),
            pd: self.pd.clone(),
            runner: self.runner.clone(),
            snapshot: self.snapshot.clone(),
            started: self.started,
            finished: self.finished,
            state: self.state.name().into(),
            reasons: self.reasons.clone(),
            restore_seconds: self.result.as_ref().map(|r| r.total_seconds()),
            rto_seconds: self.rto_seconds,
            has_report: self.has_report,
        }
    }
}

pub fn put_grant(txn: &WriteTransaction, g: &GrantRecord) -> Result<()> {
    put_json(&mut txn.open_table(DRILL_GRANTS)?, &g.view.id, g)
}

pub fn grant(txn: &ReadTransaction, id: &str) -> Result<Option<GrantRecord>> {
    get_json(&txn.open_table(DRILL_GRANTS)?, id)
}

/// Every grant, oldest first.
pub fn grants(txn: &ReadTransaction) -> Result<Vec<GrantRecord>> {
    let mut v: Vec<GrantRecord> = scan_prefix(&txn.open_table(DRILL_GRANTS)?, "")?
        .into_iter()
        .map(|(_, g)| g)
        .collect();
    v.sort_by_key(|g| g.view.granted);
    Ok(v)
}

/// The newest grant of `pd` usable at `now` (for `runner`, when the policy
/// names one).
pub fn active_grant(
    txn: &ReadTransaction,
    pd: &str,
    runner: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<GrantRecord>> {
    Ok(grants(txn)?
        .into_iter()
        .filter(|g| g.view.pd == pd && g.active(now))
        .filter(|g| runner.is_none_or(|r| g.view.runner == r))
        .max_by_key(|g| g.view.granted))
}

/// The newest grant of `pd` whatever its state, to say why none is usable.
pub fn newest_grant(txn: &ReadTransaction, pd: &str) -> Result<Option<GrantRecord>> {
    Ok(grants(txn)?.into_iter().rfind(|g| g.view.pd == pd))
}

pub fn put_drill(txn: &WriteTransaction, d: &DrillRecord) -> Result<()> {
    put_json(&mut txn.open_table(DRILLS)?, &d.id, d)
}

pub fn drill(txn: &ReadTransaction, id: &str) -> Result<Option<DrillRecord>> {
    get_json(&txn.open_table(DRILLS)?, id)
}

/// The drill in a write transaction (report handling).
pub fn drill_in(txn: &WriteTransaction, id: &str) -> Result<Option<DrillRecord>> {
    get_json(&txn.open_table(DRILLS)?, id)
}

/// Every drill, newest first.
pub fn drills(txn: &ReadTransaction) -> Result<Vec<DrillRecord>> {
    let mut v: Vec<DrillRecord> = scan_prefix(&txn.open_table(DRILLS)?, "")?
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    v.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
    Ok(v)
}

pub fn put_report(txn: &WriteTransaction, id: &str, signed_json: &[u8]) -> Result<()> {
    txn.open_table(DRILL_REPORTS)?.insert(id, signed_json)?;
    Ok(())
}

/// The signed report file of drill `id`, if one was made.
pub fn report(txn: &ReadTransaction, id: &str) -> Result<Option<Vec<u8>>> {
    Ok(txn
        .open_table(DRILL_REPORTS)?
        .get(id)?
        .map(|v| v.value().to_vec()))
}
