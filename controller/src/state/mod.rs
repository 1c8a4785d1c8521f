//! The controller's state: one redb file (ACID, fsync per commit).
//!
//! Values are JSON (serde) under string keys: the state is small (10,000
//! agents and their jobs), JSON keeps it readable with a debugger, and a
//! field added later with `#[serde(default)]` needs no migration.
//!
//! Every change is one committed write transaction, so a `kill -9` leaves
//! either the state before the change or after it. Soft facts that change
//! on every poll (an agent's last contact) live in memory and are written in
//! batches; losing them costs a minute of "last seen", nothing else.

pub mod agents;
pub mod anomalies;
pub mod drills;
pub mod jobs;
pub mod pds;
pub mod reports;
pub mod restores;
pub mod sessions;
pub mod tokens;
pub mod users;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, Table, TableDefinition,
    WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

pub type JsonTable = TableDefinition<'static, &'static str, &'static [u8]>;

pub const AGENTS: JsonTable = TableDefinition::new("agents");
/// SHA-256 of a client certificate (hex) → agent id.
pub const AGENT_BY_CERT: JsonTable = TableDefinition::new("agent_by_cert");
pub const TOKENS: JsonTable = TableDefinition::new("enroll_tokens");
pub const USERS: JsonTable = TableDefinition::new("users");
/// SHA-256 of an API token (hex) → user name.
pub const API_TOKENS: JsonTable = TableDefinition::new("api_tokens");
pub const PDS: JsonTable = TableDefinition::new("pds");
pub const JOBS: JsonTable = TableDefinition::new("jobs");
/// `agent id \0 job id` → nothing: jobs waiting for delivery.
pub const QUEUE: JsonTable = TableDefinition::new("queue");
/// What a job runs on (`host/source`, `site/kind/pd/site`) → the job
/// queued or running there: never two jobs on one source.
pub const ACTIVE: JsonTable = TableDefinition::new("active");
/// `agent id/report id` → job id (may be empty): accepted reports.
pub const REPORTS: JsonTable = TableDefinition::new("reports");
/// `cadang_proto::agent::slot_key` → job id.
pub const SLOTS: JsonTable = TableDefinition::new("slots");
/// `pd/host/source` → the newest run of each source.
pub const LAST_RUNS: JsonTable = TableDefinition::new("last_runs");
/// `pd \0 snapshot id` → the catalogue entry.
pub const SNAPSHOTS: JsonTable = TableDefinition::new("snapshots");
/// Singletons: `runbook`, `job_seq`.
pub const META: JsonTable = TableDefinition::new("meta");
/// SHA-256 of a console session id (hex) → the session.
pub const SESSIONS: JsonTable = TableDefinition::new("sessions");

const ALL: [JsonTable; 22] = [
    AGENTS,
    AGENT_BY_CERT,
    TOKENS,
    USERS,
    API_TOKENS,
    PDS,
    JOBS,
    QUEUE,
    ACTIVE,
    REPORTS,
    SLOTS,
    LAST_RUNS,
    SNAPSHOTS,
    META,
    // ransomware early warning
    anomalies::ANOMALY_HISTORY,
    anomalies::ANOMALY_STATUS,
    anomalies::ANOMALY_HOLDS,
    SESSIONS,
    // drills (issue 8)
    drills::DRILL_GRANTS,
    drills::DRILLS,
    drills::DRILL_REPORTS,
    // restores (issue 8)
    restores::RESTORES,
];

/// redb's page cache (controller performance, issue 7).
pub const STATE_CACHE_BYTES: usize = 24 * 1024 * 1024;

pub struct State {
    db: Database,
    path: PathBuf,
}

impl State {
    /// Opens (or creates) the state file. Only one process may hold it.
    pub fn open(path: &Path) -> Result<Arc<State>> {
        // redb caches up to 1 GiB by default; the hot set (agents, recent
        // jobs) is far smaller, and the controller must stay under 512 MiB
        // at 10,000 agents (issue 7).
        let db = Database::builder()
            .set_cache_size(STATE_CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => Error::StateBusy {
                    path: path.to_path_buf(),
                },
                e => Error::State(format!("{}: {e}", path.display())),
            })?;
        let state = State {
            db,
            path: path.to_path_buf(),
        };
        // Every table exists from the start, so readers never meet a
        // missing one.
        state.write(|txn| {
            for t in ALL {
                txn.open_table(t)?;
            }
            Ok(())
        })?;
        Ok(Arc::new(state))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read()?;
        f(&txn)
    }

    /// Runs `f` in one write transaction, committed only if `f` succeeds:
    /// a refused request changes nothing.
    pub fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_write()?;
        match f(&txn) {
            Ok(v) => {
                txn.commit()?;
                Ok(v)
            }
            Err(e) => {
                txn.abort()?;
                Err(e)
            }
        }
    }

    /// [`State::write`] off the async threads (a commit waits for fsync).
    pub async fn write_blocking<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.write(f))
            .await
            .map_err(|e| Error::State(format!("state writer stopped: {e}")))?
    }
}

pub fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>> {
    match table.get(key)? {
        Some(v) => serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| Error::State(format!("record {key}: {e}"))),
        None => Ok(None),
    }
}

pub fn put_json<T: Serialize>(
    table: &mut Table<&'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::State(e.to_string()))?;
    table.insert(key, bytes.as_slice())?;
    Ok(())
}

/// Every value whose key starts with `prefix`, in key order.
pub fn scan_prefix<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<(String, T)>> {
    let mut out = Vec::new();
    for item in table.range::<&str>(prefix..)? {
        let (k, v) = item?;
        let key = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        let value = serde_json::from_slice(v.value())
            .map_err(|e| Error::State(format!("record {key}: {e}")))?;
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// Keys starting with `prefix`.
pub fn keys_with_prefix(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for item in table.range::<&str>(prefix..)? {
        let (k, _) = item?;
        let key = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push(key.to_string());
    }
    Ok(out)
}

/// SHA-256 hex: how tokens and certificates are keyed (never the secret).
pub fn hash_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}
