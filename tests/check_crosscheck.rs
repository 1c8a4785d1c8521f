//! `check` cross-checks the index against the packs' own trailers and the
//! snapshots against the index, and `--deep` walks every tree: damage that
//! would break a restore fails the check (exit 3), named, at the lowest
//! level that can see it.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use cadang_core::index::IndexFile;
use cadang_core::keys::Credentials;
use cadang_core::pack::{BlobEntry, BlobKind};
use cadang_core::tree::{Extent, FileName, Node, NodeKind};
use cadang_core::Id;
use common::crafted::commit_tree;
use common::*;
use serde_json::Value;

const EXIT_DAMAGE: i32 = 3;

/// A repository with one backup of a few files (one data pack, one tree pack).
fn fixture() -> (TestRepo, PathBuf, String) {
    let t = TestRepo::new();
    let src = t.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big.bin"), noise(300 * 1024, 1)).unwrap();
    for i in 0..5u64 {
        fs::write(
            src.join(format!("f{i}.txt")),
            noise(2000 + i as usize, 10 + i),
        )
        .unwrap();
    }
    let summary = t.backup(&[&src], &[]);
    let snap = summary["snapshot"].as_str().unwrap().to_string();
    (t, src, snap)
}

fn index_files(t: &TestRepo) -> Vec<(String, PathBuf)> {
    let mut out: Vec<_> = fs::read_dir(t.repo.join("index"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| (e.file_name().into_string().unwrap(), e.path()))
        .collect();
    out.sort();
    out
}

/// Rewrites every index file through `edit` (which returns false to leave
/// a file alone); the new file is named by its hash, the old one removed.
/// Returns the names of the files written.
fn rewrite_index(t: &TestRepo, mut edit: impl FnMut(&mut IndexFile) -> bool) -> Vec<String> {
    let mut written = Vec::new();
    for (name, path) in index_files(t) {
        let mut f = IndexFile::parse(&name, &fs::read(&path).unwrap()).unwrap();
        if !edit(&mut f) {
            continue;
        }
        let (id, data) = f.encode();
        fs::remove_file(&path).unwrap();
        fs::write(t.repo.join("index").join(id.to_hex()), data).unwrap();
        written.push(id.to_hex());
    }
    written
}

/// Changes the first data blob of the first data pack; returns (pack, blob).
fn alter_data_entry(
    t: &TestRepo,
    change: impl Fn(&mut BlobEntry),
) -> (Vec<String>, String, String) {
    let mut target = None;
    let written = rewrite_index(t, |f| {
        for p in &mut f.packs {
            if target.is_some() {
                return false;
            }
            if let Some(b) = p.blobs.iter_mut().find(|b| b.kind == BlobKind::Data) {
                target = Some((p.id.to_hex(), b.id.to_hex()));
                change(b);
                return true;
            }
        }
        false
    });
    let (pack, blob) = target.expect("the fixture has a data blob");
    (written, pack, blob)
}

fn json_report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json prints JSON ({e})\n{}", text(out)))
}

fn errors(report: &Value) -> Vec<String> {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

/// Structure check (no flags) must exit 3 with an error naming every needle.
fn assert_named(t: &TestRepo, extra: &[&str], needles: &[&str]) -> Vec<String> {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = t.check(&args);
    assert_eq!(
        out.status.code(),
        Some(EXIT_DAMAGE),
        "check {args:?}\n{}",
        text(&out)
    );
    let errs = errors(&json_report(&out));
    assert!(
        errs.iter().any(|e| needles.iter().all(|n| e.contains(n))),
        "check {args:?} must name {needles:?} in one error: {errs:?}"
    );
    errs
}

fn restore_fails(t: &TestRepo, snap: &str) {
    let target = t.path("restored");
    let out = run(&[
        "restore",
        "--repo",
        s(&t.repo),
        snap,
        "--target",
        s(&target),
    ]);
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "restore must fail cleanly on this damage\n{}",
        text(&out)
    );
}

