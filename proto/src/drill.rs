//! Restore drills: the custodian's drill grant, the drill job a drill runner
//! gets, and what the runner reports back.
//!
//! A **drill grant** is an envelope sealed on the custodian's machine to one
//! drill runner's age recipient. It holds the PD's identity and says what it
//! may be used for: drills (scope [`DRILL_SCOPE`]) of one PD, by one runner,
//! until `not_after`. The controller stores and forwards only the sealed
//! envelope; it never sees the payload.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use base64::Engine as _;

/// The only scope a drill grant may carry.
pub const DRILL_SCOPE: &str = "drill";
/// A grant is valid for at most this many days (a year).
pub const MAX_GRANT_DAYS: i64 = 365;

/// `GET /api/v1/pds/{pd}/drill-grant/material?runner=HOST`: what the
/// custodian's CLI needs to seal a grant. The wrapped identity is the
/// repository's `keys/identity.age`, useless without the passphrase.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantMaterial {
    pub pd: String,
    pub runner: String,
    pub runner_agent_id: String,
    /// The runner's own age recipient (`age1...`): the envelope is sealed to it.
    pub runner_recipient: String,
    /// `keys/identity.age` of the PD's repository, base64.
    pub wrapped_identity: String,
    /// The latest `not_after` the controller accepts (now + a year).
    pub max_not_after: DateTime<Utc>,
    /// The controller's certification key (hex): the PD's enrolled agents'
    /// keys are certified by it, so a drill trusts their snapshots.
    #[serde(default)]
    pub controller_key: String,
}

/// Sealed inside the envelope; never seen by the controller.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct GrantPayload {
    pub pd: String,
    /// The runner's host name.
    pub runner: String,
    /// Always [`DRILL_SCOPE`].
    pub scope: String,
    pub not_after: DateTime<Utc>,
    /// `AGE-SECRET-KEY-...` of the PD.
    pub identity: String,
    /// Keys (hex) the custodian trusts to certify the snapshot's signer,
    /// besides the custodian's own key derived from the identity: the
    /// trust anchors come from the grant, never from the store.
    #[serde(default)]
    pub trust_keys: Vec<String>,
}

impl std::fmt::Debug for GrantPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantPayload")
            .field("pd", &self.pd)
            .field("runner", &self.runner)
            .field("scope", &self.scope)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Why a grant payload may not be used for a drill.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantRefusal {
    #[error("the grant's scope is {0:?}, not \"drill\"; the custodian must issue a drill grant (`cadang drill grant`)")]
    Scope(String),
    #[error("the grant is for PD {found}, this drill is for PD {expected}; the custodian of {expected} must grant drills")]
    Pd { expected: String, found: String },
    #[error("the grant is for drill runner {found}, this runner is {expected}; the custodian must grant drills to this runner")]
    Runner { expected: String, found: String },
    #[error("the grant expired at {0}; the custodian renews it with `cadang drill grant`")]
    Expired(DateTime<Utc>),
}

impl GrantPayload {
    /// Whether this payload allows a drill of `pd` on `runner` at `now`.
    pub fn allows(&self, pd: &str, runner: &str, now: DateTime<Utc>) -> Result<(), GrantRefusal> {
        if self.scope != DRILL_SCOPE {
            return Err(GrantRefusal::Scope(self.scope.clone()));
        }
        if self.pd != pd {
            return Err(GrantRefusal::Pd {
                expected: pd.into(),
                found: self.pd.clone(),
            });
        }
        if self.runner != runner {
            return Err(GrantRefusal::Runner {
                expected: runner.into(),
                found: self.runner.clone(),
            });
        }
        if now > self.not_after {
            return Err(GrantRefusal::Expired(self.not_after));
        }
        Ok(())
    }
}

/// `POST /api/v1/pds/{pd}/drill-grant`: only the sealed envelope travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantUpload {
    pub runner: String,
    pub not_after: DateTime<Utc>,
    /// age ciphertext to the runner's recipient, ASCII-armored
    /// (`-----BEGIN AGE ENCRYPTED FILE-----`).
    pub envelope: String,
}

/// A stored grant as the API shows it (never the envelope).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantView {
    pub id: String,
    pub pd: String,
    pub runner: String,
    pub runner_agent_id: String,
    pub not_after: DateTime<Utc>,
    pub granted_by: String,
    pub granted: DateTime<Utc>,
    #[serde(default)]
    pub revoked: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoked_by: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantList {
    pub grants: Vec<GrantView>,
}

/// The check a drill runs on the restored data (from the PD's policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DrillCheckSpec {
    /// Run in the sandbox; `{file}` is replaced by the restored file of the
    /// snapshot's (first) dump stream, `{dir}` by the restore directory.
    Command { command: String },
    /// Restore dump `stream` into a throwaway PostgreSQL cluster and run
    /// `query`; its single number must be at least `min`.
    Postgres {
        stream: String,
        query: String,
        min: i64,
    },
}

