//! `cadang check` finds damage and names it: flipped bytes in packs, a
//! truncated index file, a deleted pack. Damage gives exit code 3 and a JSON
//! report with errors; a clean repository gives exit 0 and no errors.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use cadang_core::snapshot::Snapshot;
use common::*;
use serde_json::Value;

/// Exit code of the CLI for "the command ran and found damage".
const EXIT_DAMAGE: i32 = 3;

/// A repository with a few snapshots and several packs, and the snapshot
/// ids (full hex) in the order they were made.
struct Fixture {
    t: TestRepo,
    snapshots: Vec<String>,
}

fn fixture() -> Fixture {
    let t = TestRepo::new();
    let src = t.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    let mut snapshots = Vec::new();
    // Each round adds new data, so each backup writes its own data and tree
    // packs: several packs in all.
    for round in 0..4u64 {
        fs::write(
            src.join(format!("data-{round}.bin")),
            noise(700 * 1024 + round as usize * 9_999, 10 + round),
        )
        .unwrap();
        for i in 0..20u64 {
            let n = (round * 20 + i) as usize;
            fs::write(
                src.join("sub").join(format!("f{n:03}.txt")),
                noise(100 + n * 53, 1_000 + n as u64),
            )
            .unwrap();
        }
        let summary = t.backup(&[&src], &[]);
        snapshots.push(
            summary["snapshot"]
                .as_str()
                .expect("snapshot id")
                .to_string(),
        );
    }
    Fixture { t, snapshots }
}

/// Visible files directly or one level below `dir` (the packs/ fan-out), by name.
fn visible_files(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if name.starts_with('.') {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(name, e.path());
            }
        }
    }
    out
}

fn packs(t: &TestRepo) -> BTreeMap<String, PathBuf> {
    visible_files(&t.repo.join("packs"))
}

/// The largest pack (a data pack, which some snapshot needs).
fn largest_pack(t: &TestRepo) -> (String, PathBuf) {
    packs(t)
        .into_iter()
        .max_by_key(|(_, p)| fs::metadata(p).unwrap().len())
        .expect("the fixture has packs")
}

fn flip_byte(p: &Path) {
    let mut data = fs::read(p).unwrap();
    let at = data.len() / 2;
    data[at] ^= 0x01;
    fs::write(p, data).unwrap();
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_damage(out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(EXIT_DAMAGE),
        "{what}: check must exit {EXIT_DAMAGE}\n{}",
        text(out)
    );
}

fn assert_clean(out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: check must pass\n{}",
        text(out)
    );
}

/// Runs `check --json ...`, requires exit 3, and returns the error strings.
fn json_errors(t: &TestRepo, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = t.check(&args);
    assert_damage(&out, &format!("check {args:?}"));
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json prints JSON ({e})\n{}", text(&out)));
    let errors: Vec<String> = report["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array in {report}"))
        .iter()
        .map(|e| e.as_str().expect("errors are strings").to_string())
        .collect();
    assert!(
        !errors.is_empty(),
        "check {args:?} exits {EXIT_DAMAGE} but reports no errors: {report}"
    );
    errors
}

/// Which snapshots (short ids) list `pack`, read keyless from the snapshot files.
fn snapshots_needing(t: &TestRepo, pack: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (name, path) in visible_files(&t.repo.join("snapshots")) {
        let s = Snapshot::parse(&name, &fs::read(path).unwrap()).expect("snapshot parses");
        if s.payload.packs.iter().any(|p| p.to_hex() == pack) {
            out.push(s.id.short());
        }
    }
    out
}

#[test]
fn clean_repository_passes_every_level() {
    let f = fixture();
    assert!(
        packs(&f.t).len() >= 4,
        "fixture should have several packs: {:?}",
        packs(&f.t).keys()
    );
    assert_clean(&f.t.check(&[]), "structure");
    assert_clean(&f.t.check(&["--read-data"]), "--read-data");
    assert_clean(
        &f.t.check(&["--read-data-subset", "100%"]),
        "--read-data-subset 100%",
    );
    let out = f.t.check(&["--read-data", "--json"]);
    assert_clean(&out, "--read-data --json");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["snapshots"].as_u64(),
        Some(f.snapshots.len() as u64),
        "{report}"
    );
    assert_eq!(
        report["packs"].as_u64(),
        Some(packs(&f.t).len() as u64),
        "{report}"
    );
    assert_eq!(
        report["packs_read"].as_u64(),
        Some(packs(&f.t).len() as u64),
        "{report}"
    );
    assert_eq!(report["unreferenced_packs"].as_u64(), Some(0), "{report}");
    assert!(stdout(&f.t.check(&[])).contains("no errors were found"));
}

