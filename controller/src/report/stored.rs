//! Signed reports the controller made, kept in its state (table
//! `signed_reports`, `<id>` → record), for `GET /api/v1/reports` and
//! downloads. The stores hold the published copies (`crate::publish`).

use chrono::{DateTime, Utc};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::signed::SignedDocument;
use crate::error::{Error, Result};
use crate::state::{get_json, put_json, JsonTable};

pub const SIGNED_REPORTS: JsonTable = redb::TableDefinition::new("signed_reports");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredReport {
    pub id: String,
    /// `compliance-summary` or `drill-report`.
    pub kind: String,
    /// The PD, or `None` for the regency.
    pub pd: Option<String>,
    pub generated: DateTime<Utc>,
    /// Who asked for it (audit actor).
    pub by: String,
    /// The signed JSON file, exactly as published.
    pub json: String,
    /// Stores that hold it (`publish` answered ok).
    #[serde(default)]
    pub published: Vec<String>,
}

impl StoredReport {
    pub fn document(&self) -> Result<SignedDocument> {
        SignedDocument::parse(self.json.as_bytes())
            .map_err(|e| Error::State(format!("stored report {}: {e}", self.id)))
    }
}

/// Saves a report (write-once: an id already there with other content is refused).
pub fn save(txn: &WriteTransaction, r: &StoredReport) -> Result<()> {
    let mut table = txn.open_table(SIGNED_REPORTS)?;
    if let Some(old) = get_json::<StoredReport>(&table, &r.id)? {
        if old.json != r.json {
            return Err(Error::Invalid(format!(
                "report {} exists already with other content; a signed report is never replaced",
                r.id
            )));
        }
    }
    put_json(&mut table, &r.id, r)
}

/// Records where it was published.
pub fn set_published(txn: &WriteTransaction, id: &str, stores: Vec<String>) -> Result<()> {
    let mut table = txn.open_table(SIGNED_REPORTS)?;
    let Some(mut r) = get_json::<StoredReport>(&table, id)? else {
        return Ok(());
    };
    r.published = stores;
    put_json(&mut table, id, &r)
}

pub fn get(txn: &ReadTransaction, id: &str) -> Result<Option<StoredReport>> {
    match txn.open_table(SIGNED_REPORTS) {
        Ok(t) => get_json(&t, id),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Every report, newest first.
pub fn list(txn: &ReadTransaction) -> Result<Vec<StoredReport>> {
    let table = match txn.open_table(SIGNED_REPORTS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for item in table.iter()? {
        let (k, v) = item?;
        let r: StoredReport = serde_json::from_slice(v.value())
            .map_err(|e| Error::State(format!("record {}: {e}", k.value())))?;
        out.push(r);
    }
    out.sort_by(|a, b| b.generated.cmp(&a.generated).then(b.id.cmp(&a.id)));
    Ok(out)
}
