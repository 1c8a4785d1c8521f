//! cadang-controller: schedules, restore approvals, drills and the audit log
//! for a regency's data center.
//!
//! It depends on `cadang-core`, `cadang-policies` and `cadang-proto`, never on
//! `cadang-agent`: everything agents and the controller exchange is a type of
//! `cadang-proto`.
//!
//! - [`daemon::run`]: the daemon (HTTPS listener, scheduler, site-job pool).
//! - [`init::init`], [`enroll::issue_token`]: what `cadang controller ...` does offline.
//! - [`client::ApiClient`]: the HTTPS client of the operator CLI and the tests.

pub mod agenda;
pub mod anomaly;
pub mod api;
pub mod audit;
pub mod ca;
pub mod client;
pub mod config;
pub mod console;
pub mod daemon;
pub mod dispatch;
pub mod drill;
pub mod engine;
pub mod enroll;
pub mod error;
pub mod fleet;
pub mod init;
pub mod metrics;
pub mod policy;
pub mod publish;
pub mod rebuild;
pub mod registration;
pub mod report;
pub mod restore;
pub mod state;
pub mod tls;

pub use cadang_core as core;
pub use cadang_policies as policies;
pub use cadang_proto as proto;
pub use error::{Error, Result};