#[test]
fn flipped_byte_in_a_pack_is_found_by_read_data() {
    let f = fixture();
    let (pack, path) = largest_pack(&f.t);
    flip_byte(&path);

    // Structure only: the size is unchanged, so it may pass; but it must not crash.
    let structure = f.t.check(&[]);
    assert!(
        matches!(structure.status.code(), Some(0) | Some(EXIT_DAMAGE)),
        "{}",
        text(&structure)
    );

    let out = f.t.check(&["--read-data"]);
    assert_damage(&out, "--read-data after a flipped byte");
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("error:") && l.contains(&pack)),
        "--read-data must name pack {pack}\n{}",
        text(&out)
    );

    let out = f.t.check(&["--read-data-subset", "100%"]);
    assert_damage(&out, "--read-data-subset 100% after a flipped byte");
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("error:") && l.contains(&pack)),
        "--read-data-subset 100% must name pack {pack}\n{}",
        text(&out)
    );

    let errors = json_errors(&f.t, &["--read-data"]);
    assert!(
        errors.iter().any(|e| e.contains(&pack)),
        "JSON errors must name pack {pack}: {errors:?}"
    );
    // Only that pack is damaged.
    for e in &errors {
        assert!(
            e.contains(&pack),
            "unexpected error besides the flipped pack: {e}"
        );
    }
}

#[test]
fn truncated_index_file_is_named_by_check() {
    let f = fixture();
    let index = visible_files(&f.t.repo.join("index"));
    let (name, path) = index.iter().next().expect("an index file");
    let data = fs::read(path).unwrap();
    fs::write(path, &data[..data.len() / 2]).unwrap();

    let out = f.t.check(&[]);
    assert_damage(&out, "structure check after truncating an index file");
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("error:") && l.contains(name.as_str())),
        "check must name index file {name}\n{}",
        text(&out)
    );

    let errors = json_errors(&f.t, &[]);
    assert!(
        errors.iter().any(|e| e.contains(name.as_str())),
        "JSON errors must name index file {name}: {errors:?}"
    );
}

#[test]
fn deleted_pack_is_named_with_the_snapshot_needing_it() {
    let f = fixture();
    let (pack, path) = largest_pack(&f.t);
    let needing = snapshots_needing(&f.t, &pack);
    assert!(
        !needing.is_empty(),
        "some snapshot needs the largest pack {pack}"
    );
    fs::remove_file(&path).unwrap();

    let out = f.t.check(&[]);
    assert_damage(&out, "structure check after deleting a pack");
    let lines: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(str::to_string)
        .collect();
    assert!(
        lines.iter().any(|l| l.contains(&pack)),
        "check must name the missing pack {pack}\n{}",
        text(&out)
    );
    for snap in &needing {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&pack) && l.contains(snap.as_str())),
            "check must name snapshot {snap}, which needs the missing pack {pack}\n{}",
            text(&out)
        );
    }

    let errors = json_errors(&f.t, &[]);
    assert!(
        errors.iter().any(|e| e.contains(&pack)),
        "JSON errors must name pack {pack}: {errors:?}"
    );
    for snap in &needing {
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&pack) && e.contains(snap.as_str())),
            "JSON errors must name snapshot {snap}: {errors:?}"
        );
    }
    // --read-data also fails (and does not crash on the missing file).
    assert_damage(
        &f.t.check(&["--read-data"]),
        "--read-data after deleting a pack",
    );
}

/// Repeated `--read-data-subset 30%` runs continue where the previous one
/// stopped: ceil(100/30) = 4 runs read every pack, and a fifth wraps around.
#[test]
fn rolling_read_data_subset_covers_every_pack() {
    let f = fixture();
    let all: BTreeSet<String> = packs(&f.t).into_keys().collect();
    let n = all.len();
    assert!(n >= 4, "fixture should have several packs: {all:?}");
    let per_run = (n as f64 * 0.3).ceil() as usize;
    assert!(per_run < n);

    // Clean repository: the position advances through the sorted pack names and wraps.
    let names: Vec<&String> = all.iter().collect();
    let mut start = 0usize;
    for round in 0..5 {
        let out = f.t.check(&["--read-data-subset", "30%", "--json"]);
        assert_clean(&out, &format!("clean subset run {round}"));
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        assert_eq!(
            report["packs_read"].as_u64(),
            Some(per_run as u64),
            "run {round}: {report}"
        );
        let expected_last = names[(start + per_run - 1) % n];
        assert_eq!(
            report["last_read"].as_str(),
            Some(expected_last.as_str()),
            "run {round}: the subset must continue after the previous run's last pack: {report}"
        );
        start = (start + per_run) % n;
    }

    // Damage every pack; start over with a fresh position. Four runs with the
    // same --cache-dir find every damaged pack, each run only its share.
    for path in packs(&f.t).values() {
        flip_byte(path);
    }
    let fresh_cache = f.t.path("fresh-cache");
    let mut found = BTreeSet::new();
    for round in 0..4 {
        let out = run(&[
            "check",
            "--repo",
            s(&f.t.repo),
            "--cache-dir",
            s(&fresh_cache),
            "--read-data-subset",
            "30%",
            "--json",
        ]);
        assert_damage(&out, &format!("damaged subset run {round}"));
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        assert_eq!(
            report["packs_read"].as_u64(),
            Some(per_run as u64),
            "run {round}: {report}"
        );
        let errors: Vec<&str> = report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        let named: BTreeSet<String> = all
            .iter()
            .filter(|p| errors.iter().any(|e| e.contains(p.as_str())))
            .cloned()
            .collect();
        assert_eq!(
            named.len(),
            per_run,
            "run {round} read {per_run} damaged packs and must name each: {errors:?}"
        );
        found.extend(named);
    }
    let missed: Vec<_> = all.difference(&found).collect();
    assert!(
        missed.is_empty(),
        "after 4 runs of --read-data-subset 30%, these damaged packs were never read: {missed:?}"
    );
}
