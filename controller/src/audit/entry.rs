//! Entries, their hashes, and checkpoints.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::report::canonical::to_canonical;
use crate::report::{PublicKey, SigningKey};

/// `prev_hash` of entry 1.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const ENTRY_CONTEXT: &[u8] = b"cadang-audit-entry-v1\n";
const CHECKPOINT_CONTEXT: &[u8] = b"cadang-audit-checkpoint-v1\n";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1, 2, 3, ... without gaps.
    pub seq: u64,
    pub time: DateTime<Utc>,
    /// A user's NIP, `agent:<id>`, or `controller`.
    pub actor: String,
    /// e.g. `restore.approve`, `policy.reload`, `drill.report`.
    pub action: String,
    /// What it acted on, e.g. `DISDUKCAPIL/restore/17`.
    pub subject: String,
    /// `ok`, `refused`, `failed`, ...
    pub outcome: String,
    /// Whatever else matters, as JSON (no floats: see the report format).
    pub detail: Value,
    /// The previous entry's `hash` ([`GENESIS_HASH`] for entry 1).
    pub prev_hash: String,
    /// BLAKE3 of this entry without `hash` (see [`AuditEntry::compute_hash`]).
    pub hash: String,
}

/// What a caller records; the log adds seq, time and the hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub outcome: String,
    pub detail: Value,
}

impl NewEntry {
    pub fn new(actor: &str, action: &str, subject: &str, outcome: &str) -> NewEntry {
        NewEntry {
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            outcome: outcome.into(),
            detail: Value::Object(Default::default()),
        }
    }

    pub fn detail(mut self, detail: Value) -> NewEntry {
        self.detail = detail;
        self
    }
}

/// The actor string of an agent.
pub fn agent_actor(agent_id: &str) -> String {
    format!("agent:{agent_id}")
}

/// The actor string of the controller itself.
pub const CONTROLLER_ACTOR: &str = "controller";

impl AuditEntry {
    /// The entry that follows `last` (or the first one).
    pub fn next(last: Option<&AuditEntry>, new: NewEntry, time: DateTime<Utc>) -> AuditEntry {
        let (seq, prev_hash) = match last {
            Some(l) => (l.seq + 1, l.hash.clone()),
            None => (1, GENESIS_HASH.to_string()),
        };
        let mut e = AuditEntry {
            seq,
            time,
            actor: new.actor,
            action: new.action,
            subject: new.subject,
            outcome: new.outcome,
            detail: new.detail,
            prev_hash,
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    /// BLAKE3 (hex) of the context and the canonical JSON of every field
    /// but `hash`.
    pub fn compute_hash(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.remove("hash");
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(ENTRY_CONTEXT);
        hasher.update(&to_canonical(&value));
        hasher.finalize().to_hex().to_string()
    }
}

/// A signed statement "the log had entry `seq` with hash `hash`".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub time: DateTime<Utc>,
    /// The signer's public key (hex): named in messages, never trusted by
    /// itself (verification takes the key from the operator).
    pub key_id: String,
    /// ed25519 over [`Checkpoint::message`], hex.
    pub signature: String,
}

impl Checkpoint {
    pub fn sign(entry: &AuditEntry, time: DateTime<Utc>, key: &SigningKey) -> Checkpoint {
        let msg = Self::message(entry.seq, &entry.hash, &time);
        Checkpoint {
            seq: entry.seq,
            hash: entry.hash.clone(),
            time,
            key_id: key.public().to_hex(),
            signature: hex::encode(key.sign(&msg)),
        }
    }

    /// `context || seq || "\n" || hash || "\n" || time (RFC 3339, UTC, Z)`.
    pub fn message(seq: u64, hash: &str, time: &DateTime<Utc>) -> Vec<u8> {
        let mut msg = CHECKPOINT_CONTEXT.to_vec();
        msg.extend_from_slice(
            format!(
                "{seq}\n{hash}\n{}",
                time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            )
            .as_bytes(),
        );
        msg
    }

    pub fn verify(&self, key: &PublicKey) -> bool {
        let Ok(sig) = hex::decode(&self.signature) else {
            return false;
        };
        key.verify(&Self::message(self.seq, &self.hash, &self.time), &sig)
    }
}
