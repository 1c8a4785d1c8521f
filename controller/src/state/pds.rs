//! Registered PDs (the repository secret, never an identity) and the
//! snapshot catalogue.

use chrono::{DateTime, Utc};
use redb::{ReadTransaction, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{get_json, put_json, scan_prefix, PDS, SNAPSHOTS};
use crate::error::Result;

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct PdRecord {
    pub pd: String,
    pub repo_id: String,
    pub data_recipient: String,
    pub repo_secret_json: String,
    pub registered: DateTime<Utc>,
    pub registered_by: String,
}

impl std::fmt::Debug for PdRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdRecord")
            .field("pd", &self.pd)
            .field("repo_id", &self.repo_id)
            .finish_non_exhaustive()
    }
}

pub fn get(txn: &ReadTransaction, pd: &str) -> Result<Option<PdRecord>> {
    get_json(&txn.open_table(PDS)?, pd)
}

pub fn all(txn: &ReadTransaction) -> Result<Vec<PdRecord>> {
    Ok(scan_prefix(&txn.open_table(PDS)?, "")?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

pub fn put(txn: &WriteTransaction, rec: &PdRecord) -> Result<()> {
    put_json(&mut txn.open_table(PDS)?, &rec.pd, rec)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SnapshotEntry {
    pub pd: String,
    pub id: String,
    pub host: String,
    pub source: String,
    pub time: DateTime<Utc>,
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub bytes_read: u64,
    #[serde(default)]
    pub bytes_added: u64,
}

fn snapshot_key(pd: &str, id: &str) -> String {
    format!("{pd}\0{id}")
}

pub fn put_snapshot(txn: &WriteTransaction, s: &SnapshotEntry) -> Result<()> {
    put_json(
        &mut txn.open_table(SNAPSHOTS)?,
        &snapshot_key(&s.pd, &s.id),
        s,
    )
}

/// The catalogue of `pd`, newest first.
pub fn snapshots(txn: &ReadTransaction, pd: &str) -> Result<Vec<SnapshotEntry>> {
    let mut v: Vec<SnapshotEntry> = scan_prefix(&txn.open_table(SNAPSHOTS)?, &format!("{pd}\0"))?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    v.sort_by_key(|s| std::cmp::Reverse(s.time));
    Ok(v)
}
