//! Operations on a repository, built on [`crate::format`] and a
//! [`crate::backend::Backend`]: backup sessions (with the local chunk
//! index), locks between them and prune, check, prune, replicate, repair
//! and export/import.
//!
//! They know nothing of agents, schedules or HTTP: the CLI, the agent and
//! the controller call them the same way.

pub mod check;
pub mod export;
pub mod index_cache;
pub mod lock;
pub mod prune;
pub mod repair;
pub mod replicate;
pub mod session;
