//! Offline verification of a copy of the audit log: the hash chain, and
//! the signed checkpoints that anchor it against rewriting and truncation.

use super::entry::{AuditEntry, Checkpoint, GENESIS_HASH};
use crate::report::PublicKey;

/// What a verification found wrong, at the first bad sequence number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("audit log is not intact at entry {seq}: {problem}")]
pub struct ChainError {
    /// The first sequence number that is not as it was written.
    pub seq: u64,
    pub problem: ChainProblem,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChainProblem {
    #[error("its content does not match its hash: the entry was edited")]
    Changed,
    #[error(
        "its prev_hash does not match the entry before it: an entry was removed, replaced or moved"
    )]
    BrokenLink,
    #[error("entry {found} is where {expected} should be, and {expected} is further on: entries were reordered")]
    Reordered { expected: u64, found: u64 },
    #[error("entry {found} is where {expected} should be: entries were removed")]
    Missing { expected: u64, found: u64 },
    #[error("entry {found} appears again where {expected} should be: entries were duplicated or reordered")]
    Duplicate { expected: u64, found: u64 },
    #[error("the log ends at entry {last}, but a signed checkpoint covers entry {checkpoint}: entries were cut off the end")]
    Truncated { last: u64, checkpoint: u64 },
    #[error("the signed checkpoint at entry {checkpoint} has another hash: entries {from}..={checkpoint} were rewritten (hashes recomputed)")]
    Rewritten { from: u64, checkpoint: u64 },
    #[error("the checkpoint at entry {checkpoint} is not signed by the given key (it names key {key_id}): it is forged, or the wrong key was given")]
    BadCheckpoint { checkpoint: u64, key_id: String },
}

/// What an intact log contains.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainReport {
    pub entries: u64,
    pub last_seq: u64,
    pub last_hash: String,
    pub checkpoints: u64,
    pub last_checkpoint: Option<u64>,
    /// Entries after the last checkpoint: protected by the chain against
    /// edits, but not against being cut off until the next checkpoint.
    pub unanchored: u64,
}

/// Verifies `entries` (in stored order, from entry 1) against
/// `checkpoints` signed by `key`. Stage 1: every checkpoint's signature;
/// stage 2: the chain, entry by entry; stage 3: each checkpoint against
/// the entry it covers (rewriting and truncation).
pub fn verify_chain(
    entries: &[AuditEntry],
    checkpoints: &[Checkpoint],
    key: &PublicKey,
) -> Result<ChainReport, ChainError> {
    let mut checkpoints: Vec<&Checkpoint> = checkpoints.iter().collect();
    checkpoints.sort_by_key(|c| c.seq);
    check_signatures(&checkpoints, key)?;
    check_links(entries)?;
    check_anchors(entries, &checkpoints)?;
    let last = entries.last();
    let last_seq = last.map_or(0, |e| e.seq);
    let last_checkpoint = checkpoints.last().map(|c| c.seq);
    Ok(ChainReport {
        entries: entries.len() as u64,
        last_seq,
        last_hash: last.map_or(GENESIS_HASH.to_string(), |e| e.hash.clone()),
        checkpoints: checkpoints.len() as u64,
        last_checkpoint,
        unanchored: last_seq - last_checkpoint.unwrap_or(0).min(last_seq),
    })
}

fn check_signatures(checkpoints: &[&Checkpoint], key: &PublicKey) -> Result<(), ChainError> {
    match checkpoints.iter().find(|c| !c.verify(key)) {
        Some(c) => Err(ChainError {
            seq: c.seq,
            problem: ChainProblem::BadCheckpoint {
                checkpoint: c.seq,
                key_id: c.key_id.clone(),
            },
        }),
        None => Ok(()),
    }
}

fn check_links(entries: &[AuditEntry]) -> Result<(), ChainError> {
    let mut prev_hash = GENESIS_HASH;
    for (i, e) in entries.iter().enumerate() {
        let expected = i as u64 + 1;
        if e.seq != expected {
            return Err(ChainError {
                seq: expected,
                problem: misplaced(entries, i, expected, e.seq),
            });
        }
        if e.compute_hash() != e.hash {
            return Err(bad(expected, ChainProblem::Changed));
        }
        if e.prev_hash != prev_hash {
            return Err(bad(expected, ChainProblem::BrokenLink));
        }
        prev_hash = &e.hash;
    }
    Ok(())
}

/// Why entry `found` sits at position `i` where `expected` belongs.
fn misplaced(entries: &[AuditEntry], i: usize, expected: u64, found: u64) -> ChainProblem {
    if found < expected {
        ChainProblem::Duplicate { expected, found }
    } else if entries[i + 1..].iter().any(|e| e.seq == expected) {
        ChainProblem::Reordered { expected, found }
    } else {
        ChainProblem::Missing { expected, found }
    }
}

fn check_anchors(entries: &[AuditEntry], checkpoints: &[&Checkpoint]) -> Result<(), ChainError> {
    let last = entries.last().map_or(0, |e| e.seq);
    let mut anchored = 0;
    for c in checkpoints {
        if c.seq > last {
            return Err(bad(
                last + 1,
                ChainProblem::Truncated {
                    last,
                    checkpoint: c.seq,
                },
            ));
        }
        // check_links made position = seq - 1.
        let covered = c.seq.checked_sub(1).and_then(|i| entries.get(i as usize));
        if covered.map(|e| &e.hash) != Some(&c.hash) {
            return Err(bad(
                anchored + 1,
                ChainProblem::Rewritten {
                    from: anchored + 1,
                    checkpoint: c.seq,
                },
            ));
        }
        anchored = c.seq;
    }
    Ok(())
}

fn bad(seq: u64, problem: ChainProblem) -> ChainError {
    ChainError { seq, problem }
}
