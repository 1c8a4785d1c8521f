//! Custodian-approved restores: what the operator files, what the Wali
//! Data's CLI fetches and seals, what the agent opens and reports.
//!
//! The flow (see `docs/security-model.md`):
//!
//! 1. an operator files a [`FileRestore`]; the controller resolves the
//!    snapshot (`latest` → an id) and stores a [`RestoreRequest`] in state
//!    [`RestoreState::Pending`];
//! 2. the PD's custodian runs `cadang restore approve ID` on their own
//!    machine: it fetches the [`ApprovalMaterial`] (the request, the
//!    restoring agent's age recipient, the PD's passphrase-wrapped identity),
//!    unwraps the identity locally, seals an [`EnvelopePayload`] to the
//!    agent's recipient and posts only the armored envelope
//!    ([`ApproveRestore`]);
//! 3. the controller queues a `JobKind::Restore` carrying the envelope; the
//!    agent opens it, checks it names this job, is unused and unexpired,
//!    restores, verifies and reports a [`RestoreReport`].
//!
//! The controller never sees the identity: it stores and forwards envelopes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Routes of the restore API (people, bearer token).
pub mod paths {
    /// `POST`: file a request (operator, admin). `GET`: list (custodians see
    /// their PDs only).
    pub const RESTORES: &str = "/api/v1/restores";
    pub const RESTORE: &str = "/api/v1/restores/{id}";
    pub const MATERIAL: &str = "/api/v1/restores/{id}/approval-material";
    pub const APPROVE: &str = "/api/v1/restores/{id}/approve";
    pub const REJECT: &str = "/api/v1/restores/{id}/reject";
    pub const CANCEL: &str = "/api/v1/restores/{id}/cancel";

    /// `path` with `{id}` replaced (for clients).
    pub fn with_id(path: &str, id: &str) -> String {
        path.replace("{id}", id)
    }
}

/// The default validity of a request (and of its envelope) when the
/// operator names none.
pub const DEFAULT_EXPIRY_SECONDS: u64 = 24 * 3600;
/// The longest a request may stay valid: an envelope is a key to the PD's
/// data, it must not live for months.
pub const MAX_EXPIRY_SECONDS: u64 = 7 * 24 * 3600;
/// The format tag inside every envelope.
pub const ENVELOPE_FORMAT: &str = "cadang-restore-envelope";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RestoreState {
    /// Filed, waiting for the custodian.
    Pending,
    /// The envelope is stored and the job queued for the agent.
    Approved,
    Rejected,
    Cancelled,
    /// Not approved (or not started) before `expires`.
    Expired,
    /// The agent reported it runs the job.
    Running,
    Done,
    Failed,
}

impl RestoreState {
    pub fn name(self) -> &'static str {
        match self {
            RestoreState::Pending => "pending",
            RestoreState::Approved => "approved",
            RestoreState::Rejected => "rejected",
            RestoreState::Cancelled => "cancelled",
            RestoreState::Expired => "expired",
            RestoreState::Running => "running",
            RestoreState::Done => "done",
            RestoreState::Failed => "failed",
        }
    }

    /// Nothing more can happen to a request in this state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RestoreState::Rejected
                | RestoreState::Cancelled
                | RestoreState::Expired
                | RestoreState::Done
                | RestoreState::Failed
        )
    }
}

/// What to restore from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum RestoreWhat {
    /// Everything in the snapshot.
    Whole,
    /// These absolute paths (and everything below them).
    Paths { paths: Vec<String> },
    /// A database dump stream (the source's `stream_name`), written as a
    /// file under the target, or piped into `pipe` (run by `sh -c` on the
    /// agent, e.g. `pg_restore -d siak`) when given.
    Dump {
        stream: String,
        #[serde(default)]
        pipe: Option<String>,
    },
}

/// A person's step on a request: who (NIP, or user name when none) and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Signoff {
    /// The NIP, or the user name for someone without one (an admin).
    pub actor: String,
    pub name: String,
    pub at: DateTime<Utc>,
}

