//! Where the log lives: in memory (tests, tools) or in the controller's
//! redb state file (two tables of its own), behind one trait; and the
//! [`Auditor`] that records entries and checkpoints every K of them.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};

use super::chain::{verify_chain, ChainReport};
use super::entry::{AuditEntry, Checkpoint, NewEntry};
use super::segment::Segment;
use super::{AuditError, Result};
use crate::report::SigningKey;
use crate::state::State;

/// seq → entry (JSON).
pub const AUDIT_ENTRIES: TableDefinition<'static, u64, &'static [u8]> =
    TableDefinition::new("audit_entries");
/// seq → checkpoint at that entry (JSON).
pub const AUDIT_CHECKPOINTS: TableDefinition<'static, u64, &'static [u8]> =
    TableDefinition::new("audit_checkpoints");

/// An append-only log. `append` computes seq and hashes from the last
/// entry inside one transaction, so two writers never fork the chain.
pub trait AuditLog: Send + Sync {
    fn append(&self, new: NewEntry, time: DateTime<Utc>) -> Result<AuditEntry>;
    fn last(&self) -> Result<Option<AuditEntry>>;
    /// Entries `from..=to`, in sequence order, as stored.
    fn entries(&self, from: u64, to: u64) -> Result<Vec<AuditEntry>>;
    fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()>;
    fn checkpoints(&self) -> Result<Vec<Checkpoint>>;
}

/// So the daemon can share one log (`Arc<RedbAuditLog>`, or
/// `Arc<dyn AuditLog>`) between the API handlers and the engine.
impl<T: AuditLog + ?Sized> AuditLog for Arc<T> {
    fn append(&self, new: NewEntry, time: DateTime<Utc>) -> Result<AuditEntry> {
        (**self).append(new, time)
    }
    fn last(&self) -> Result<Option<AuditEntry>> {
        (**self).last()
    }
    fn entries(&self, from: u64, to: u64) -> Result<Vec<AuditEntry>> {
        (**self).entries(from, to)
    }
    fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        (**self).add_checkpoint(checkpoint)
    }
    fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        (**self).checkpoints()
    }
}

#[derive(Default)]
pub struct MemoryAuditLog {
    inner: Mutex<(Vec<AuditEntry>, Vec<Checkpoint>)>,
}

impl MemoryAuditLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<AuditEntry>, Vec<Checkpoint>)> {
        // A panic while holding the lock leaves whole entries only.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl AuditLog for MemoryAuditLog {
    fn append(&self, new: NewEntry, time: DateTime<Utc>) -> Result<AuditEntry> {
        let mut g = self.lock();
        let e = AuditEntry::next(g.0.last(), new, time);
        g.0.push(e.clone());
        Ok(e)
    }

    fn last(&self) -> Result<Option<AuditEntry>> {
        Ok(self.lock().0.last().cloned())
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<AuditEntry>> {
        let g = self.lock();
        Ok(g.0
            .iter()
            .filter(|e| e.seq >= from && e.seq <= to)
            .cloned()
            .collect())
    }

    fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.lock().1.push(checkpoint.clone());
        Ok(())
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        Ok(self.lock().1.clone())
    }
}

/// The log in the controller's state file.
pub struct RedbAuditLog {
    state: Arc<State>,
}

impl RedbAuditLog {
    /// Creates the two tables if they are not there yet.
    pub fn open(state: Arc<State>) -> Result<RedbAuditLog> {
        state.write(|txn| {
            txn.open_table(AUDIT_ENTRIES)?;
            txn.open_table(AUDIT_CHECKPOINTS)?;
            txn.open_table(super::ship::AUDIT_SHIPPED)?;
            Ok(())
        })?;
        Ok(RedbAuditLog { state })
    }

    /// The state file the log lives in.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }
}

