//! The compliance summary (ringkasan kepatuhan): per PD and for the
//! regency over a period, for the periodic reports (laporan berkala).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceSummary {
    pub summary_id: String,
    pub regency: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub pds: Vec<PdFigures>,
    pub generated: DateTime<Utc>,
}

/// One PD's figures over the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PdFigures {
    pub pd: String,
    pub backups_scheduled: u64,
    pub backups_done: u64,
    /// Days (or checks) on which the newest snapshot was within the RPO,
    /// out of `rpo_checks`.
    pub rpo_met: u64,
    pub rpo_checks: u64,
    pub drills_run: u64,
    pub drills_passed: u64,
    pub restores_requested: u64,
    pub restores_approved: u64,
    pub restores_rejected: u64,
}

impl ComplianceSummary {
    /// The regency's figures: the sum over its PDs.
    pub fn regency_total(&self) -> PdFigures {
        let mut total = PdFigures {
            pd: self.regency.clone(),
            ..PdFigures::default()
        };
        for p in &self.pds {
            total.backups_scheduled += p.backups_scheduled;
            total.backups_done += p.backups_done;
            total.rpo_met += p.rpo_met;
            total.rpo_checks += p.rpo_checks;
            total.drills_run += p.drills_run;
            total.drills_passed += p.drills_passed;
            total.restores_requested += p.restores_requested;
            total.restores_approved += p.restores_approved;
            total.restores_rejected += p.restores_rejected;
        }
        total
    }
}

/// `part` of `whole` as a whole percentage for people; "–" when nothing
/// was due (no division by zero, no misleading 100 %).
pub fn percent(part: u64, whole: u64) -> String {
    match part.saturating_mul(100).checked_div(whole) {
        Some(p) => format!("{p} %"),
        None => "–".into(),
    }
}