/// What a drill job carries (inside `JobKind::Drill`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrillJob {
    pub drill_id: String,
    pub pd: String,
    /// The grant envelope (armored age ciphertext to this runner).
    pub envelope: String,
    /// The snapshot the controller chose (full hex id) and its time.
    pub snapshot: String,
    pub snapshot_time: DateTime<Utc>,
    /// The DR store's name (the runner reads it with its own read-only
    /// credentials from enrollment).
    pub store: String,
    #[serde(default)]
    pub check: Option<DrillCheckSpec>,
    pub rto_seconds: u64,
}

/// The result of the check, as the runner saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckOutcome {
    /// `command` or `postgres-query`.
    pub kind: String,
    /// The command line or the SQL query.
    pub run: String,
    /// `exit 0` or `≥ MIN`.
    pub expected: String,
    pub got: String,
    pub passed: bool,
    /// The first lines of the output.
    pub output_excerpt: String,
}

/// Why a drill could not be completed (beyond what the measurements show).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum DrillFailure {
    /// The grant was refused (expired, other PD, other runner) or unreadable.
    Grant { detail: String },
    /// The DR copy is damaged: a pack missing, unreadable or corrupt.
    DrDamaged { detail: String },
    /// The restore did not complete for another reason.
    RestoreFailed { detail: String },
}

/// What the runner reports (inside `ReportKind::Drill`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrillResult {
    pub files: u64,
    pub bytes: u64,
    pub files_checked: u64,
    /// `(path, problem)` of every file that did not match the snapshot.
    #[serde(default)]
    pub mismatches: Vec<(String, String)>,
    #[serde(default)]
    pub check: Option<CheckOutcome>,
    pub restore_millis: u64,
    pub verify_millis: u64,
    pub check_millis: u64,
    #[serde(default)]
    pub failure: Option<DrillFailure>,
}

impl DrillResult {
    /// Restore + verify + check, whole seconds rounded up (what the RTO
    /// is measured against: a drill of 0.2 s counts as 1 s, never 0).
    pub fn total_seconds(&self) -> u64 {
        (self.restore_millis + self.verify_millis + self.check_millis).div_ceil(1000)
    }
}

/// A drill as `cadang drill list|show` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrillView {
    pub id: String,
    pub pd: String,
    pub runner: String,
    pub snapshot: Option<String>,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    /// `queued`, `passed`, `failed`.
    pub state: String,
    /// Why it failed, in words.
    #[serde(default)]
    pub reasons: Vec<String>,
    pub restore_seconds: Option<u64>,
    pub rto_seconds: u64,
    /// Whether a signed report exists (`GET /api/v1/drills/{id}/report.json`).
    pub has_report: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrillList {
    pub drills: Vec<DrillView>,
}

/// Binary bytes (the wrapped identity) as text for JSON bodies.
pub fn encode_envelope(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The inverse of [`encode_envelope`].
pub fn decode_envelope(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("the envelope is not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> GrantPayload {
        GrantPayload {
            pd: "DUKCAPIL".into(),
            runner: "drc-sandbox".into(),
            scope: DRILL_SCOPE.into(),
            not_after: "2027-01-01T00:00:00Z".parse().unwrap(),
            identity: "AGE-SECRET-KEY-1SECRET".into(),
            trust_keys: vec![],
        }
    }

    #[test]
    fn a_grant_allows_only_its_pd_runner_scope_and_period() {
        let p = payload();
        let now: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        assert_eq!(p.allows("DUKCAPIL", "drc-sandbox", now), Ok(()));
        assert!(matches!(
            p.allows("DINKES", "drc-sandbox", now),
            Err(GrantRefusal::Pd { .. })
        ));
        assert!(matches!(
            p.allows("DUKCAPIL", "other", now),
            Err(GrantRefusal::Runner { .. })
        ));
        let late: DateTime<Utc> = "2027-01-02T00:00:00Z".parse().unwrap();
        assert!(matches!(
            p.allows("DUKCAPIL", "drc-sandbox", late),
            Err(GrantRefusal::Expired(_))
        ));
        let restore = GrantPayload {
            scope: "restore".into(),
            ..payload()
        };
        assert!(matches!(
            restore.allows("DUKCAPIL", "drc-sandbox", now),
            Err(GrantRefusal::Scope(_))
        ));
    }

    #[test]
    fn the_identity_stays_out_of_debug_output() {
        assert!(!format!("{:?}", payload()).contains("SECRET"));
    }

    #[test]
    fn drill_time_rounds_up_to_whole_seconds() {
        let r = DrillResult {
            restore_millis: 150,
            verify_millis: 20,
            check_millis: 30,
            ..Default::default()
        };
        assert_eq!(r.total_seconds(), 1);
        let r = DrillResult {
            restore_millis: 2000,
            ..Default::default()
        };
        assert_eq!(r.total_seconds(), 2);
    }

    #[test]
    fn envelopes_round_trip_as_text() {
        let bytes = b"age-encryption.org/v1\n\x00\x01";
        assert_eq!(decode_envelope(&encode_envelope(bytes)).unwrap(), bytes);
        assert!(decode_envelope("not base64!").is_err());
    }
}