fn decode<T: serde::de::DeserializeOwned>(seq: u64, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| AuditError::Record {
        seq,
        message: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Decode failures inside a state closure travel as a crate error.
fn to_state(e: AuditError) -> crate::error::Error {
    crate::error::Error::State(e.to_string())
}

/// Appends inside a write transaction the caller commits: the entry and
/// the change it records land together or not at all (and many entries
/// can share one fsync'd commit).
pub fn append_in(
    txn: &redb::WriteTransaction,
    new: NewEntry,
    time: DateTime<Utc>,
) -> crate::error::Result<AuditEntry> {
    let mut table = txn.open_table(AUDIT_ENTRIES)?;
    let last: Option<AuditEntry> = match table.last()? {
        Some((k, v)) => Some(decode(k.value(), v.value()).map_err(to_state)?),
        None => None,
    };
    let e = AuditEntry::next(last.as_ref(), new, time);
    table.insert(e.seq, encode(&e).as_slice())?;
    Ok(e)
}

impl AuditLog for RedbAuditLog {
    fn append(&self, new: NewEntry, time: DateTime<Utc>) -> Result<AuditEntry> {
        Ok(self.state.write(|txn| append_in(txn, new, time))?)
    }

    fn last(&self) -> Result<Option<AuditEntry>> {
        Ok(self.state.read(|txn| {
            let table = txn.open_table(AUDIT_ENTRIES)?;
            let last = match table.last()? {
                Some((k, v)) => Some(decode(k.value(), v.value()).map_err(to_state)?),
                None => None,
            };
            Ok(last)
        })?)
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<AuditEntry>> {
        Ok(self.state.read(|txn| {
            let table = txn.open_table(AUDIT_ENTRIES)?;
            let mut out = Vec::new();
            for item in table.range(from..=to)? {
                let (k, v) = item?;
                out.push(decode(k.value(), v.value()).map_err(to_state)?);
            }
            Ok(out)
        })?)
    }

    fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        Ok(self.state.write(|txn| {
            let mut table = txn.open_table(AUDIT_CHECKPOINTS)?;
            table.insert(checkpoint.seq, encode(checkpoint).as_slice())?;
            Ok(())
        })?)
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        Ok(self.state.read(|txn| {
            let table = txn.open_table(AUDIT_CHECKPOINTS)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                out.push(decode(k.value(), v.value()).map_err(to_state)?);
            }
            Ok(out)
        })?)
    }
}

/// Records entries into a log and signs a checkpoint every `every` entries.
pub struct Auditor<L: AuditLog> {
    log: L,
    key: SigningKey,
    every: u64,
}

impl<L: AuditLog> Auditor<L> {
    pub fn new(log: L, key: SigningKey, every: u64) -> Auditor<L> {
        Auditor {
            log,
            key,
            every: every.max(1),
        }
    }

    pub fn log(&self) -> &L {
        &self.log
    }

    pub fn public_key(&self) -> crate::report::PublicKey {
        self.key.public()
    }

    /// Appends an entry; the K-th, 2K-th, ... entry gets a checkpoint.
    pub fn record(&self, new: NewEntry, time: DateTime<Utc>) -> Result<AuditEntry> {
        let e = self.log.append(new, time)?;
        if e.seq % self.every == 0 {
            self.log
                .add_checkpoint(&Checkpoint::sign(&e, time, &self.key))?;
        }
        Ok(e)
    }

    /// Appends inside the caller's write transaction (see [`append_in`]),
    /// with the checkpoint the K-th entry gets, in the same transaction.
    pub fn record_in(
        &self,
        txn: &redb::WriteTransaction,
        new: NewEntry,
        time: DateTime<Utc>,
    ) -> crate::error::Result<AuditEntry> {
        let e = append_in(txn, new, time)?;
        if e.seq % self.every == 0 {
            let c = Checkpoint::sign(&e, time, &self.key);
            let mut table = txn.open_table(AUDIT_CHECKPOINTS)?;
            table.insert(c.seq, encode(&c).as_slice())?;
        }
        Ok(e)
    }

    /// A checkpoint at the last entry now (e.g. before writing segments
    /// or at shutdown); `None` for an empty log.
    pub fn checkpoint(&self, time: DateTime<Utc>) -> Result<Option<Checkpoint>> {
        let Some(last) = self.log.last()? else {
            return Ok(None);
        };
        if let Some(c) = self
            .log
            .checkpoints()?
            .into_iter()
            .find(|c| c.seq == last.seq)
        {
            return Ok(Some(c));
        }
        let c = Checkpoint::sign(&last, time, &self.key);
        self.log.add_checkpoint(&c)?;
        Ok(Some(c))
    }

    /// The segments that end at checkpoints after entry `after` (the last
    /// seq already written to the stores): one per checkpoint, from the
    /// entry after the previous checkpoint.
    pub fn segments_after(&self, after: u64) -> Result<Vec<Segment>> {
        let mut checkpoints = self.log.checkpoints()?;
        checkpoints.sort_by_key(|c| c.seq);
        let mut out = Vec::new();
        let mut first = 1;
        for c in checkpoints {
            if c.seq > after {
                let entries = self.log.entries(first.max(after + 1), c.seq)?;
                out.push(Segment::new(entries, c.clone()));
            }
            first = c.seq + 1;
        }
        Ok(out)
    }

    /// Verifies the whole log as stored, with this controller's key.
    pub fn verify(&self) -> Result<ChainReport> {
        let entries = self.log.entries(1, u64::MAX)?;
        Ok(verify_chain(
            &entries,
            &self.log.checkpoints()?,
            &self.key.public(),
        )?)
    }
}
