//! cadang-controller: schedules, restore approvals, drills and the audit log
//! for a regency's data center.
//!
//! Not built yet: this crate is a compiling placeholder so the workspace has
//! its final shape. It depends on `cadang-core` and `cadang-policies`, never
//! on `cadang-agent`; what agents and the controller exchange will live in a
//! small shared module of wire types.

pub use cadang_core as core;
pub use cadang_policies as policies;