/// A restore request as the controller keeps and shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestoreRequest {
    /// `rr-000000000042`.
    pub id: String,
    pub pd: String,
    /// The full snapshot id (`latest` was resolved when the request was filed).
    pub snapshot: String,
    /// When the snapshot was taken and on which host (from the catalogue).
    #[serde(default)]
    pub snapshot_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub snapshot_host: Option<String>,
    pub what: RestoreWhat,
    /// The enrolled agent that restores, and its host.
    pub agent_id: String,
    pub agent_host: String,
    /// An absolute directory on the agent's host.
    pub target: String,
    /// Restore over existing files; what would be overwritten is moved
    /// aside first (`<target>/.cadang-moved-aside-<id>/`).
    #[serde(default)]
    pub in_place: bool,
    pub reason: String,
    pub expires: DateTime<Utc>,
    pub state: RestoreState,
    pub filed: Signoff,
    #[serde(default)]
    pub approved: Option<Signoff>,
    #[serde(default)]
    pub rejected: Option<Signoff>,
    #[serde(default)]
    pub reject_reason: Option<String>,
    #[serde(default)]
    pub cancelled: Option<Signoff>,
    /// The agent job carrying the envelope, once approved.
    #[serde(default)]
    pub job_id: Option<String>,
    /// When the envelope was handed to the agent.
    #[serde(default)]
    pub delivered: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished: Option<DateTime<Utc>>,
    #[serde(default)]
    pub report: Option<RestoreReport>,
    /// The last thing that happened, for a person.
    #[serde(default)]
    pub message: String,
}

/// `POST /api/v1/restores` (operator, admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileRestore {
    pub pd: String,
    /// A snapshot id (or unique prefix) from the catalogue, or `latest`.
    pub snapshot: String,
    /// For `latest`: the newest snapshot of this host (default: the
    /// restoring agent's host, else the PD's newest).
    #[serde(default)]
    pub source_host: Option<String>,
    pub what: RestoreWhat,
    /// The host name of the enrolled agent that restores.
    pub agent: String,
    pub target: String,
    #[serde(default)]
    pub in_place: bool,
    pub reason: String,
    /// Seconds from now; default [`DEFAULT_EXPIRY_SECONDS`], at most
    /// [`MAX_EXPIRY_SECONDS`].
    #[serde(default)]
    pub expires_seconds: Option<u64>,
}

/// `GET /api/v1/restores/{id}/approval-material` (the PD's custodian only):
/// everything `cadang restore approve` needs, none of it secret without the
/// passphrase.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalMaterial {
    pub request: RestoreRequest,
    /// `age1...`: the restoring agent's own key, recorded at enrollment.
    pub agent_recipient: String,
    /// The PD's `keys/identity.age` from the repository, base64: the data
    /// identity wrapped with the custodian's passphrase (age scrypt).
    pub wrapped_identity: String,
    /// The PD's data recipient: the unwrapped identity must match it.
    pub data_recipient: String,
    /// The controller's ed25519 public key (hex), which certified the
    /// agents' snapshot-signing keys; sealed into the envelope as a trust
    /// anchor for the agent's signer check.
    pub controller_key: String,
}

/// `POST /api/v1/restores/{id}/approve`: only the armored envelope. A body
/// holding an `AGE-SECRET-KEY` is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApproveRestore {
    /// `-----BEGIN AGE ENCRYPTED FILE-----...`, sealed to the agent.
    pub envelope: String,
}

/// `POST /api/v1/restores/{id}/reject`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectRestore {
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestoreList {
    pub requests: Vec<RestoreRequest>,
}

/// What the custodian seals for one job. Serialised to JSON, age-encrypted
/// to the agent's recipient, armored. Only the agent can open it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopePayload {
    /// [`ENVELOPE_FORMAT`].
    pub format: String,
    pub version: u32,
    pub request_id: String,
    pub pd: String,
    /// The agent it is for (an envelope opened by another agent's key is
    /// impossible; this names it for the audit trail and the agent's check).
    pub agent_id: String,
    pub snapshot: String,
    pub what: RestoreWhat,
    pub target: String,
    #[serde(default)]
    pub in_place: bool,
    pub expires: DateTime<Utc>,
    /// Public keys (hex) the agent trusts to certify the snapshot's signer,
    /// besides the custodian key derived from the identity.
    #[serde(default)]
    pub trust_keys: Vec<String>,
    /// `AGE-SECRET-KEY-1...`: the PD's data identity, for this job only.
    pub identity: String,
}

