//! Messages between an agent and the controller.
//!
//! Agents open every connection: they enroll once, then long-poll
//! [`crate::paths::POLL`] for their policy and jobs and deliver job reports to
//! [`crate::paths::REPORTS`]. A PD server listens on no port.
//!
//! Scheduled backups are identified by their **slot**: the source and the
//! scheduled time (Unix seconds, UTC). The controller dispatches a slot when it
//! falls due; an agent that cannot reach the controller runs the slot from its
//! cached policy itself. Either way the report carries the slot, so a slot is
//! backed up and counted once, however the two sides met.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What an agent is for. A drill runner sits at the DR site with read-only
/// DR credentials and runs restore drills; it never gets on-site write access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum AgentRole {
    Backup,
    DrillRunner,
}

/// POST [`crate::paths::ENROLL`]. The keys were made on the agent's host; only
/// public halves travel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollRequest {
    pub proto: u32,
    /// The secret half of the enrollment token (see
    /// [`crate::EnrollmentToken::secret_text`]).
    pub token: String,
    /// The host name the agent believes it has; must match the token's.
    pub host: String,
    /// PKCS#10 certificate signing request (PEM) for the agent's TLS key.
    pub csr_pem: String,
    /// The agent's own age recipient (`age1...`): restore envelopes are
    /// sealed to it.
    pub age_recipient: String,
    /// The agent's ed25519 snapshot-signing public key (64 hex digits); the
    /// controller certifies it in the PD's repository.
    pub signing_public_key: String,
}

/// Access to one store: where it is and, for S3, the key pair to use. For a
/// backup agent this is a write credential for its PD's prefix of the on-site
/// store, never the DR site's.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreAccess {
    /// A directory path or `s3://BUCKET/PREFIX?endpoint=...`.
    pub url: String,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for StoreAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreAccess")
            .field("url", &self.url)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "…"),
            )
            .finish()
    }
}

/// What an agent needs to write its PD's repository: enough to deduplicate
/// and sign, never to read (the identity stays with the Wali Data).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepositoryGrant {
    pub pd: String,
    pub repo_id: String,
    /// `age1...`: the PD's data recipient.
    pub data_recipient: String,
    /// The repository secret (chunk-id key, chunker seed) as the JSON that
    /// `cadang_core::keys::RepoSecret::to_json` writes.
    pub repo_secret_json: String,
}

impl std::fmt::Debug for RepositoryGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryGrant")
            .field("pd", &self.pd)
            .field("repo_id", &self.repo_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    pub agent_id: String,
    pub host: String,
    pub pd: String,
    pub role: AgentRole,
    /// The agent's client certificate (PEM), signed by the controller CA.
    pub client_cert_pem: String,
    /// The controller CA (PEM); its SHA-256 matched the token's fingerprint.
    pub ca_cert_pem: String,
    pub repository: RepositoryGrant,
    pub store: StoreAccess,
    pub policy: AgentPolicy,
}

/// The part of a PD's policy one agent needs to work alone: its sources and
/// their schedules. Cached on disk so backups go on while the controller is
/// unreachable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentPolicy {
    /// Changes whenever anything in this policy changes; the agent sends the
    /// version it holds and gets a new policy only when it differs.
    pub version: String,
    pub pd: String,
    pub host: String,
    /// IANA zone the schedules are written in (`Asia/Jakarta`, ...).
    pub zone: String,
    pub sources: Vec<SourceSpec>,
    /// Spread of scheduled starts, so a regency's servers do not all start at
    /// 01:00:00. The agent adds a stable per-source offset below this.
    #[serde(default)]
    pub jitter_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceSpec {
    /// Unique within the host (`files`, `db-siak`).
    pub name: String,
    /// 5-field crontab expression in the policy's zone.
    pub schedule: String,
    pub kind: SourceKind,
    #[serde(default)]
    pub excludes: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SourceKind {
    Paths {
        paths: Vec<String>,
    },
    /// A command whose standard output is stored as one file `stream_name`
    /// (`pg_dump -Fc siak`).
    Command {
        stream_name: String,
        command: String,
    },
}

/// POST [`crate::paths::POLL`]: the controller answers at once when it has
/// something for the agent, otherwise after `wait_seconds` with no jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PollRequest {
    pub proto: u32,
    /// The [`AgentPolicy::version`] the agent holds (empty if none).
    pub policy_version: String,
    /// Jobs running on the agent now, with their progress.
    #[serde(default)]
    pub running: Vec<JobProgress>,
    /// How long the controller may hold the request open (capped by it).
    pub wait_seconds: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PollResponse {
    /// Present when the agent's policy version is stale.
    #[serde(default)]
    pub policy: Option<AgentPolicy>,
    #[serde(default)]
    pub jobs: Vec<Job>,
}

pub type JobId = String;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    /// The agent drops a job it could not start by then (it reports that).
    #[serde(default)]
    pub not_after: Option<DateTime<Utc>>,
    /// When a scheduled job fell due on the controller (slot plus jitter).
    #[serde(default)]
    pub due_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum JobKind {
    /// Back up one source. `slot` is the scheduled time for a scheduled run,
    /// `None` for `backup-now`.
    Backup {
        source: String,
        #[serde(default)]
        slot: Option<i64>,
    },
    /// Restore under a custodian's approval: `envelope` is age-encrypted to
    /// the agent's own recipient and names the request it is good for.
    Restore {
        request_id: String,
        envelope: String,
        /// Read access to the PD's repository at the DR site, for this job
        /// only: the agent restores from it when its on-site store cannot
        /// be reached. Never kept by the agent.
        #[serde(default)]
        dr_store: Option<StoreAccess>,
    },
    /// A restore drill on a drill runner, under the PD's drill grant.
    Drill(crate::drill::DrillJob),
}

/// A running job as the agent sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobProgress {
    #[serde(default)]
    pub job_id: Option<JobId>,
    pub source: String,
    pub started: Option<DateTime<Utc>>,
    pub files: u64,
    pub bytes: u64,
    /// Bytes per second since the start.
    pub rate: u64,
}

