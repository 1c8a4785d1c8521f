//! The hash chain and checkpoints: each kind of tampering is found, at
//! the first bad sequence number; in memory and in segment files.

mod audit_common;

use audit_common::*;
use cadang_controller::audit::segment::{self, Segment};
use cadang_controller::audit::{
    verify_chain, AuditEntry, AuditError, AuditLog, Auditor, ChainError, ChainProblem, Checkpoint,
    MemoryAuditLog,
};

fn log() -> (Vec<AuditEntry>, Vec<Checkpoint>) {
    let a = Auditor::new(MemoryAuditLog::default(), key(), 10);
    fill(&a);
    (
        a.log().entries(1, u64::MAX).unwrap(),
        a.log().checkpoints().unwrap(),
    )
}

fn check(entries: &[AuditEntry], cps: &[Checkpoint]) -> Result<(), ChainError> {
    verify_chain(entries, cps, &key().public()).map(|_| ())
}

#[test]
fn an_intact_log_verifies_and_says_what_it_holds() {
    let (e, c) = log();
    let r = verify_chain(&e, &c, &key().public()).unwrap();
    assert_eq!(
        (r.entries, r.last_seq, r.checkpoints, r.last_checkpoint),
        (25, 25, 3, Some(25))
    );
    assert_eq!(r.unanchored, 0);
    assert_eq!(
        c.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![10, 20, 25]
    );
}

#[test]
fn an_edited_entry_is_found_at_its_seq() {
    let (mut e, c) = log();
    e[6].outcome = "refused".into();
    let err = check(&e, &c).unwrap_err();
    assert_eq!((err.seq, err.problem), (7, ChainProblem::Changed));
}

#[test]
fn a_removed_entry_is_found_at_its_seq() {
    let (mut e, c) = log();
    e.remove(6);
    let err = check(&e, &c).unwrap_err();
    assert_eq!(err.seq, 7);
    assert!(
        matches!(
            err.problem,
            ChainProblem::Missing {
                expected: 7,
                found: 8
            }
        ),
        "{err}"
    );
}

#[test]
fn reordered_entries_are_found_at_the_first_moved_seq() {
    let (mut e, c) = log();
    e.swap(6, 7);
    let err = check(&e, &c).unwrap_err();
    assert_eq!(err.seq, 7);
    assert!(
        matches!(err.problem, ChainProblem::Reordered { .. }),
        "{err}"
    );
}

#[test]
fn renumbered_entries_after_a_removal_break_the_chain() {
    let (mut e, c) = log();
    e.remove(6);
    for x in e.iter_mut().skip(6) {
        x.seq -= 1;
    }
    let err = check(&e, &c).unwrap_err();
    assert_eq!((err.seq, err.problem), (7, ChainProblem::Changed));
}

#[test]
fn entries_cut_off_the_end_are_found_against_the_last_checkpoint() {
    let (mut e, c) = log();
    e.truncate(22);
    let err = check(&e, &c).unwrap_err();
    assert_eq!(err.seq, 23);
    assert!(
        matches!(
            err.problem,
            ChainProblem::Truncated {
                last: 22,
                checkpoint: 25
            }
        ),
        "{err}"
    );
}

#[test]
fn a_rewritten_tail_with_recomputed_hashes_is_found_by_the_checkpoint() {
    let (mut e, c) = log();
    e[12].outcome = "refused".into();
    for i in 12..e.len() {
        if i > 0 {
            e[i].prev_hash = e[i - 1].hash.clone();
        }
        e[i].hash = e[i].compute_hash();
    }
    let err = check(&e, &c).unwrap_err();
    // Entry 13 was changed; the first checkpoint that no longer matches is
    // at 20, so all the log can say is "after 10, up to 20".
    assert_eq!(err.seq, 11);
    assert!(
        matches!(
            err.problem,
            ChainProblem::Rewritten {
                from: 11,
                checkpoint: 20
            }
        ),
        "{err}"
    );
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let (e, mut c) = log();
    c[1] = Checkpoint::sign(&e[19], t(30), &other_key());
    let err = check(&e, &c).unwrap_err();
    assert_eq!(err.seq, 20);
    assert!(
        matches!(
            err.problem,
            ChainProblem::BadCheckpoint { checkpoint: 20, .. }
        ),
        "{err}"
    );
    // And the whole log checked with the wrong key.
    let (e, c) = log();
    assert!(verify_chain(&e, &c, &other_key().public()).is_err());
}

#[test]
fn entries_after_the_last_checkpoint_are_reported_unanchored() {
    let a = Auditor::new(MemoryAuditLog::default(), key(), 10);
    for i in 1..=13 {
        a.record(
            cadang_controller::audit::NewEntry::new("controller", "backup", "X", "ok"),
            t(i),
        )
        .unwrap();
    }
    let r = a.verify().unwrap();
    assert_eq!((r.last_checkpoint, r.unanchored), (Some(10), 3));
}

