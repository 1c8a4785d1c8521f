//! Portable media: `cadang export` to a directory, moved to a "fresh
//! machine" (another temp dir), `cadang import` into a new store, and a
//! byte-identical restore; incremental exports; damaged and hostile exports
//! are refused with the file named and the target left alone.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn failed(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        !out.status.success(),
        "cadang {args:?} should fail\n{}",
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one line of error for the operator: {err}"
    );
    err
}

/// Runs `cadang export ... --json` and returns (export id, export dir).
fn export(t: &TestRepo, disk: &Path, since: Option<&str>) -> (String, PathBuf) {
    let state = t.path("export-state");
    let mut args = vec![
        "export",
        "--repo",
        s(&t.repo),
        "--to",
        s(disk),
        "--state-dir",
        s(&state),
        "--json",
    ];
    if let Some(id) = since {
        args.extend(["--since", id]);
    }
    let v: Value = serde_json::from_str(&ok(&args)).expect("export --json prints JSON");
    (
        v["export_id"].as_str().unwrap().to_string(),
        PathBuf::from(v["dir"].as_str().unwrap()),
    )
}

/// Copies a directory tree (the disk carried to another machine).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn restore_from(store: &Path, target: &Path) {
    ok(&[
        "restore",
        "--repo",
        s(store),
        "latest",
        "--target",
        s(target),
    ]);
}

fn snapshot_count(store: &Path) -> usize {
    let v: Value = serde_json::from_str(&ok(&["snapshots", "--repo", s(store), "--json"])).unwrap();
    v.as_array().unwrap().len()
}

fn source(t: &TestRepo) -> PathBuf {
    let src = t.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("big.bin"), noise(1_500_000, 1)).unwrap();
    for i in 0..10u64 {
        fs::write(
            src.join("sub").join(format!("f{i}.txt")),
            noise(200 + i as usize * 77, 100 + i),
        )
        .unwrap();
    }
    src
}

/// The largest pack file under an export directory.
fn largest_pack(dir: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    for shard in fs::read_dir(dir.join("packs")).unwrap() {
        for f in fs::read_dir(shard.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            let len = fs::metadata(&p).unwrap().len();
            if best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, p));
            }
        }
    }
    best.expect("the export has packs").1
}

