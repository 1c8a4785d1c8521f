//! Back up, restore, compare: contents and metadata come back exactly.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use filetime::FileTime;

const MIB: u64 = 1024 * 1024;

/// Where the restore of the absolute path `src` lands under `target`.
fn write(p: &Path, data: &[u8], mode: u32) {
    fs::write(p, data).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(p: &Path, mode: u32) {
    fs::create_dir(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A fixed past time with nanoseconds, different for every `i`.
fn past(i: i64) -> FileTime {
    FileTime::from_unix_time(
        1_500_000_000 + i * 86_400 + i * 37,
        123_456_789 + i as u32 * 1_001,
    )
}

fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

/// Every directory and symlink under `root` with its mtime in ns (which
/// `tree_listing` leaves out), by relative path.
fn dir_and_link_mtimes(root: &Path) -> Vec<(String, &'static str, i64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if m.file_type().is_symlink() {
            out.push((rel, "symlink", mtime_ns(&m)));
        } else if m.is_dir() {
            out.push((rel, "dir", mtime_ns(&m)));
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

const NON_UTF8_FILE: &[u8] = b"data-\xff\xfe";
const NON_UTF8_DIR: &[u8] = b"map-\xfe\x80";

/// Builds the source tree of the full round-trip test; `outside` is the
/// target of the absolute symlink.
fn build_source(src: &Path, outside: &Path) {
    let euid = unsafe { libc::geteuid() };
    mkdir(src, 0o750);
    mkdir(&src.join("empty"), 0o755);
    mkdir(&src.join("nested"), 0o755);
    mkdir(&src.join("nested/a"), 0o755);
    mkdir(&src.join("nested/a/b"), 0o755);
    mkdir(&src.join("private"), 0o700);
    mkdir(&src.join("shared"), 0o2775);
    mkdir(&src.join(OsStr::from_bytes(NON_UTF8_DIR)), 0o755);

    write(&src.join("zero"), b"", 0o644);
    write(
        &src.join("small.txt"),
        b"laporan bulanan dinas kesehatan\n",
        0o640,
    );
    write(&src.join("private/secret.key"), &noise(517, 1), 0o600);
    write(&src.join("script.sh"), b"#!/bin/sh\necho halo\n", 0o755);
    write(&src.join("nested/a/b/deep.txt"), &noise(70_000, 2), 0o644);
    write(&src.join("shared/in-setgid.txt"), b"bersama", 0o664);
    // Several MB of noise: several chunks (avg 1 MiB) and a pack boundary's worth.
    write(
        &src.join("big.bin"),
        &noise(5 * MIB as usize + 12_345, 3),
        0o644,
    );
    write(
        &src.join(OsStr::from_bytes(NON_UTF8_FILE)),
        b"nama bukan UTF-8",
        0o644,
    );
    write(
        &src.join(OsStr::from_bytes(NON_UTF8_DIR)).join("inner.txt"),
        b"isi",
        0o600,
    );

    // A hard-link pair in two directories.
    write(&src.join("hl-one"), &noise(20_000, 4), 0o640);
    fs::hard_link(src.join("hl-one"), src.join("nested/hl-two")).unwrap();

    // A sparse file: 64 MiB long, a few KiB of data at a few offsets, a
    // trailing hole.
    {
        let mut f = fs::File::create(src.join("sparse.img")).unwrap();
        f.set_len(64 * MIB).unwrap();
        for (off, len, seed) in [
            (0u64, 4096usize, 5u64),
            (5 * MIB + 777, 3000, 6),
            (33 * MIB, 8192, 7),
        ] {
            f.seek(SeekFrom::Start(off)).unwrap();
            f.write_all(&noise(len, seed)).unwrap();
        }
        f.sync_all().unwrap();
        fs::set_permissions(src.join("sparse.img"), fs::Permissions::from_mode(0o644)).unwrap();
    }

    // Symlinks: relative, absolute (to a file outside the tree) and dangling.
    std::os::unix::fs::symlink("nested/a/b/deep.txt", src.join("rel-link")).unwrap();
    std::os::unix::fs::symlink(outside, src.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", src.join("dangling")).unwrap();

    // Owners other than the test's, where we may set them.
    if euid == 0 {
        std::os::unix::fs::chown(src.join("small.txt"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(src.join("rel-link"), Some(4321), Some(8765)).unwrap();
        std::os::unix::fs::chown(src.join("private"), Some(2345), Some(6789)).unwrap();
    }

    // Explicit past mtimes with nanoseconds: files and links first, then
    // directories deepest first (creating entries changes a directory's mtime).
    let files = [
        "zero",
        "small.txt",
        "private/secret.key",
        "script.sh",
        "nested/a/b/deep.txt",
        "shared/in-setgid.txt",
        "big.bin",
        "hl-one",
        "sparse.img",
    ];
    for (i, f) in files.iter().enumerate() {
        filetime::set_file_mtime(src.join(f), past(i as i64)).unwrap();
    }
    filetime::set_file_mtime(src.join(OsStr::from_bytes(NON_UTF8_FILE)), past(20)).unwrap();
    filetime::set_file_mtime(
        src.join(OsStr::from_bytes(NON_UTF8_DIR)).join("inner.txt"),
        past(21),
    )
    .unwrap();
    for (i, l) in ["rel-link", "abs-link", "dangling"].iter().enumerate() {
        filetime::set_symlink_file_times(src.join(l), past(30 + i as i64), past(40 + i as i64))
            .unwrap();
    }
    let dirs: Vec<PathBuf> = vec![
        src.join("nested/a/b"),
        src.join("nested/a"),
        src.join("nested"),
        src.join("empty"),
        src.join("private"),
        src.join("shared"),
        src.join(OsStr::from_bytes(NON_UTF8_DIR)),
        src.to_path_buf(),
    ];
    for (i, d) in dirs.iter().enumerate() {
        filetime::set_file_mtime(d, past(50 + i as i64)).unwrap();
    }
}

#[test]
fn restore_is_byte_identical_with_metadata() {
    let t = TestRepo::new();
    let src = t.path("src");
    let outside = t.path("outside-target.txt");
    fs::write(&outside, b"not in the backup").unwrap();
    build_source(&src, &outside);

    // The source really is what the test claims.
    let sparse_src = fs::metadata(src.join("sparse.img")).unwrap();
    assert_eq!(sparse_src.len(), 64 * MIB);
    assert!(
        sparse_src.blocks() * 512 < MIB,
        "precondition: the source file system keeps sparse.img sparse ({} blocks)",
        sparse_src.blocks()
    );
    assert_eq!(fs::metadata(src.join("nested/hl-two")).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(src.join("shared")).unwrap().mode() & 0o7777,
        0o2775
    );

    let summary = t.backup(&[&src], &[]);
    assert_eq!(
        summary["problems"].as_array().map(Vec::len),
        Some(0),
        "{summary}"
    );
    // Regular files: zero small secret script deep in-setgid big non-utf8
    // inner hl-one hl-two sparse.
    assert_eq!(summary["files"], 12, "{summary}");

    let target = t.path("target");
    t.restore("latest", &target);
    let out = restored(&target, &src);
    let mut problems: Vec<String> = Vec::new();

    let (want, got) = (tree_listing(&src), tree_listing(&out));
    if want != got {
        let missing: Vec<_> = want.iter().filter(|l| !got.contains(l)).collect();
        let extra: Vec<_> = got.iter().filter(|l| !want.contains(l)).collect();
        problems.push(format!(
            "tree listing differs:\n  source only: {missing:#?}\n  restore only: {extra:#?}"
        ));
    }

    // Directory and symlink mtimes (left out of tree_listing).
    let (want_t, got_t) = (dir_and_link_mtimes(&src), dir_and_link_mtimes(&out));
    for w in &want_t {
        match got_t.iter().find(|g| g.0 == w.0) {
            Some(g) if g.2 == w.2 => {}
            Some(g) => problems.push(format!(
                "{} {:?}: mtime {} restored as {}",
                w.1, w.0, w.2, g.2
            )),
            None => problems.push(format!("{} {:?} missing after restore", w.1, w.0)),
        }
    }

    // Non-UTF-8 names come back byte for byte.
    for name in [
        src.join(OsStr::from_bytes(NON_UTF8_FILE)),
        src.join(OsStr::from_bytes(NON_UTF8_DIR)).join("inner.txt"),
    ] {
        let r = restored(&target, &name);
        if fs::read(&r).ok() != Some(fs::read(&name).unwrap()) {
            problems.push(format!(
                "non-UTF-8 name {:?} not restored with its exact bytes",
                r
            ));
        }
    }

    // The hard-link pair is one inode again.
    match (
        fs::metadata(out.join("hl-one")),
        fs::metadata(out.join("nested/hl-two")),
    ) {
        (Ok(a), Ok(b)) => {
            if a.ino() != b.ino() || a.nlink() != 2 {
                problems.push(format!(
                    "hard links not restored as one file: inodes {} and {}, link counts {} and {}",
                    a.ino(),
                    b.ino(),
                    a.nlink(),
                    b.nlink()
                ));
            }
        }
        (a, b) => problems.push(format!(
            "hard-link pair missing: {:?} {:?}",
            a.err(),
            b.err()
        )),
    }

    // The sparse file stays sparse.
    match fs::metadata(out.join("sparse.img")) {
        Ok(m) => {
            if m.len() != 64 * MIB || m.blocks() * 512 >= 2 * MIB {
                problems.push(format!(
                    "sparse.img restored with size {} and {} bytes allocated (source: {} allocated)",
                    m.len(),
                    m.blocks() * 512,
                    sparse_src.blocks() * 512
                ));
            }
        }
        Err(e) => problems.push(format!("sparse.img missing: {e}")),
    }

    // Links are restored as links, not followed.
    match fs::read_link(out.join("abs-link")) {
        Ok(l) if l == outside => {}
        other => problems.push(format!("abs-link restored as {other:?}")),
    }

    // Owners, when the test can set them.
    if unsafe { libc::geteuid() } == 0 {
        for (p, uid, gid) in [
            ("small.txt", 1234, 5678),
            ("rel-link", 4321, 8765),
            ("private", 2345, 6789),
        ] {
            match fs::symlink_metadata(out.join(p)) {
                Ok(m) if (m.uid(), m.gid()) == (uid, gid) => {}
                Ok(m) => problems.push(format!(
                    "{p}: owner {}:{} restored as {}:{}",
                    uid,
                    gid,
                    m.uid(),
                    m.gid()
                )),
                Err(e) => problems.push(format!("{p} missing: {e}")),
            }
        }
    }

    assert!(
        problems.is_empty(),
        "restore differs from the source:\n{}",
        problems.join("\n")
    );
}

/// Every regular file under `root`, relative.
fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[test]
fn include_restores_only_the_given_paths() {
    let t = TestRepo::new();
    let src = t.path("src");
    fs::create_dir_all(src.join("a/sub")).unwrap();
    fs::create_dir_all(src.join("b")).unwrap();
    fs::write(src.join("a/x.txt"), b"x").unwrap();
    fs::write(src.join("a/sub/y.bin"), noise(300_000, 9)).unwrap();
    fs::write(src.join("b/keep.txt"), b"keep me").unwrap();
    fs::write(src.join("b/skip.txt"), b"skip me").unwrap();
    fs::write(src.join("top.txt"), b"top").unwrap();
    filetime::set_file_mtime(src.join("a/sub"), past(1)).unwrap();
    filetime::set_file_mtime(src.join("a"), past(2)).unwrap();
    t.backup(&[&src], &[]);

    // One directory.
    let target = t.path("target-a");
    ok(&[
        "restore",
        "--repo",
        s(&t.repo),
        "latest",
        "--target",
        s(&target),
        "--include",
        s(&src.join("a")),
    ]);
    let out = restored(&target, &src);
    assert_eq!(tree_listing(&out.join("a")), tree_listing(&src.join("a")));
    assert_eq!(
        files_under(&target),
        vec![
            format!("{}/a/sub/y.bin", &s(&src)[1..]),
            format!("{}/a/x.txt", &s(&src)[1..])
        ]
    );

    // One file, plus a directory: --include is repeatable.
    let target = t.path("target-b");
    ok(&[
        "restore",
        "--repo",
        s(&t.repo),
        "latest",
        "--target",
        s(&target),
        "--include",
        s(&src.join("b/keep.txt")),
        "--include",
        s(&src.join("a/sub")),
    ]);
    let out = restored(&target, &src);
    assert_eq!(fs::read(out.join("b/keep.txt")).unwrap(), b"keep me");
    assert_eq!(
        tree_listing(&out.join("a/sub")),
        tree_listing(&src.join("a/sub"))
    );
    assert_eq!(
        files_under(&target),
        vec![
            format!("{}/a/sub/y.bin", &s(&src)[1..]),
            format!("{}/b/keep.txt", &s(&src)[1..])
        ]
    );
    assert!(
        !out.join("b/skip.txt").exists()
            && !out.join("top.txt").exists()
            && !out.join("a/x.txt").exists()
    );
}

fn snapshot_count(t: &TestRepo) -> usize {
    t.snapshots()
        .as_array()
        .expect("snapshots --json is an array")
        .len()
}

#[test]
fn stdin_backup_round_trips_through_dump() {
    let t = TestRepo::new();
    let data = noise(3_000_000, 11);
    let file = t.path("db.source");
    fs::write(&file, &data).unwrap();
    let cmd = format!("cat '{}'", s(&file));
    let summary = t.backup(&[], &["--stdin-name", "db.dump", "--stdin-from", &cmd]);
    assert_eq!(summary["files"], 1, "{summary}");
    assert_eq!(summary["bytes"], 3_000_000, "{summary}");
    assert_eq!(snapshot_count(&t), 1);

    let out = run(&["dump", "--repo", s(&t.repo), "latest", "/db.dump"]);
    assert!(
        out.status.success(),
        "dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), data.len());
    assert!(
        out.stdout == data,
        "dump output differs from the command's output"
    );

    let listing = ok(&["ls", "--repo", s(&t.repo), "latest"]);
    assert!(
        listing.lines().any(|l| l.trim() == "/db.dump"),
        "ls shows {listing:?}"
    );

    // A failing command: non-zero exit, and no new snapshot.
    let failed = run(&[
        "backup",
        "--repo",
        s(&t.repo),
        "--credentials",
        s(&t.creds),
        "--cache-dir",
        s(&t.cache),
        "--stdin-name",
        "db.dump",
        "--stdin-from",
        "echo partial; exit 3",
    ]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_ne!(
        failed.status.code(),
        Some(0),
        "a failing --stdin-from must fail the backup; stderr: {stderr}"
    );
    assert!(
        failed.status.code().is_some(),
        "killed by a signal? {:?}",
        failed.status
    );
    assert!(
        stderr.contains("failed") && stderr.contains("exit 3"),
        "stderr: {stderr}"
    );
    assert_eq!(
        snapshot_count(&t),
        1,
        "a failed stdin backup wrote a snapshot"
    );
    assert_eq!(fs::read_dir(t.repo.join("snapshots")).unwrap().count(), 1);

    // `latest` is still the good dump.
    let out = run(&["dump", "--repo", s(&t.repo), "latest", "/db.dump"]);
    assert!(
        out.status.success() && out.stdout == data,
        "latest is no longer the good dump"
    );
}
