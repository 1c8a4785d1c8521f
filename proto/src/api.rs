//! Messages of the people-facing API (`/api/v1/...` with a bearer token or a
//! console session) that the operator CLI also reads. The controller owns
//! these routes; the CLI deserialises the same types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agent::AgentRole;

/// The roles a person can hold. A custodian is the Wali Data of the named PDs
/// only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum Role {
    Admin,
    Operator,
    Custodian { pds: Vec<String> },
    Auditor,
}

impl Role {
    /// The role's name without its PDs (`custodian`).
    pub fn kind(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Custodian { .. } => "custodian",
            Role::Auditor => "auditor",
        }
    }

    /// Whether this role may see or act on `pd` (custodians: their PDs only).
    pub fn covers_pd(&self, pd: &str) -> bool {
        match self {
            Role::Custodian { pds } => pds.iter().any(|p| p == pd),
            _ => true,
        }
    }
}

/// An error body: what happened, for a person.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    pub error: String,
    /// Located problems (policy reload: `file:line:column: message`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// `GET /api/v1/fleet`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetStatus {
    pub generated: Option<DateTime<Utc>>,
    pub pds: Vec<PdStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PdStatus {
    pub pd: String,
    /// Whether the Wali Data registered the PD's repository.
    pub registered: bool,
    pub rpo_seconds: u64,
    /// `onsite` and `dr`.
    pub sites: Vec<SiteStatus>,
    pub agents: Vec<AgentStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteStatus {
    pub site: String,
    /// How old the newest data at this site is, seconds (none yet: null).
    pub lag_seconds: Option<i64>,
    /// Every source's newest copy at this site is younger than the RPO.
    pub rpo_ok: bool,
    pub last_replication: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentStatus {
    pub agent_id: String,
    pub host: String,
    pub role: String,
    /// Polled within the last minute.
    pub connected: bool,
    pub last_seen: Option<DateTime<Utc>>,
    pub revoked: bool,
    pub sources: Vec<SourceStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceStatus {
    pub source: String,
    pub last_success: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub last_duration_seconds: Option<f64>,
    pub rpo_ok: bool,
}

/// One job as `GET /api/v1/jobs` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobView {
    pub id: String,
    /// `backup`, `replicate`, `verify`, `retention`, `repair`.
    pub kind: String,
    pub pd: String,
    pub host: Option<String>,
    pub source: Option<String>,
    /// `onsite` / `dr` for verification and retention.
    pub site: Option<String>,
    /// `queued`, `delivered`, `running`, `finished`.
    pub state: String,
    /// `succeeded`, `partial`, `problems`, `failed`, `interrupted`, ...
    pub outcome: Option<String>,
    pub message: String,
    pub created: DateTime<Utc>,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    pub attempts: u32,
    /// Unix seconds of the scheduled slot; none for backup-now.
    pub slot: Option<i64>,
    pub snapshot: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

/// `POST /api/v1/hosts/{host}/backup-now`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupNowRequest {
    /// One source; none = every source of the host.
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupNowResponse {
    /// Jobs queued.
    pub jobs: Vec<String>,
    /// Sources skipped because a job for them is already queued or running.
    #[serde(default)]
    pub busy: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotView {
    pub id: String,
    pub pd: String,
    pub host: String,
    pub source: String,
    pub time: DateTime<Utc>,
    pub files: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotList {
    pub snapshots: Vec<SnapshotView>,
}

/// `POST /api/v1/pds`: what the Wali Data's machine sends from the
/// credential file of `cadang repo init` — never the identity.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterPd {
    pub pd: String,
    pub repo_id: String,
    pub data_recipient: String,
    /// `RepoSecret::to_json`.
    pub repo_secret_json: String,
}

impl std::fmt::Debug for RegisterPd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterPd")
            .field("pd", &self.pd)
            .field("repo_id", &self.repo_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterPdResponse {
    pub pd: String,
    pub repo_id: String,
    /// False when the same repository was registered before.
    pub new: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReloadResponse {
    pub fingerprint: String,
    pub pds: Vec<String>,
}

/// `POST /api/v1/users` (admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateUser {
    pub name: String,
    /// 18 digits; required for operators and custodians.
    #[serde(default)]
    pub nip: Option<String>,
    #[serde(flatten)]
    pub role: Role,
}

/// The new user's API token, shown once.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateUserResponse {
    pub name: String,
    pub token: String,
}

impl std::fmt::Debug for CreateUserResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserResponse")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/enroll-tokens` (what `controller enroll-token` sends to a
/// running controller).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollTokenRequest {
    pub host: String,
    pub pd: String,
    pub role: AgentRole,
    pub ttl_seconds: u64,
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollTokenResponse {
    /// `cadang-enroll-1....`, shown once.
    pub token: String,
    pub expires: DateTime<Utc>,
}

impl std::fmt::Debug for EnrollTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollTokenResponse")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/hosts/{host}/revoke`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeResponse {
    pub host: String,
    /// The agents (enrollments) of the host now refused.
    pub agents: Vec<String>,
}
