//! Store faults injected into the real binary (`CADANG_FAULTS`, the
//! test-only plan read where every store is opened): a backup whose pack or
//! snapshot write fails ends with an error and leaves nothing a later run
//! trusts — no snapshot, no lock, a clean `check --read-data` — and the next
//! backup completes; transient failures are ridden out by the retry layer.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

const MIB: usize = 1024 * 1024;

fn source(t: &TestRepo) -> PathBuf {
    let src = t.path("src");
    fs::create_dir_all(src.join("arsip")).unwrap();
    fs::write(src.join("arsip/besar.bin"), noise(3 * MIB, 11)).unwrap();
    fs::write(src.join("laporan.txt"), b"laporan keuangan daerah 2026").unwrap();
    src
}

fn backup_with_faults(t: &TestRepo, src: &Path, plan: &str) -> Output {
    cadang(&t.backup_args(&[src], &[]))
        .env("CADANG_FAULTS", plan)
        .output()
        .expect("cadang runs")
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// What a failed backup must leave behind: nothing a reader trusts.
fn assert_failed_cleanly(t: &TestRepo, out: &Output, what: &str) {
    let all = text(out);
    assert!(!out.status.success(), "{what}: the backup must fail\n{all}");
    assert!(!all.contains("panicked"), "{what}\n{all}");
    assert!(
        all.contains("injected fault"),
        "{what}: the store's error reaches the operator\n{all}"
    );
    assert!(
        names(&t.repo.join("snapshots")).is_empty(),
        "{what}: no snapshot"
    );
    assert!(
        names(&t.repo.join("locks")).is_empty(),
        "{what}: the lock is released: {:?}",
        names(&t.repo.join("locks"))
    );
    let check = t.check(&["--read-data"]);
    assert!(check.status.success(), "{what}: check\n{}", text(&check));
}

#[test]
fn a_failed_pack_write_leaves_no_snapshot_and_a_clean_repository() {
    let t = TestRepo::new();
    let src = source(&t);
    let out = backup_with_faults(&t, &src, "write:packs@1=fail");
    assert_failed_cleanly(&t, &out, "failed pack write");
    assert!(
        names(&t.repo.join("packs")).is_empty(),
        "no pack was stored"
    );

    let again = t.backup(&[&src], &[]);
    assert!(again["snapshot"].is_string(), "{again}");
    assert!(t.check(&["--read-data"]).status.success());
}

#[test]
fn a_failed_snapshot_write_leaves_no_snapshot_and_a_clean_repository() {
    let t = TestRepo::new();
    let src = source(&t);
    let out = backup_with_faults(&t, &src, "write:snapshots@1=fail");
    assert_failed_cleanly(&t, &out, "failed snapshot write");

    // The packs the failed run stored are reused, not sent again.
    let again = t.backup(&[&src], &[]);
    assert!(
        again["added_bytes"].as_u64().unwrap() < MIB as u64,
        "the failed run's packs are reused: {again}"
    );
    assert!(t.check(&["--read-data"]).status.success());
}

#[test]
fn transient_write_failures_are_ridden_out_by_the_retry_layer() {
    let t = TestRepo::new();
    let src = source(&t);
    let out = backup_with_faults(&t, &src, "write:packs@1x2=transient,write:index@1=lost");
    let summary = succeeded(&["backup (transient faults)"], out);
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert!(summary["snapshot"].is_string(), "{summary}");
    assert_eq!(names(&t.repo.join("snapshots")).len(), 1);
    let check = t.check(&["--read-data"]);
    assert!(check.status.success(), "{}", text(&check));
}

#[test]
fn a_plan_that_does_not_parse_stops_the_command() {
    let t = TestRepo::new();
    let src = source(&t);
    let out = backup_with_faults(&t, &src, "write:packs=explode");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("CADANG_FAULTS"),
        "the bad plan is named\n{}",
        text(&out)
    );
    assert!(names(&t.repo.join("snapshots")).is_empty());
}
