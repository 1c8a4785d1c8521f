//! cadang-controller: schedules, restore approvals, drills and the audit log
//! for a regency's data center.
//!
//! It depends on `cadang-core`, `cadang-policies` and `cadang-proto`, never on
//! `cadang-agent`: everything agents and the controller exchange is a type of
//! `cadang-proto`.

pub mod engine;

pub use cadang_core as core;
pub use cadang_policies as policies;
