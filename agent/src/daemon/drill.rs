//! Restore drills on a drill runner (filled in next).

use cadang_proto::agent::{JobReport, Outcome, ReportKind};
use cadang_proto::drill::DrillJob;

use super::ledger::Work;
use super::run::{complete, Daemon};
use super::{runner, DaemonError};

pub(super) async fn drill_work(d: &Daemon, w: &Work, job: &DrillJob) -> Result<(), DaemonError> {
    let now = d.clock.now();
    let report = JobReport {
        report_id: runner::report_id(),
        job_id: w.job_id.clone(),
        kind: ReportKind::Drill {
            drill_id: job.drill_id.clone(),
            result: None,
        },
        started: now,
        finished: now,
        outcome: Outcome::Failed,
        message: "drills are not supported by this agent version yet".into(),
    };
    complete(d, w, report)
}
