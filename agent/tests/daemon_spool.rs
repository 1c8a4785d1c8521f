//! The report spool: order, durability across reopen, acks, bounds.

use cadang_agent::daemon::spool::Spool;
use cadang_proto::agent::{BackupStats, JobReport, Outcome, ReportKind};

fn report(n: u32, outcome: Outcome) -> JobReport {
    let t = chrono::DateTime::from_timestamp(1_780_000_000 + i64::from(n), 0).unwrap();
    JobReport {
        report_id: format!("r{n}"),
        job_id: None,
        kind: ReportKind::Backup {
            source: "files".into(),
            slot: Some(i64::from(n)),
            snapshot: None,
            stats: BackupStats::default(),
            signals: None,
        },
        started: t,
        finished: t,
        outcome,
        message: String::new(),
    }
}

fn ids(s: &Spool) -> Vec<String> {
    s.head(usize::MAX)
        .into_iter()
        .map(|r| r.report_id)
        .collect()
}

#[test]
fn reports_come_out_in_the_order_written_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.jsonl");
    let mut s = Spool::open(&path, 100, 1 << 20).unwrap();
    for n in 0..5 {
        s.append(report(n, Outcome::Succeeded)).unwrap();
    }
    s.append(report(2, Outcome::Succeeded)).unwrap(); // same id: not twice
    assert_eq!(ids(&s), ["r0", "r1", "r2", "r3", "r4"]);
    assert_eq!(s.head(2).len(), 2);
    drop(s);
    let s = Spool::open(&path, 100, 1 << 20).unwrap();
    assert_eq!(ids(&s), ["r0", "r1", "r2", "r3", "r4"]);
}

#[test]
fn only_acknowledged_reports_leave_and_a_lost_ack_keeps_them_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.jsonl");
    let mut s = Spool::open(&path, 100, 1 << 20).unwrap();
    for n in 0..4 {
        s.append(report(n, Outcome::Succeeded)).unwrap();
    }
    // Delivered r0..r1, ack lost, agent restarts: both are still there.
    drop(s);
    let mut s = Spool::open(&path, 100, 1 << 20).unwrap();
    assert_eq!(ids(&s), ["r0", "r1", "r2", "r3"]);
    assert_eq!(
        s.remove_acked(&["r1".into(), "r0".into(), "unknown".into()])
            .unwrap(),
        2
    );
    drop(s);
    let s = Spool::open(&path, 100, 1 << 20).unwrap();
    assert_eq!(ids(&s), ["r2", "r3"]);
}

#[test]
fn a_torn_last_line_is_dropped_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.jsonl");
    let mut s = Spool::open(&path, 100, 1 << 20).unwrap();
    s.append(report(0, Outcome::Succeeded)).unwrap();
    s.append(report(1, Outcome::Failed)).unwrap();
    drop(s);
    let mut data = std::fs::read(&path).unwrap();
    data.extend_from_slice(br#"{"report_id":"r2","kind":{"ty"#);
    std::fs::write(&path, data).unwrap();
    let s = Spool::open(&path, 100, 1 << 20).unwrap();
    assert_eq!(ids(&s), ["r0", "r1"]);
    let s = Spool::open(&path, 100, 1 << 20).unwrap();
    assert_eq!(ids(&s), ["r0", "r1"], "the file was repaired");
}

#[test]
fn a_full_spool_drops_the_oldest_successful_reports_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.jsonl");
    let mut s = Spool::open(&path, 4, 1 << 20).unwrap();
    s.append(report(0, Outcome::Failed)).unwrap();
    s.append(report(1, Outcome::Succeeded)).unwrap();
    s.append(report(2, Outcome::Partial)).unwrap();
    s.append(report(3, Outcome::Succeeded)).unwrap();
    s.append(report(4, Outcome::Succeeded)).unwrap();
    assert_eq!(ids(&s), ["r0", "r2", "r3", "r4"]);
    s.append(report(5, Outcome::Failed)).unwrap();
    assert_eq!(ids(&s), ["r0", "r2", "r4", "r5"]);
    s.append(report(6, Outcome::Failed)).unwrap();
    assert_eq!(ids(&s), ["r0", "r2", "r5", "r6"]);
    // Only failures left: then the oldest of any kind goes.
    s.append(report(7, Outcome::Failed)).unwrap();
    assert_eq!(ids(&s), ["r2", "r5", "r6", "r7"]);
    drop(s);
    let s = Spool::open(&path, 4, 1 << 20).unwrap();
    assert_eq!(ids(&s), ["r2", "r5", "r6", "r7"]);
}

#[test]
fn the_byte_bound_holds_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.jsonl");
    let mut s = Spool::open(&path, 10_000, 2048).unwrap();
    for n in 0..100 {
        s.append(report(n, Outcome::Succeeded)).unwrap();
    }
    assert!(s.bytes() <= 2048, "{} bytes", s.bytes());
    assert!(s.len() >= 2);
    assert_eq!(ids(&s).last().unwrap(), "r99", "the newest is kept");
    assert!(std::fs::metadata(&path).unwrap().len() <= 2048);
}
