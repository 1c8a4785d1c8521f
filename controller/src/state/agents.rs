//! Enrolled agents, looked up by id, host and client certificate.

use cadang_proto::agent::AgentRole;
use chrono::{DateTime, Utc};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{get_json, put_json, AGENTS, AGENT_BY_CERT};
use crate::error::Result;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentRecord {
    /// The client certificate's CN.
    pub id: String,
    pub host: String,
    pub pd: String,
    pub role: AgentRole,
    pub cert_serial: String,
    /// SHA-256 of the client certificate (hex).
    pub cert_fingerprint: String,
    pub age_recipient: String,
    pub signing_public_key: String,
    pub enrolled: DateTime<Utc>,
    #[serde(default)]
    pub last_seen: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoked: Option<DateTime<Utc>>,
}

pub fn insert(txn: &WriteTransaction, agent: &AgentRecord) -> Result<()> {
    put_json(&mut txn.open_table(AGENTS)?, &agent.id, agent)?;
    txn.open_table(AGENT_BY_CERT)?
        .insert(agent.cert_fingerprint.as_str(), agent.id.as_bytes())?;
    Ok(())
}

pub fn get(txn: &ReadTransaction, id: &str) -> Result<Option<AgentRecord>> {
    get_json(&txn.open_table(AGENTS)?, id)
}

/// The agent a client certificate belongs to, whether revoked or not.
pub fn by_cert(txn: &ReadTransaction, fingerprint_hex: &str) -> Result<Option<AgentRecord>> {
    let id = match txn.open_table(AGENT_BY_CERT)?.get(fingerprint_hex)? {
        Some(v) => String::from_utf8_lossy(v.value()).into_owned(),
        None => return Ok(None),
    };
    get(txn, &id)
}

pub fn all(txn: &ReadTransaction) -> Result<Vec<AgentRecord>> {
    super::scan_prefix(&txn.open_table(AGENTS)?, "")
        .map(|v| v.into_iter().map(|(_, a)| a).collect())
}

/// The agent that serves `host` now: the newest enrollment not revoked.
pub fn active_for_host(txn: &ReadTransaction, host: &str) -> Result<Option<AgentRecord>> {
    Ok(all(txn)?
        .into_iter()
        .filter(|a| a.host == host && a.revoked.is_none())
        .max_by_key(|a| a.enrolled))
}

/// Revokes every enrollment of `host`; returns the agent ids revoked now.
pub fn revoke_host(txn: &WriteTransaction, host: &str, now: DateTime<Utc>) -> Result<Vec<String>> {
    let mut table = txn.open_table(AGENTS)?;
    let mut hit = Vec::new();
    for item in table.iter()? {
        let (_, v) = item?;
        let a: AgentRecord = serde_json::from_slice(v.value())
            .map_err(|e| crate::error::Error::State(e.to_string()))?;
        if a.host == host && a.revoked.is_none() {
            hit.push(a);
        }
    }
    for mut a in hit.iter().cloned() {
        a.revoked = Some(now);
        put_json(&mut table, &a.id, &a)?;
    }
    Ok(hit.into_iter().map(|a| a.id).collect())
}

/// Writes the batched last-contact times.
pub fn record_seen(txn: &WriteTransaction, seen: &[(String, DateTime<Utc>)]) -> Result<()> {
    let mut table = txn.open_table(AGENTS)?;
    for (id, t) in seen {
        let Some(mut a) = get_json::<AgentRecord>(&table, id)? else {
            continue;
        };
        if a.last_seen.is_none_or(|old| old < *t) {
            a.last_seen = Some(*t);
            put_json(&mut table, id, &a)?;
        }
    }
    Ok(())
}
