//! Policies for cadang: the rules that decide *when* backups run and *which*
//! snapshots are kept.
//!
//! - [`retention`] decides which snapshots a keep policy retains, with the
//!   semantics of restic's `forget`.
//! - [`schedule`] reads operators' 5-field crontab expressions in a regency's
//!   time zone (WIB, WITA, WIT) and computes the next run times.
//!
//! The crate is pure logic and knows nothing of storage: it never reads a
//! repository, lists snapshots or deletes anything. Callers hand it plain
//! values (snapshot ids and times, expressions) and act on its answers, which
//! keeps the rules easy to test exhaustively and to reuse from the agent, the
//! controller and the CLI alike.

pub mod error;
pub mod model;
pub mod retention;
pub mod schedule;

pub use error::PolicyError;
