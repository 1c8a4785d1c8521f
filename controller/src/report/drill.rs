//! The drill report (laporan uji pemulihan): what a restore drill did,
//! measured against the PD's objectives, and the verdict with reasons.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    /// Unique per report (the drill job id is a good one).
    pub report_id: String,
    pub regency: String,
    pub pd: String,
    pub data_group: String,
    pub custodian: Person,
    pub snapshot: SnapshotRef,
    pub source_host: String,
    /// The store the restore read from (the DR site's name in the policy).
    pub site: String,
    pub files: u64,
    pub bytes: u64,
    pub verification: Verification,
    pub check: Option<CheckResult>,
    pub restore_seconds: u64,
    pub rto_seconds: u64,
    /// Age of the snapshot when the drill started.
    pub recovery_point_age_seconds: u64,
    pub rpo_seconds: u64,
    pub verdict: Verdict,
    pub runner: Runner,
    /// The audit entries (the drill grant's approval and its delivery)
    /// the drill rests on.
    pub approvals: Vec<AuditRef>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// When the report was made; also the PDF's creation date.
    pub generated: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub nip: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub id: String,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub files_checked: u64,
    /// Every file that did not match the snapshot (the renderings list
    /// only the first ones; the JSON keeps all).
    pub mismatches: Vec<Mismatch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    pub path: String,
    /// e.g. "content hash differs", "missing", "size 10 instead of 12".
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    Command,
    PostgresQuery,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub kind: CheckKind,
    /// The command line or the SQL query.
    pub run: String,
    /// What passes: an exit status ("exit 0") or a minimum ("≥ 1000").
    pub expected: String,
    pub got: String,
    pub passed: bool,
    /// The first lines of the output (the drill runner cuts it).
    pub output_excerpt: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runner {
    pub agent_id: String,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRef {
    pub seq: u64,
    /// The entry's hash, hex.
    pub hash: String,
    pub action: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    pub reasons: Vec<FailReason>,
}

/// Why a drill failed. Codes, not sentences: the renderings word them in
/// the reader's language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum FailReason {
    /// Files that differ from the snapshot.
    Verification {
        mismatches: u64,
    },
    CheckFailed,
    OverRto {
        seconds: u64,
        rto_seconds: u64,
    },
    OverRpo {
        age_seconds: u64,
        rpo_seconds: u64,
    },
    /// No snapshot within the RPO to drill with.
    NoSnapshot,
    /// The DR copy is damaged (a pack missing or corrupt).
    DrDamaged {
        detail: String,
    },
    /// The restore itself did not complete.
    RestoreFailed {
        detail: String,
    },
}

impl DrillReport {
    /// The verdict from the measured facts, plus failures only the caller
    /// knows (a damaged DR copy, a restore that did not complete).
    pub fn judge(&self, mut extra: Vec<FailReason>) -> Verdict {
        let mut reasons = Vec::new();
        let mismatches = self.verification.mismatches.len() as u64;
        if mismatches > 0 {
            reasons.push(FailReason::Verification { mismatches });
        }
        if self.check.as_ref().is_some_and(|c| !c.passed) {
            reasons.push(FailReason::CheckFailed);
        }
        if self.restore_seconds > self.rto_seconds {
            reasons.push(FailReason::OverRto {
                seconds: self.restore_seconds,
                rto_seconds: self.rto_seconds,
            });
        }
        if self.recovery_point_age_seconds > self.rpo_seconds {
            reasons.push(FailReason::OverRpo {
                age_seconds: self.recovery_point_age_seconds,
                rpo_seconds: self.rpo_seconds,
            });
        }
        reasons.append(&mut extra);
        Verdict {
            passed: reasons.is_empty(),
            reasons,
        }
    }

    /// Sets [`Self::verdict`] from [`Self::judge`].
    pub fn with_verdict(mut self, extra: Vec<FailReason>) -> Self {
        self.verdict = self.judge(extra);
        self
    }
}
