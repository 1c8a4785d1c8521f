//! Segments: a run of entries and the signed checkpoint at its end, one
//! file `cadang-audit/<first-seq>-<last-seq>.json` each, written to the
//! stores so the log is at the DR site and survives the data center.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::chain::{verify_chain, ChainReport};
use super::entry::{AuditEntry, Checkpoint};
use super::{AuditError, Result};
use crate::report::PublicKey;

pub const SEGMENT_FORMAT: &str = "cadang-audit-segment";
pub const SEGMENT_VERSION: u32 = 1;
/// The directory segments live in, at the top of a store.
pub const SEGMENT_DIR: &str = crate::publish::AUDIT_DIR;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub format: String,
    pub version: u32,
    pub first_seq: u64,
    pub last_seq: u64,
    pub entries: Vec<AuditEntry>,
    /// Signed, at `last_seq`.
    pub checkpoint: Checkpoint,
}

impl Segment {
    /// `entries` must run up to the checkpoint's entry.
    pub fn new(entries: Vec<AuditEntry>, checkpoint: Checkpoint) -> Segment {
        Segment {
            format: SEGMENT_FORMAT.into(),
            version: SEGMENT_VERSION,
            first_seq: entries.first().map_or(checkpoint.seq, |e| e.seq),
            last_seq: checkpoint.seq,
            entries,
            checkpoint,
        }
    }

    /// `<first-seq>-<last-seq>.json` (put it under [`SEGMENT_DIR`]).
    pub fn file_name(&self) -> String {
        format!("{}-{}.json", self.first_seq, self.last_seq)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses a segment file and checks that it says what its name says.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Segment> {
        let fail = |message: String| AuditError::Segment {
            path: name.to_string(),
            message,
        };
        let s: Segment = serde_json::from_slice(bytes).map_err(|e| {
            fail(format!(
                "not a segment file ({e}); it was damaged or replaced"
            ))
        })?;
        if s.format != SEGMENT_FORMAT || s.version != SEGMENT_VERSION {
            return Err(fail(format!(
                "format {} version {} is not supported",
                s.format, s.version
            )));
        }
        if s.file_name() != name || s.checkpoint.seq != s.last_seq {
            return Err(fail(format!(
                "it holds entries {}..={} with a checkpoint at {}: renamed or edited",
                s.first_seq, s.last_seq, s.checkpoint.seq
            )));
        }
        Ok(s)
    }
}

/// Writes segments into `dir` (a local store's `audit/`, or a test's).
pub fn write_dir(dir: &Path, segments: &[Segment]) -> Result<()> {
    let fail = |message: String| AuditError::Dir {
        path: dir.display().to_string(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    for s in segments {
        std::fs::write(dir.join(s.file_name()), s.to_bytes()).map_err(|e| fail(e.to_string()))?;
    }
    Ok(())
}

/// Reads every `*.json` segment in `dir`, in sequence order.
pub fn read_dir(dir: &Path) -> Result<Vec<Segment>> {
    let fail = |message: String| AuditError::Dir {
        path: dir.display().to_string(),
        message,
    };
    let mut files = Vec::new();
    for item in std::fs::read_dir(dir).map_err(|e| fail(e.to_string()))? {
        let path = item.map_err(|e| fail(e.to_string()))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".json") || name.starts_with('.') {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| fail(format!("{name}: {e}")))?;
        files.push((name.to_string(), bytes));
    }
    parse_all(files)
}

/// Verifies a directory of segment files as one log: every segment's
/// checkpoint, and the chain across segments (a missing file shows as
/// missing entries).
pub fn verify_dir(dir: &Path, key: &PublicKey) -> Result<ChainReport> {
    let segments = read_dir(dir)?;
    verify_segments(&segments, key)
}

pub fn verify_segments(segments: &[Segment], key: &PublicKey) -> Result<ChainReport> {
    let checkpoints: Vec<Checkpoint> = segments.iter().map(|s| s.checkpoint.clone()).collect();
    Ok(verify_chain(&joined_entries(segments), &checkpoints, key)?)
}

/// The entries of segments (in file order), each once. Segments may
/// overlap: a shipper that stopped after writing a segment but before
/// remembering it writes a longer one from the same start next time. An
/// entry seen again is dropped only when it is identical to the first
/// copy; any other repeat stays, so the chain check reports it.
fn joined_entries(segments: &[Segment]) -> Vec<AuditEntry> {
    let mut seen: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    let mut out: Vec<AuditEntry> = Vec::new();
    for e in segments.iter().flat_map(|s| s.entries.iter()) {
        match seen.get(&e.seq) {
            Some(&i) if out[i] == *e => continue,
            _ => {
                seen.entry(e.seq).or_insert(out.len());
                out.push(e.clone());
            }
        }
    }
    out
}

/// Reads every segment file from the documents a store listed
/// (`(name, bytes)`), skipping what is not a segment (the key file).
pub fn parse_all(files: Vec<(String, Vec<u8>)>) -> Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for (name, bytes) in files {
        if name.ends_with(".json") {
            segments.push(Segment::parse(&name, &bytes)?);
        }
    }
    segments.sort_by_key(|s| (s.first_seq, s.last_seq));
    Ok(segments)
}

impl Segment {
    /// Its path inside a store: `audit/<first-seq>-<last-seq>.json`.
    pub fn store_path(&self) -> String {
        format!("{SEGMENT_DIR}/{}", self.file_name())
    }
}
