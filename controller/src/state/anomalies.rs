//! Ransomware early warning in the state (issue 10): per source, its recent
//! measured backups with the verdict each got, a small status record for
//! listings and metrics, and its retention hold.
//!
//! Three tables rather than one so the frequent readers stay cheap: the
//! retention job reads only the holds of one PD, `/metrics` only the status
//! records; the history (up to [`HISTORY_KEEP`] observations) is read and
//! written only when a backup report of that source arrives.

use chrono::{DateTime, Utc};
use redb::{ReadTransaction, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{get_json, put_json, scan_prefix, JsonTable};
use crate::anomaly::{Observation, Reason, Verdict};
use crate::error::Result;

/// `pd/host/source` → [`SourceHistory`].
pub const ANOMALY_HISTORY: JsonTable = TableDefinition::new("anomaly_history");
/// `pd/host/source` → [`SourceStatus`].
pub const ANOMALY_STATUS: JsonTable = TableDefinition::new("anomaly_status");
/// `pd/host/source` → [`HoldRecord`] (active and cleared).
pub const ANOMALY_HOLDS: JsonTable = TableDefinition::new("anomaly_holds");

/// Observations kept per source: the longest baseline a policy may ask for
/// ([`crate::anomaly::Thresholds::history`], capped by the policy loader)
/// plus the slow-attack window and some slack.
pub const HISTORY_KEEP: usize = 120;

pub fn source_key(pd: &str, host: &str, source: &str) -> String {
    format!("{pd}/{host}/{source}")
}

/// A source's measured backups, oldest first, and their verdicts
/// (`verdicts[i]` belongs to `observations[i]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceHistory {
    pub observations: Vec<Observation>,
    pub verdicts: Vec<Verdict>,
}

/// One flagged backup, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagRecord {
    pub snapshot: String,
    pub time: DateTime<Utc>,
    pub reasons: Vec<Reason>,
    #[serde(default)]
    pub onset: Option<String>,
}

/// What listings and metrics need of a source, without its history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub pd: String,
    pub host: String,
    pub source: String,
    /// The newest judged backup.
    pub last_snapshot: Option<String>,
    pub last_time: Option<DateTime<Utc>>,
    /// Whether that newest backup was flagged.
    pub last_flagged: bool,
    /// The newest snapshot not flagged and taken before any damage: the one
    /// to restore ("cadangan bersih terakhir").
    pub last_clean: Option<String>,
    /// Flagged backups still in the history, oldest first.
    pub flags: Vec<FlagRecord>,
}

/// One person's agreement to end a hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub user: String,
    #[serde(default)]
    pub nip: Option<String>,
    pub at: DateTime<Utc>,
}

/// A retention hold on one source ("penahanan retensi"): retention at both
/// sites keeps every snapshot of the source taken before `since`, and the
/// flagged snapshots themselves, until an operator and the PD's custodian
/// have both agreed to clear it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldRecord {
    pub pd: String,
    pub host: String,
    pub source: String,
    /// When the controller put the hold on (its clock).
    pub created: DateTime<Utc>,
    /// Snapshots of the source taken before this are kept.
    pub since: DateTime<Utc>,
    /// Every flagged snapshot while the hold was on; kept too (evidence).
    pub flagged_snapshots: Vec<String>,
    pub last_clean: Option<String>,
    /// The first flag's reasons in English and Bahasa Indonesia.
    pub summary_en: String,
    pub summary_id: String,
    #[serde(default)]
    pub operator_clear: Option<Approval>,
    #[serde(default)]
    pub custodian_clear: Option<Approval>,
    /// Set when both approvals are there: the hold no longer applies.
    #[serde(default)]
    pub cleared: Option<DateTime<Utc>>,
}

impl HoldRecord {
    pub fn active(&self) -> bool {
        self.cleared.is_none()
    }
}

pub fn history(txn: &WriteTransaction, key: &str) -> Result<SourceHistory> {
    Ok(get_json(&txn.open_table(ANOMALY_HISTORY)?, key)?.unwrap_or_default())
}

pub fn put_history(txn: &WriteTransaction, key: &str, h: &SourceHistory) -> Result<()> {
    put_json(&mut txn.open_table(ANOMALY_HISTORY)?, key, h)
}

pub fn put_status(txn: &WriteTransaction, s: &SourceStatus) -> Result<()> {
    let key = source_key(&s.pd, &s.host, &s.source);
    put_json(&mut txn.open_table(ANOMALY_STATUS)?, &key, s)
}

/// Status records of one PD (or all with `None`), in key order.
pub fn statuses(txn: &ReadTransaction, pd: Option<&str>) -> Result<Vec<SourceStatus>> {
    let prefix = pd.map(|p| format!("{p}/")).unwrap_or_default();
    Ok(scan_prefix(&txn.open_table(ANOMALY_STATUS)?, &prefix)?
        .into_iter()
        .map(|(_, s)| s)
        .collect())
}

pub fn hold(txn: &WriteTransaction, key: &str) -> Result<Option<HoldRecord>> {
    get_json(&txn.open_table(ANOMALY_HOLDS)?, key)
}

pub fn put_hold(txn: &WriteTransaction, h: &HoldRecord) -> Result<()> {
    let key = source_key(&h.pd, &h.host, &h.source);
    put_json(&mut txn.open_table(ANOMALY_HOLDS)?, &key, h)
}

/// Hold records (active and cleared) of one PD, or of all with `None`.
pub fn holds(txn: &ReadTransaction, pd: Option<&str>) -> Result<Vec<HoldRecord>> {
    let prefix = pd.map(|p| format!("{p}/")).unwrap_or_default();
    Ok(scan_prefix(&txn.open_table(ANOMALY_HOLDS)?, &prefix)?
        .into_iter()
        .map(|(_, h)| h)
        .collect())
}

/// Whether the status table has a record for the source.
pub fn known(txn: &ReadTransaction, key: &str) -> Result<bool> {
    Ok(txn.open_table(ANOMALY_STATUS)?.get(key)?.is_some())
}
