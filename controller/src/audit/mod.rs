//! The tamper-evident audit log (log audit / jejak audit): an append-only
//! BLAKE3 hash chain of entries, signed checkpoints by the controller's
//! key, and segments (a run of entries + the checkpoint at its end) as
//! files for the stores. Format: `docs/format.md`, "Audit log".
//!
//! - [`Auditor::record`] appends (and checkpoints every K entries);
//! - [`Auditor::segments_after`] gives the segment files to write to the stores;
//! - [`verify_chain`] / [`segment::verify_dir`] check a copy offline.

pub mod chain;
pub mod entry;
pub mod events;
pub mod segment;
pub mod ship;
pub mod store;

pub use chain::{verify_chain, ChainError, ChainProblem, ChainReport};
pub use entry::{agent_actor, AuditEntry, Checkpoint, NewEntry, CONTROLLER_ACTOR, GENESIS_HASH};
pub use segment::Segment;
pub use store::{AuditLog, Auditor, MemoryAuditLog, RedbAuditLog};

/// What went wrong with the audit log itself (not a verification finding:
/// those are [`ChainError`]).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log state: {0}")]
    State(String),
    #[error("audit entry {seq} in the state cannot be read: {message}; the state file is damaged: verify the store copy with `cadang audit verify --segments`")]
    Record { seq: u64, message: String },
    #[error("audit segment {path}: {message}")]
    Segment { path: String, message: String },
    #[error("cannot read the audit segment directory {path}: {message}")]
    Dir { path: String, message: String },
    #[error(transparent)]
    Chain(#[from] ChainError),
}

impl From<crate::error::Error> for AuditError {
    fn from(e: crate::error::Error) -> Self {
        AuditError::State(e.to_string())
    }
}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;
