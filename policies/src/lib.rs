//! Policies for cadang: the rules that decide *when* backups run, *which*
//! snapshots are kept, and the policy files operators write.
//!
//! - [`retention`] decides which snapshots a keep policy retains, with the
//!   semantics of restic's `forget`.
//! - [`schedule`] reads operators' 5-field crontab expressions in a regency's
//!   time zone (WIB, WITA, WIT) and computes the next run times.
//! - [`load`] reads a policy directory (`regency.toml` + `pd/*.toml`) into
//!   the resolved [`model::PolicySet`], or every located
//!   [`Diagnostic`] in it; [`explain`] lists the next runs of a PD's jobs.
//! - [`nip`] checks civil-servant numbers (NIP); [`duration`] reads
//!   durations, bandwidths, shares and windows.
//!
//! The crate is pure logic and knows nothing of storage: it never reads a
//! repository, lists snapshots or deletes anything. Callers hand it plain
//! values (snapshot ids and times, expressions, file text) and act on its
//! answers, which keeps the rules easy to test exhaustively and to reuse
//! from the agent, the controller and the CLI alike. (Only
//! [`load::load_dir`] touches the file system, to read the policy files.)

pub mod diagnostic;
pub mod duration;
pub mod error;
pub mod explain;
pub mod load;
pub mod model;
pub mod nip;
pub mod retention;
pub mod schedule;

mod anomaly;
mod drill;
mod pd;
mod reader;
mod regency;
mod resolve;
mod settings;
mod suggest;
mod validate;

#[cfg(test)]
mod tests;

pub use diagnostic::Diagnostic;
pub use error::PolicyError;
pub use load::{load_dir, load_sources};
