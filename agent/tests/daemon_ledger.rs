//! The slot and job ledger: a restart neither repeats nor skips work.

use cadang_agent::daemon::ledger::{Admission, Ledger, Work, WorkKind};
use cadang_proto::agent::{slot_key, BackupStats, JobReport, Outcome, ReportKind};
use chrono::{DateTime, Utc};

fn now() -> DateTime<Utc> {
    "2026-12-02T18:00:00Z".parse().unwrap()
}

fn local(slot: i64) -> Work {
    Work {
        key: slot_key("srv", "files", slot),
        job_id: None,
        kind: WorkKind::Backup {
            source: "files".into(),
            slot: Some(slot),
        },
        not_after: None,
    }
}

fn dispatched(id: &str, slot: Option<i64>) -> Work {
    Work {
        key: format!("job:{id}"),
        job_id: Some(id.into()),
        kind: WorkKind::Backup {
            source: "files".into(),
            slot,
        },
        not_after: None,
    }
}

fn report(id: &str, outcome: Outcome, slot: Option<i64>) -> JobReport {
    JobReport {
        report_id: id.into(),
        job_id: None,
        kind: ReportKind::Backup {
            source: "files".into(),
            slot,
            snapshot: Some("s".into()),
            stats: BackupStats::default(),
            signals: None,
        },
        started: now(),
        finished: now(),
        outcome,
        message: String::new(),
    }
}

#[test]
fn a_slot_done_locally_is_answered_with_its_report_when_dispatched_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.json");
    let mut l = Ledger::open(&path, "srv", now()).unwrap();
    let w = local(100);
    assert_eq!(l.admit(&w), Admission::Run);
    l.begin(&w).unwrap();
    assert!(l.slot_known("files", 100));
    let r = report("r1", Outcome::Succeeded, Some(100));
    l.finish(&w, &r).unwrap();
    l.mark_spooled(&w.key).unwrap();
    drop(l);
    let mut l = Ledger::open(&path, "srv", now()).unwrap();
    let job = dispatched("j9", Some(100));
    assert_eq!(l.admit(&job), Admission::Resend(Box::new(r.clone())));
    l.alias(&job, &r).unwrap();
    assert_eq!(l.admit(&job), Admission::Resend(Box::new(r.clone())));
    // Another slot of the same source still runs.
    assert_eq!(l.admit(&dispatched("j10", Some(200))), Admission::Run);
    assert!(l.pending().is_empty());
}

#[test]
fn work_cut_off_by_a_crash_is_pending_after_restart_and_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.json");
    let mut l = Ledger::open(&path, "srv", now()).unwrap();
    let job = dispatched("j1", None);
    l.begin(&job).unwrap();
    drop(l); // kill -9 mid-backup
    let mut l = Ledger::open(&path, "srv", now()).unwrap();
    assert_eq!(l.pending(), vec![job.clone()]);
    assert_eq!(l.admit(&job), Admission::Run);
    l.finish(&job, &report("r1", Outcome::Succeeded, None))
        .unwrap();
    // The report may not have reached the spool: it is offered again.
    assert_eq!(l.unspooled().len(), 1);
    l.mark_spooled(&job.key).unwrap();
    assert!(l.unspooled().is_empty());
    drop(l);
    let l = Ledger::open(&path, "srv", now()).unwrap();
    assert!(l.pending().is_empty(), "not run a second time");
    assert!(matches!(l.admit(&job), Admission::Resend(_)));
}

#[test]
fn interrupted_work_stays_pending_and_a_failed_slot_may_be_retried_by_the_controller() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.json");
    let mut l = Ledger::open(&path, "srv", now()).unwrap();
    let w = local(300);
    l.begin(&w).unwrap();
    l.finish(&w, &report("r1", Outcome::Interrupted, Some(300)))
        .unwrap();
    assert_eq!(l.pending(), vec![w.clone()], "retried after the restart");
    l.finish(&w, &report("r2", Outcome::Failed, Some(300)))
        .unwrap();
    assert!(l.pending().is_empty());
    assert!(l.slot_known("files", 300), "not re-run locally");
    assert_eq!(
        l.admit(&dispatched("j2", Some(300))),
        Admission::Run,
        "the controller's retry runs"
    );
}

#[test]
fn since_is_fixed_at_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.json");
    let first = Ledger::open(&path, "srv", now()).unwrap().since();
    let later = now() + chrono::Duration::days(3);
    assert_eq!(Ledger::open(&path, "srv", later).unwrap().since(), first);
}