#[test]
fn export_moves_to_a_fresh_machine_imports_and_restores_byte_identical() {
    let t = TestRepo::new();
    let src = source(&t);
    t.backup(&[&src], &[]);
    let disk = t.path("disk");
    fs::create_dir(&disk).unwrap();
    let (id, dir) = export(&t, &disk, None);
    assert_eq!(dir, disk.join(format!("cadang-export-{id}")));
    assert!(dir.join("manifest.json").is_file());

    // Another machine: only the disk's contents come along.
    let fresh = tempfile::tempdir().unwrap();
    let carried = fresh.path().join("disk");
    copy_tree(&disk, &carried);
    let exported = carried.join(format!("cadang-export-{id}"));
    let out = ok(&["import", "--from", s(&exported), "--verify-only"]);
    assert!(out.contains("is intact"), "{out}");
    let store = fresh.path().join("store");
    let out = ok(&["import", "--from", s(&exported), "--to", s(&store)]);
    assert!(out.contains("1 snapshots"), "{out}");
    let check = run(&["check", "--repo", s(&store), "--read-data"]);
    assert!(check.status.success(), "{}", text(&check));

    let target = fresh.path().join("restored");
    restore_from(&store, &target);
    assert_eq!(tree_listing(&restored(&target, &src)), tree_listing(&src));

    // Importing the same export again changes nothing and succeeds.
    let v: Value = serde_json::from_str(&ok(&[
        "import",
        "--from",
        s(&exported),
        "--to",
        s(&store),
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["copied"], 0, "{v}");
    assert_eq!(snapshot_count(&store), 1);
}

#[test]
fn incremental_exports_carry_only_new_files_and_need_their_base() {
    let t = TestRepo::new();
    let src = source(&t);
    t.backup(&[&src], &[]);
    // Two disks in rotation: the base export goes to disk A ...
    let disk_a = t.path("disk-a");
    let disk_b = t.path("disk-b");
    fs::create_dir(&disk_a).unwrap();
    fs::create_dir(&disk_b).unwrap();
    let (base_id, base_dir) = export(&t, &disk_a, None);

    fs::write(src.join("day2.bin"), noise(800_000, 2)).unwrap();
    t.backup(&[&src], &[]);
    // ... and the next one to disk B, which does not hold the base: its
    // manifest comes from the state directory.
    let (inc_id, inc_dir) = export(&t, &disk_b, Some(&base_id));
    let base: Value =
        serde_json::from_slice(&fs::read(base_dir.join("manifest.json")).unwrap()).unwrap();
    let inc: Value =
        serde_json::from_slice(&fs::read(inc_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(inc["since"], base_id.as_str());
    let names = |m: &Value, kind: &str| -> Vec<String> {
        m["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == kind)
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (base_packs, inc_packs) = (names(&base, "packs"), names(&inc, "packs"));
    assert!(!inc_packs.is_empty(), "the second backup wrote new packs");
    assert!(
        inc_packs.iter().all(|p| !base_packs.contains(p)),
        "an incremental export carries no pack of its base"
    );
    assert_eq!(names(&inc, "snapshots").len(), 1);

    // The incremental export alone: refused, naming the base, nothing written.
    let fresh = tempfile::tempdir().unwrap();
    let store = fresh.path().join("store");
    let err = failed(&["import", "--from", s(&inc_dir), "--to", s(&store)]);
    assert!(err.contains(&base_id), "{err}");
    assert!(!store.join("config").exists(), "nothing half-imported");

    // Base, then the increment: the latest snapshot restores byte-identical.
    ok(&["import", "--from", s(&base_dir), "--to", s(&store)]);
    ok(&["import", "--from", s(&inc_dir), "--to", s(&store)]);
    assert_eq!(snapshot_count(&store), 2);
    let target = fresh.path().join("restored");
    restore_from(&store, &target);
    assert_eq!(tree_listing(&restored(&target, &src)), tree_listing(&src));

    // A third export since the second still leaves out the first one's packs.
    fs::write(src.join("day3.bin"), noise(600_000, 3)).unwrap();
    t.backup(&[&src], &[]);
    let (_, third) = export(&t, &disk_a, Some(&inc_id));
    let third: Value =
        serde_json::from_slice(&fs::read(third.join("manifest.json")).unwrap()).unwrap();
    assert!(names(&third, "packs")
        .iter()
        .all(|p| !base_packs.contains(p) && !inc_packs.contains(p)));
}

#[test]
fn a_damaged_export_is_refused_naming_the_file_and_the_target_is_untouched() {
    let t = TestRepo::new();
    let src = source(&t);
    t.backup(&[&src], &[]);
    let disk = t.path("disk");
    fs::create_dir(&disk).unwrap();
    let (_, dir) = export(&t, &disk, None);
    let pack = largest_pack(&dir);
    let name = pack.file_name().unwrap().to_str().unwrap().to_string();
    let mut data = fs::read(&pack).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x40;
    fs::write(&pack, &data).unwrap();

    let err = failed(&["import", "--from", s(&dir), "--verify-only"]);
    assert!(err.contains(&name) && err.contains("damaged"), "{err}");
    let store = t.path("target-store");
    let err = failed(&["import", "--from", s(&dir), "--to", s(&store)]);
    assert!(err.contains(&name), "{err}");
    assert!(!store.exists(), "the target was not touched");

    // Truncated instead: the size gives it away, same refusal.
    data[mid] ^= 0x40;
    fs::write(&pack, &data[..data.len() - 10]).unwrap();
    let err = failed(&["import", "--from", s(&dir), "--verify-only"]);
    assert!(err.contains(&name) && err.contains("truncated"), "{err}");

    // An existing target keeps its snapshots as they were.
    let other = TestRepo::new();
    let before = snapshot_count(&t.repo);
    let err = failed(&["import", "--from", s(&dir), "--to", s(&other.repo)]);
    assert!(
        err.contains("another repository") || err.contains(&name),
        "{err}"
    );
    assert_eq!(snapshot_count(&other.repo), 0);
    assert_eq!(snapshot_count(&t.repo), before);
}

#[test]
fn hostile_or_missing_manifests_are_refused() {
    let t = TestRepo::new();
    let src = source(&t);
    t.backup(&[&src], &[]);
    let disk = t.path("disk");
    fs::create_dir(&disk).unwrap();
    let (_, dir) = export(&t, &disk, None);
    let manifest_path = dir.join("manifest.json");
    let good = fs::read(&manifest_path).unwrap();
    let store = t.path("target-store");

    for hostile in ["../../../outside", "/etc/passwd", "sub/../../x", ".hidden"] {
        let mut m: Value = serde_json::from_slice(&good).unwrap();
        let files = m["files"].as_array_mut().unwrap();
        let f = files.iter_mut().find(|f| f["kind"] == "packs").unwrap();
        f["name"] = Value::from(hostile);
        fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
        let err = failed(&["import", "--from", s(&dir), "--verify-only"]);
        assert!(err.contains("unsafe name"), "{hostile}: {err}");
        let err = failed(&["import", "--from", s(&dir), "--to", s(&store)]);
        assert!(err.contains("unsafe name"), "{hostile}: {err}");
        assert!(!store.exists(), "{hostile}: the target was not touched");
    }
    // A hostile kind is refused too.
    let mut m: Value = serde_json::from_slice(&good).unwrap();
    m["files"][0]["kind"] = Value::from("../locks");
    fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
    let err = failed(&["import", "--from", s(&dir), "--verify-only"]);
    assert!(err.contains("unsafe name"), "{err}");

    // No manifest: an interrupted export.
    fs::remove_file(&manifest_path).unwrap();
    let err = failed(&["import", "--from", s(&dir), "--to", s(&store)]);
    assert!(
        err.contains("manifest.json") && err.contains("interrupted"),
        "{err}"
    );
    assert!(!store.exists());
    // The disk's root instead of the export directory: say which to give.
    fs::write(&manifest_path, &good).unwrap();
    let err = failed(&["import", "--from", s(&disk), "--verify-only"]);
    assert!(err.contains("cadang-export-"), "{err}");
}