/// POST [`crate::paths::REPORTS`]: reports in the order the agent wrote them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportBatch {
    pub reports: Vec<JobReport>,
}

/// The controller acknowledges every report it has stored, including ones it
/// had stored before (a resend after a lost answer): the agent then drops
/// them from its spool. Delivery is therefore exactly once by `report_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportAck {
    pub accepted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobReport {
    /// Made by the agent when the job ends; unique per agent, never reused.
    pub report_id: String,
    /// The controller's job id, when the controller dispatched it.
    #[serde(default)]
    pub job_id: Option<JobId>,
    pub kind: ReportKind,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub outcome: Outcome,
    /// A line an operator can act on; for a failure, what happened.
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ReportKind {
    Backup {
        source: String,
        #[serde(default)]
        slot: Option<i64>,
        #[serde(default)]
        snapshot: Option<String>,
        #[serde(default)]
        stats: BackupStats,
        /// Filled by the ransomware early-warning work: measured signals,
        /// never content or names.
        #[serde(default)]
        signals: Option<serde_json::Value>,
    },
    Restore {
        request_id: String,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    },
    /// The end of a restore drill; `result` is absent only when the runner
    /// could not even start it (the message says why).
    Drill {
        drill_id: String,
        #[serde(default)]
        result: Option<crate::drill::DrillResult>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Succeeded,
    /// Finished, with problems (files that could not be read).
    Partial,
    Failed,
    /// Stopped at a safe point (SIGTERM); it will be retried.
    Interrupted,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupStats {
    pub files: u64,
    pub dirs: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    #[serde(default)]
    pub problems: Vec<String>,
}

/// Identifies a scheduled run across both sides: `source@unix-seconds`.
pub fn slot_key(host: &str, source: &str, slot: i64) -> String {
    format!("{host}/{source}@{slot}")
}

/// Environment-like view of store credentials for logs and tests.
pub fn redacted(store: &StoreAccess) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    m.insert("url", store.url.clone());
    if let Some(k) = &store.access_key_id {
        m.insert("access_key_id", k.clone());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_kinds_are_tagged_and_tolerate_missing_optional_fields() {
        let j: Job =
            serde_json::from_str(r#"{"id":"j1","kind":{"type":"backup","source":"files"}}"#)
                .unwrap();
        assert_eq!(
            j.kind,
            JobKind::Backup {
                source: "files".into(),
                slot: None
            }
        );
        let text = serde_json::to_string(&j).unwrap();
        assert!(text.contains(r#""type":"backup""#));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let s = StoreAccess {
            url: "s3://b/p".into(),
            access_key_id: Some("AK".into()),
            secret_access_key: Some("SECRET".into()),
        };
        assert!(!format!("{s:?}").contains("SECRET"));
        let g = RepositoryGrant {
            pd: "DUKCAPIL".into(),
            repo_id: "r".into(),
            data_recipient: "age1x".into(),
            repo_secret_json: "{\"chunk_key\":\"TOPSECRET\"}".into(),
        };
        assert!(!format!("{g:?}").contains("TOPSECRET"));
    }
}
