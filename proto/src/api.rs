//! Messages of the people-facing API (`/api/v1/...` with a bearer token or a
//! console session) that the operator CLI also reads. The controller owns
//! these routes; the CLI deserialises the same types.

use serde::{Deserialize, Serialize};

/// The roles a person can hold. A custodian is the Wali Data of the named PDs
/// only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum Role {
    Admin,
    Operator,
    Custodian { pds: Vec<String> },
    Auditor,
}

/// An error body: what happened, for a person.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}