// --- segment files ---------------------------------------------------------

fn segments_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let a = Auditor::new(MemoryAuditLog::default(), key(), 10);
    fill(&a);
    let segs = a.segments_after(0).unwrap();
    let names: Vec<String> = segs.iter().map(Segment::file_name).collect();
    assert_eq!(names, vec!["1-10.json", "11-20.json", "21-25.json"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    segment::write_dir(&dir, &segs).unwrap();
    (tmp, dir)
}

fn edit_segment(dir: &std::path::Path, name: &str, f: impl FnOnce(&mut Segment)) {
    let path = dir.join(name);
    let mut s = Segment::parse(name, &std::fs::read(&path).unwrap()).unwrap();
    f(&mut s);
    std::fs::write(&path, s.to_bytes()).unwrap();
}

fn first_bad(dir: &std::path::Path) -> (u64, ChainProblem) {
    match segment::verify_dir(dir, &key().public()) {
        Err(AuditError::Chain(e)) => (e.seq, e.problem),
        other => panic!("expected a chain error, got {other:?}"),
    }
}

#[test]
fn segment_files_verify_and_segments_after_gives_only_new_ones() {
    let (_tmp, dir) = segments_dir();
    let r = segment::verify_dir(&dir, &key().public()).unwrap();
    assert_eq!((r.entries, r.checkpoints), (25, 3));
    let a = Auditor::new(MemoryAuditLog::default(), key(), 10);
    fill(&a);
    let later = a.segments_after(20).unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].file_name(), "21-25.json");
}

#[test]
fn an_edited_entry_in_a_segment_file_is_found() {
    let (_tmp, dir) = segments_dir();
    edit_segment(&dir, "11-20.json", |s| {
        s.entries[3].actor = "controller".into()
    });
    assert_eq!(first_bad(&dir), (14, ChainProblem::Changed));
}

#[test]
fn a_deleted_entry_in_a_segment_file_is_found() {
    let (_tmp, dir) = segments_dir();
    edit_segment(&dir, "11-20.json", |s| {
        s.entries.remove(4);
    });
    let (seq, problem) = first_bad(&dir);
    assert_eq!(seq, 15);
    assert!(matches!(problem, ChainProblem::Missing { .. }), "{problem}");
}

#[test]
fn a_deleted_segment_file_is_found() {
    let (_tmp, dir) = segments_dir();
    std::fs::remove_file(dir.join("11-20.json")).unwrap();
    let (seq, problem) = first_bad(&dir);
    assert_eq!(seq, 11);
    assert!(
        matches!(
            problem,
            ChainProblem::Missing {
                expected: 11,
                found: 21
            }
        ),
        "{problem}"
    );
}

#[test]
fn reordered_entries_in_a_segment_file_are_found() {
    let (_tmp, dir) = segments_dir();
    edit_segment(&dir, "1-10.json", |s| s.entries.swap(2, 5));
    let (seq, problem) = first_bad(&dir);
    assert_eq!(seq, 3);
    assert!(
        matches!(problem, ChainProblem::Reordered { .. }),
        "{problem}"
    );
}

#[test]
fn entries_cut_off_the_last_segment_file_are_found() {
    let (_tmp, dir) = segments_dir();
    edit_segment(&dir, "21-25.json", |s| s.entries.truncate(2));
    let (seq, problem) = first_bad(&dir);
    assert_eq!(seq, 23);
    assert!(
        matches!(
            problem,
            ChainProblem::Truncated {
                last: 22,
                checkpoint: 25
            }
        ),
        "{problem}"
    );
}

#[test]
fn a_segment_checkpoint_signed_by_another_key_is_refused() {
    let (_tmp, dir) = segments_dir();
    edit_segment(&dir, "11-20.json", |s| {
        let last = s.entries.last().unwrap().clone();
        s.checkpoint = Checkpoint::sign(&last, s.checkpoint.time, &other_key());
    });
    let (seq, problem) = first_bad(&dir);
    assert_eq!(seq, 20);
    assert!(
        matches!(problem, ChainProblem::BadCheckpoint { .. }),
        "{problem}"
    );
}

#[test]
fn a_renamed_or_garbled_segment_file_is_an_error_naming_it() {
    let (_tmp, dir) = segments_dir();
    std::fs::rename(dir.join("1-10.json"), dir.join("1-9.json")).unwrap();
    let err = segment::verify_dir(&dir, &key().public()).unwrap_err();
    assert!(err.to_string().contains("1-9.json"), "{err}");
    std::fs::write(dir.join("1-9.json"), b"{ not json").unwrap();
    assert!(segment::verify_dir(&dir, &key().public()).is_err());
}