impl std::fmt::Debug for EnvelopePayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopePayload")
            .field("request_id", &self.request_id)
            .field("pd", &self.pd)
            .field("agent_id", &self.agent_id)
            .field("snapshot", &self.snapshot)
            .field("what", &self.what)
            .field("target", &self.target)
            .field("in_place", &self.in_place)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Which store a restore read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RestoreSite {
    Onsite,
    Dr,
}

impl RestoreSite {
    pub fn name(self) -> &'static str {
        match self {
            RestoreSite::Onsite => "onsite",
            RestoreSite::Dr => "dr",
        }
    }
}

/// What the agent restored, sent as the `detail` of its restore report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestoreReport {
    pub request_id: String,
    pub snapshot: String,
    /// The envelope passed the agent's checks and was recorded as used
    /// (false: refused — another request, expired, replayed, unreadable).
    #[serde(default)]
    pub envelope_used: bool,
    /// `None` when no store could be opened.
    #[serde(default)]
    pub site: Option<RestoreSite>,
    /// Why the on-site store was not used, when the DR store was.
    #[serde(default)]
    pub onsite_error: Option<String>,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// Regular files re-read after the restore and found equal to the
    /// snapshot (every chunk's keyed hash).
    pub verified_files: u64,
    /// Files that differ from the snapshot or could not be re-read.
    #[serde(default)]
    pub verify_failures: Vec<String>,
    /// In-place restores: where the entries that would have been
    /// overwritten were moved, and how many.
    #[serde(default)]
    pub moved_aside: Option<String>,
    #[serde(default)]
    pub moved_aside_count: u64,
    /// A dump piped into a command: its exit status.
    #[serde(default)]
    pub pipe_status: Option<i32>,
    #[serde(default)]
    pub errors: Vec<String>,
}

impl RestoreReport {
    /// Restored, every file verified, nothing went wrong.
    pub fn clean(&self) -> bool {
        self.site.is_some()
            && self.verify_failures.is_empty()
            && self.errors.is_empty()
            && self.pipe_status.is_none_or(|s| s == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_debug_never_shows_the_identity() {
        let p = EnvelopePayload {
            format: ENVELOPE_FORMAT.into(),
            version: 1,
            request_id: "rr-1".into(),
            pd: "DUKCAPIL".into(),
            agent_id: "a".into(),
            snapshot: "ab".into(),
            what: RestoreWhat::Whole,
            target: "/srv/restore".into(),
            in_place: false,
            expires: Utc::now(),
            trust_keys: vec![],
            identity: "AGE-SECRET-KEY-1SECRET".into(),
        };
        assert!(!format!("{p:?}").contains("SECRET-KEY"));
    }

    #[test]
    fn what_is_tagged_and_pipe_is_optional() {
        let w: RestoreWhat =
            serde_json::from_str(r#"{"type":"dump","stream":"siak.dump"}"#).expect("parses");
        assert_eq!(
            w,
            RestoreWhat::Dump {
                stream: "siak.dump".into(),
                pipe: None
            }
        );
        assert_eq!(
            serde_json::to_string(&RestoreWhat::Whole).unwrap(),
            r#"{"type":"whole"}"#
        );
    }

    #[test]
    fn final_states_and_clean_reports() {
        assert!(RestoreState::Expired.is_final());
        assert!(!RestoreState::Approved.is_final());
        let mut r = RestoreReport {
            request_id: "rr-1".into(),
            snapshot: "ab".into(),
            envelope_used: true,
            site: Some(RestoreSite::Dr),
            onsite_error: None,
            files: 1,
            dirs: 0,
            bytes: 1,
            seconds: 0.1,
            verified_files: 1,
            verify_failures: vec![],
            moved_aside: None,
            moved_aside_count: 0,
            pipe_status: Some(0),
            errors: vec![],
        };
        assert!(r.clean());
        r.pipe_status = Some(1);
        assert!(!r.clean());
    }
}
