//! cadang-proto: the wire types agents, the controller and the operator CLI
//! exchange over the controller's HTTPS API.
//!
//! Serde types and small pure helpers only: no I/O, no TLS, no storage. Both
//! `cadang-agent` and `cadang-controller` depend on this crate and never on
//! each other, so this is the whole contract between them.
//!
//! Compatibility rule: [`PROTO_VERSION`] changes only when a message changes
//! meaning. New fields are added with `#[serde(default)]` so an older peer
//! still parses a newer message; nothing is renamed or removed within a
//! version.

pub mod agent;
pub mod api;
pub mod drill;
pub mod restore;
pub mod signals;
pub mod token;

pub use token::{EnrollmentToken, TokenError};

/// The protocol version spoken by this build; sent in every enrollment and
/// poll so the controller can refuse a peer it does not understand.
pub const PROTO_VERSION: u32 = 1;

/// Routes of the controller's API (all under HTTPS).
pub mod paths {
    /// Agent enrollment: server-authenticated TLS only (the agent has no
    /// certificate yet); the one-time token authenticates the agent.
    pub const ENROLL: &str = "/api/v1/agent/enroll";
    /// Long-poll for jobs and the current policy (client certificate).
    pub const POLL: &str = "/api/v1/agent/poll";
    /// Deliver spooled job reports, in order (client certificate).
    pub const REPORTS: &str = "/api/v1/agent/reports";
    /// Prometheus text exposition.
    pub const METRICS: &str = "/metrics";
    /// The OpenAPI 3.1 document generated from the handlers.
    pub const OPENAPI: &str = "/api/openapi.json";
}