#[test]
fn clean_repository_has_every_trailer_checked() {
    let (t, _, _) = fixture();
    let out = t.check(&["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json_report(&out);
    assert!(r["trailers_checked"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(r["trailers_checked"], r["packs"], "{r}");
    let out = t.check(&["--deep", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json_report(&out);
    assert!(r["trees_checked"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(r["trailers_checked"], r["packs"], "{r}");
}

#[test]
fn index_offset_disagreeing_with_the_trailer_is_named_by_structure_check() {
    let (t, _, snap) = fixture();
    let (files, pack, blob) = alter_data_entry(&t, |b| b.offset += 1);
    assert_named(&t, &[], &[&files[0], &pack, &blob, "offset"]);
    assert_named(&t, &["--read-data"], &[&files[0], &pack, &blob, "offset"]);
    restore_fails(&t, &snap);
}

#[test]
fn index_length_disagreeing_with_the_trailer_is_named_by_structure_check() {
    let (t, _, snap) = fixture();
    let (files, pack, blob) = alter_data_entry(&t, |b| {
        b.length -= 1;
        b.raw_length -= 1;
    });
    assert_named(&t, &[], &[&files[0], &pack, &blob, "length"]);
    restore_fails(&t, &snap);
}

#[test]
fn index_raw_length_disagreeing_with_the_trailer_is_named_by_structure_check() {
    let (t, _, snap) = fixture();
    let (files, pack, blob) = alter_data_entry(&t, |b| b.raw_length += 7);
    assert_named(&t, &[], &[&files[0], &pack, &blob, "raw length"]);
    restore_fails(&t, &snap);
}

#[test]
fn index_id_unknown_to_the_trailer_is_named_by_structure_check() {
    let (t, _, snap) = fixture();
    let new_id = Id::random().to_hex();
    let (files, pack, _) = alter_data_entry(&t, |b| b.id = new_id.parse().unwrap());
    assert_named(&t, &[], &[&files[0], &pack, &new_id, "does not list it"]);
    restore_fails(&t, &snap);
}

#[test]
fn pack_missing_from_the_index_is_named_with_its_snapshot() {
    let (t, _, snap) = fixture();
    let mut dropped = None;
    rewrite_index(&t, |f| {
        if dropped.is_some() || f.packs.is_empty() {
            return false;
        }
        dropped = Some(f.packs.remove(0).id.to_hex());
        true
    });
    let pack = dropped.expect("an indexed pack");
    assert_named(&t, &[], &[&pack, &snap[..8], "in no index"]);
    restore_fails(&t, &snap);
}

/// A snapshot whose tree names a chunk that was never stored: only the
/// deep check can see inside the tree, and it names the chunk and the file.
#[test]
fn tree_pointing_at_a_missing_chunk_is_named_by_deep_check() {
    let (t, _, _) = fixture();
    let creds = Credentials::from_json(&fs::read(&t.creds).unwrap()).unwrap();
    let missing = creds.repo_secret.chunk_id(b"never stored anywhere");
    let file = Node {
        content: vec![Extent::Chunk(missing)],
        size: 21,
        ..node(b"laporan.txt", NodeKind::File)
    };
    let snap = commit_tree(&t.repo, &t.creds, vec![file]);

    let out = t.check(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "structure cannot see inside trees\n{}",
        text(&out)
    );
    assert_named(
        &t,
        &["--deep"],
        &[&snap[..8], &missing.to_hex(), "/laporan.txt", "in no index"],
    );
    restore_fails(&t, &snap);
}

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: FileName(name.to_vec()),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime_ns: 0,
        size: 0,
        links: 0,
        device: 0,
        inode: 0,
        rdev: 0,
        sparse: false,
        content: vec![],
        subtree: None,
        target: None,
    }
}

/// Names restore refuses (an escaping name, a name listed twice) make the
/// deep check fail, naming the snapshot and the directory.
#[test]
fn names_restore_refuses_are_named_by_deep_check() {
    let (t, _, _) = fixture();
    let dup = |name: &[u8]| Node {
        target: Some(FileName(b"/etc".to_vec())),
        ..node(name, NodeKind::Symlink)
    };
    let snap = commit_tree(
        &t.repo,
        &t.creds,
        vec![dup(b"../keluar"), dup(b"ganda"), dup(b"ganda")],
    );
    let errs = assert_named(&t, &["--deep"], &[&snap[..8], "unsafe name", "../keluar"]);
    assert!(
        errs.iter()
            .any(|e| e.contains(&snap[..8]) && e.contains("twice") && e.contains("ganda")),
        "{errs:?}"
    );
    restore_fails(&t, &snap);
}
