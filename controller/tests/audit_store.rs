//! The redb-backed log in the controller's state file: survives reopening,
//! and tampering with the table directly is found at the first bad seq.

mod audit_common;

use std::sync::Arc;

use audit_common::*;
use cadang_controller::audit::store::{AUDIT_CHECKPOINTS, AUDIT_ENTRIES};
use cadang_controller::audit::{
    AuditEntry, AuditLog, Auditor, ChainProblem, NewEntry, RedbAuditLog,
};
use cadang_controller::state::State;

fn auditor(state: &Arc<State>) -> Auditor<RedbAuditLog> {
    Auditor::new(RedbAuditLog::open(state.clone()).unwrap(), key(), 10)
}

fn filled() -> (tempfile::TempDir, Arc<State>) {
    let tmp = tempfile::tempdir().unwrap();
    let state = State::open(&tmp.path().join("state.redb")).unwrap();
    fill(&auditor(&state));
    (tmp, state)
}

fn get(state: &State, seq: u64) -> AuditEntry {
    state
        .read(|txn| {
            let t = txn.open_table(AUDIT_ENTRIES)?;
            let v = t.get(seq)?.unwrap();
            Ok(serde_json::from_slice(v.value()).unwrap())
        })
        .unwrap()
}

fn put(state: &State, seq: u64, e: &AuditEntry) {
    state
        .write(|txn| {
            let mut t = txn.open_table(AUDIT_ENTRIES)?;
            t.insert(seq, serde_json::to_vec(e).unwrap().as_slice())?;
            Ok(())
        })
        .unwrap();
}

fn remove(state: &State, seq: u64) {
    state
        .write(|txn| {
            let mut t = txn.open_table(AUDIT_ENTRIES)?;
            t.remove(seq)?;
            Ok(())
        })
        .unwrap();
}

fn first_bad(state: &Arc<State>) -> (u64, ChainProblem) {
    let e = auditor(state).verify().unwrap_err();
    match e {
        cadang_controller::audit::AuditError::Chain(c) => (c.seq, c.problem),
        other => panic!("expected a chain error: {other}"),
    }
}

#[test]
fn the_log_survives_reopening_and_continues_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state.redb");
    {
        let state = State::open(&path).unwrap();
        fill(&auditor(&state));
    }
    let state = State::open(&path).unwrap();
    let a = auditor(&state);
    let e = a
        .record(
            NewEntry::new("controller", "report.write", "DISDUKCAPIL", "ok"),
            t(40),
        )
        .unwrap();
    assert_eq!(e.seq, 26);
    assert_eq!(e.prev_hash, get(&state, 25).hash);
    let r = a.verify().unwrap();
    assert_eq!((r.last_seq, r.unanchored), (26, 1));
}

#[test]
fn an_entry_edited_in_the_state_is_found() {
    let (_tmp, state) = filled();
    let mut e = get(&state, 9);
    e.subject = "BAPPEDA/restore/9".into();
    put(&state, 9, &e);
    assert_eq!(first_bad(&state), (9, ChainProblem::Changed));
}

#[test]
fn an_entry_deleted_from_the_state_is_found() {
    let (_tmp, state) = filled();
    remove(&state, 12);
    let (seq, p) = first_bad(&state);
    assert_eq!(seq, 12);
    assert!(
        matches!(
            p,
            ChainProblem::Missing {
                expected: 12,
                found: 13
            }
        ),
        "{p}"
    );
}

#[test]
fn entries_swapped_in_the_state_are_found() {
    // The table is keyed by seq: swapping two records' contents is how
    // entries are reordered there.
    let (_tmp, state) = filled();
    let (a, b) = (get(&state, 4), get(&state, 5));
    put(&state, 4, &b);
    put(&state, 5, &a);
    let (seq, p) = first_bad(&state);
    assert_eq!(seq, 4);
    assert!(
        matches!(
            p,
            ChainProblem::Reordered {
                expected: 4,
                found: 5
            }
        ),
        "{p}"
    );
}

#[test]
fn entries_truncated_from_the_state_are_found() {
    let (_tmp, state) = filled();
    for seq in 21..=25 {
        remove(&state, seq);
    }
    let (seq, p) = first_bad(&state);
    assert_eq!(seq, 21);
    assert!(
        matches!(
            p,
            ChainProblem::Truncated {
                last: 20,
                checkpoint: 25
            }
        ),
        "{p}"
    );
}

#[test]
fn a_checkpoint_replaced_in_the_state_by_another_key_is_refused() {
    let (_tmp, state) = filled();
    let forged = cadang_controller::audit::Checkpoint::sign(&get(&state, 10), t(50), &other_key());
    state
        .write(|txn| {
            let mut t = txn.open_table(AUDIT_CHECKPOINTS)?;
            t.insert(10u64, serde_json::to_vec(&forged).unwrap().as_slice())?;
            Ok(())
        })
        .unwrap();
    let (seq, p) = first_bad(&state);
    assert_eq!(seq, 10);
    assert!(matches!(p, ChainProblem::BadCheckpoint { .. }), "{p}");
}

#[test]
fn the_state_and_its_segments_agree() {
    let (_tmp, state) = filled();
    let a = auditor(&state);
    let segs = a.segments_after(0).unwrap();
    let entries: Vec<AuditEntry> = segs.iter().flat_map(|s| s.entries.clone()).collect();
    assert_eq!(entries, a.log().entries(1, u64::MAX).unwrap());
}

#[test]
fn a_shared_dyn_log_records_through_the_auditor() {
    let (_tmp, state) = filled();
    let shared: Arc<dyn AuditLog> = Arc::new(RedbAuditLog::open(state.clone()).unwrap());
    let a = Auditor::new(shared.clone(), key(), 10);
    let e = a
        .record(
            NewEntry::new("controller", "drill.report", "DISDUKCAPIL", "ok"),
            t(60),
        )
        .unwrap();
    assert_eq!(e.seq, 26);
    assert_eq!(shared.last().unwrap().unwrap(), e);
    let seg = a.checkpoint(t(61)).unwrap().unwrap();
    assert_eq!(seg.seq, 26);
    let segs = a.segments_after(25).unwrap();
    assert_eq!(segs[0].store_path(), "cadang-audit/26-26.json");
}
