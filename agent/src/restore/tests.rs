use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;

use cadang_core::tree::{Extent, Node, NodeKind};

use super::testutil::{dir, file, node, noise, symlink, Craft, MTIME};
use super::*;

const MIB: u64 = 1024 * 1024;

fn opts(target: &Path) -> RestoreOptions {
    RestoreOptions {
        target: target.to_path_buf(),
        include: vec![],
        progress: None,
    }
}

fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

fn names(d: &Path) -> BTreeSet<Vec<u8>> {
    fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect()
}

/// Every path below `root`, relative, sorted.
fn all_paths(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p != root {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

#[allow(dead_code)]
fn restore_future_is_send(r: &BlobReader<'_>, s: &Snapshot, o: &RestoreOptions) {
    fn is_send<T: Send>(_: T) {}
    is_send(restore(r, s, o));
}

#[tokio::test]
async fn restore_round_trip_contents_and_metadata() {
    let mut c = Craft::new().await;
    let outside = c.path("outside.txt");
    fs::write(&outside, b"asli").unwrap();

    let big = noise(300_000, 1);
    let secret = noise(5_000, 2);
    let sparse_data = noise(5_000, 3);
    let non_utf8: &[u8] = b"data-\xff\xfe";
    let mut nodes = vec![
        Node {
            mtime_ns: MTIME + 1,
            ..c.file(b"big.bin", &big, 0o640)
        },
        // Same chunks as big.bin: each chunk goes to two places.
        Node {
            mtime_ns: MTIME + 2,
            ..c.file(b"copy.bin", &big, 0o644)
        },
        c.file(b"empty", b"", 0o600),
        c.file(non_utf8, b"nama bukan UTF-8", 0o644),
        Node {
            mtime_ns: MTIME - 5_000_000_000,
            ..c.file(b"setuid", b"#!/bin/sh\n", 0o4755)
        },
        symlink(b"rel-link", b"big.bin"),
        symlink(b"abs-link", outside.as_os_str().as_bytes()),
        symlink(b"dangling", b"does/not/exist"),
        node(b"fifo", NodeKind::Fifo, 0o640),
    ];
    // A sparse file: holes around two chunks.
    let sparse_content = vec![
        Extent::Hole(4 * MIB),
        c.chunk(b"awal"),
        Extent::Hole(8 * MIB),
        c.chunk(&sparse_data),
        Extent::Hole(MIB),
    ];
    let sparse_len = 13 * MIB + 4 + sparse_data.len() as u64;
    nodes.push(Node {
        content: sparse_content,
        size: sparse_len,
        sparse: true,
        ..file(b"sparse.img", 0o644)
    });
    // A hard-link pair in two directories.
    let hl = |n: Node| Node {
        links: 2,
        device: 7,
        inode: 42,
        ..n
    };
    let linked = noise(20_000, 4);
    nodes.push(hl(c.file(b"hl-one", &linked, 0o640)));
    let sub_two = hl(c.file(b"hl-two", &linked, 0o640));
    let sub = c.tree(vec![sub_two]);
    nodes.push(Node {
        mtime_ns: MTIME + 10,
        ..dir(b"sub", sub, 0o755)
    });
    // A read-only file in a read-only directory: modes must come last.
    let ro_file = c.file(b"locked", &secret, 0o400);
    let ro = c.tree(vec![ro_file]);
    nodes.push(Node {
        mtime_ns: MTIME + 20,
        ..dir(b"ro", ro, 0o555)
    });
    let shared = c.tree(vec![]);
    nodes.push(dir(b"shared", shared, 0o2775));
    let data = c.tree(nodes);
    let srv = c.tree(vec![Node {
        mtime_ns: MTIME + 30,
        ..dir(b"data", data, 0o750)
    }]);
    let snap = c
        .commit(vec![dir(b"srv", srv, 0o711)], &["/srv/data"])
        .await;
    let reader = c.reader().await;

    let target = c.path("target");
    let seen: Arc<Mutex<Vec<RestoreProgress>>> = Arc::default();
    let seen2 = seen.clone();
    let o = RestoreOptions {
        progress: Some(Arc::new(move |p| seen2.lock().unwrap().push(p))),
        ..opts(&target)
    };
    let summary = restore(&reader, &snap, &o).await.unwrap();
    assert!(summary.errors.is_empty(), "{:#?}", summary.errors);
    // 8 regular files, 1 more name for hl-one, 3 symlinks, 1 fifo.
    assert_eq!(summary.files, 13);
    // srv, data, sub, ro, shared.
    assert_eq!(summary.dirs, 5);
    let want_bytes = 2 * big.len() + 16 + 10 + 4 + sparse_data.len() + 20_000 + secret.len();
    assert_eq!(summary.bytes, want_bytes as u64);
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.phase, RestorePhase::Done);
    assert_eq!(
        (last.bytes_done, last.packs_done),
        (last.bytes_total, last.packs_total)
    );
    assert!(last.packs_total > 3, "the test should span several packs");

    let d = target.join("srv/data");
    // Modes and times, on files and directories alike (before reading
    // the files changes their atimes).
    for (rel, mode, mtime) in [
        ("srv", 0o711, MTIME),
        ("srv/data", 0o750, MTIME + 30),
        ("srv/data/big.bin", 0o640, MTIME + 1),
        ("srv/data/copy.bin", 0o644, MTIME + 2),
        ("srv/data/setuid", 0o4755, MTIME - 5_000_000_000),
        ("srv/data/sub", 0o755, MTIME + 10),
        ("srv/data/ro", 0o555, MTIME + 20),
        ("srv/data/ro/locked", 0o400, MTIME),
        ("srv/data/shared", 0o2775, MTIME),
        ("srv/data/fifo", 0o640, MTIME),
    ] {
        let m = fs::symlink_metadata(target.join(rel)).unwrap();
        assert_eq!(m.mode() & 0o7777, mode, "{rel}: mode");
        assert_eq!(mtime_ns(&m), mtime, "{rel}: mtime");
        assert_eq!(
            m.atime() * 1_000_000_000 + m.atime_nsec(),
            mtime,
            "{rel}: atime"
        );
    }
    assert_eq!(fs::read(d.join("big.bin")).unwrap(), big);
    assert_eq!(fs::read(d.join("copy.bin")).unwrap(), big);
    assert_eq!(fs::read(d.join("empty")).unwrap(), b"");
    assert_eq!(
        fs::read(d.join(OsStr::from_bytes(non_utf8))).unwrap(),
        b"nama bukan UTF-8"
    );
    assert_eq!(fs::read(d.join("ro/locked")).unwrap(), secret);

    assert!(fs::symlink_metadata(d.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());

    // Symlinks: restored as links with their own times, never followed.
    assert_eq!(
        fs::read_link(d.join("rel-link")).unwrap(),
        Path::new("big.bin")
    );
    assert_eq!(fs::read_link(d.join("abs-link")).unwrap(), outside);
    assert_eq!(
        fs::read_link(d.join("dangling")).unwrap(),
        Path::new("does/not/exist")
    );
    assert_eq!(
        mtime_ns(&fs::symlink_metadata(d.join("abs-link")).unwrap()),
        MTIME
    );
    assert_eq!(fs::read(&outside).unwrap(), b"asli");
    assert_ne!(mtime_ns(&fs::metadata(&outside).unwrap()), MTIME);

    // Hard links: one inode, two names.
    let one = fs::metadata(d.join("hl-one")).unwrap();
    let two = fs::metadata(d.join("sub/hl-two")).unwrap();
    assert_eq!((one.ino(), one.nlink()), (two.ino(), 2));
    assert_eq!(fs::read(d.join("sub/hl-two")).unwrap(), linked);

    // The sparse file: right size and content, holes not allocated.
    let sp = d.join("sparse.img");
    let m = fs::metadata(&sp).unwrap();
    assert_eq!(m.len(), sparse_len);
    assert!(
        m.blocks() * 512 < 1024 * 1024,
        "sparse.img has {} blocks allocated",
        m.blocks()
    );
    let content = fs::read(&sp).unwrap();
    assert_eq!(&content[4 * MIB as usize..4 * MIB as usize + 4], b"awal");
    let at = (12 * MIB + 4) as usize;
    assert_eq!(&content[at..at + sparse_data.len()], &sparse_data[..]);
    assert!(content[..4 * MIB as usize].iter().all(|b| *b == 0));

    // Restoring again into the same target replaces everything cleanly.
    let again = restore(&reader, &snap, &opts(&target)).await.unwrap();
    assert!(again.errors.is_empty(), "{:#?}", again.errors);
    assert_eq!(fs::read(d.join("big.bin")).unwrap(), big);
    assert_eq!(fs::metadata(d.join("hl-one")).unwrap().nlink(), 2);
}

/// Builds a snapshot whose `/srv` holds `ok.txt` and `bad`, restores it and
/// checks that restore refuses before writing anything anywhere.
async fn assert_refused(
    what: &str,
    bad: impl FnOnce(&mut Craft) -> (Vec<Node>, Vec<Node>),
    needle: &str,
) {
    let mut c = Craft::new().await;
    let (srv_extra, root_extra) = bad(&mut c);
    let mut srv = vec![c.file(b"ok.txt", b"aman", 0o644)];
    srv.extend(srv_extra);
    let srv = c.tree(srv);
    let mut root = vec![dir(b"srv", srv, 0o755)];
    root.extend(root_extra);
    let snap = c.commit(root, &["/srv"]).await;
    let reader = c.reader().await;
    let before = names(c.dir.path());
    let target = c.path("deep/target");
    let err = restore(&reader, &snap, &opts(&target)).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            RestoreError::UnsafeName { .. } | RestoreError::DuplicateName { .. }
        ),
        "{what}: {msg}"
    );
    assert!(
        msg.contains(needle),
        "{what}: {msg:?} does not name {needle:?}"
    );
    assert!(msg.contains(&snap.id.short()), "{what}: {msg}");
    assert_eq!(names(c.dir.path()), before, "{what}: something was written");
    assert!(!c.path("deep").exists(), "{what}: the target was created");
}

#[tokio::test]
async fn restore_refuses_hostile_names_before_writing() {
    assert_refused(
        "file named ..",
        |c| (vec![c.file(b"..", b"pwned", 0o644)], vec![]),
        r#""..""#,
    )
    .await;
    assert_refused(
        "file ../../escaped",
        |c| (vec![c.file(b"../../escaped", b"pwned", 0o644)], vec![]),
        r#""../../escaped" in /srv"#,
    )
    .await;
    assert_refused(
        "name with a slash",
        |c| (vec![c.file(b"sub/../../escaped", b"pwned", 0o644)], vec![]),
        "sub/../../escaped",
    )
    .await;
    assert_refused(
        "absolute name",
        |c| (vec![c.file(b"/tmp/escaped", b"pwned", 0o644)], vec![]),
        "/tmp/escaped",
    )
    .await;
    assert_refused(
        "name with NUL",
        |c| (vec![c.file(b"escaped\0nul", b"pwned", 0o644)], vec![]),
        r#""escaped\0nul""#,
    )
    .await;
    assert_refused(
        "empty name",
        |c| (vec![c.file(b"", b"x", 0o644)], vec![]),
        r#""""#,
    )
    .await;
    assert_refused(
        "directory named . in the root tree",
        |c| {
            let t = c.tree(vec![]);
            (vec![], vec![dir(b".", t, 0o755)])
        },
        r#""." in /"#,
    )
    .await;
    assert_refused(
        "directory .. deep down",
        |c| {
            let inner_file = c.file(b"escaped", b"pwned", 0o644);
            let inner = c.tree(vec![inner_file]);
            let up = c.tree(vec![dir(b"..", inner, 0o755)]);
            (vec![dir(b"fine", up, 0o755)], vec![])
        },
        r#"".." in /srv/fine"#,
    )
    .await;
    assert_refused(
        "symlink and directory of the same name",
        |c| {
            let pwned = c.file(b"pwned", b"pwned", 0o644);
            let inner = c.tree(vec![pwned]);
            (
                vec![symlink(b"link", b"/tmp"), dir(b"link", inner, 0o755)],
                vec![],
            )
        },
        r#"the name "link" more than once in /srv"#,
    )
    .await;
}

#[tokio::test]
async fn restore_include_restores_only_the_given_paths() {
    let mut c = Craft::new().await;
    let y = c.file(b"y.bin", &noise(100_000, 9), 0o644);
    let sub = c.tree(vec![y]);
    let x = c.file(b"x.txt", b"x", 0o644);
    let a = c.tree(vec![x, dir(b"sub", sub, 0o700)]);
    let keep = c.file(b"keep.txt", b"keep me", 0o644);
    let skip = c.file(b"skip.txt", b"skip me", 0o644);
    let b = c.tree(vec![keep, skip]);
    let top = c.file(b"top.txt", b"top", 0o644);
    let srv = c.tree(vec![
        Node {
            mtime_ns: MTIME + 7,
            ..dir(b"a", a, 0o750)
        },
        dir(b"b", b, 0o755),
        top,
    ]);
    let other = c.tree(vec![]);
    let snap = c
        .commit(
            vec![dir(b"srv", srv, 0o755), dir(b"other", other, 0o755)],
            &["/srv", "/other"],
        )
        .await;
    let reader = c.reader().await;

    let target = c.path("t1");
    let o = RestoreOptions {
        include: vec![b"/srv/a/sub/".to_vec(), b"srv/b/keep.txt".to_vec()],
        ..opts(&target)
    };
    let summary = restore(&reader, &snap, &o).await.unwrap();
    assert!(summary.errors.is_empty(), "{:#?}", summary.errors);
    assert_eq!(
        all_paths(&target),
        [
            "srv",
            "srv/a",
            "srv/a/sub",
            "srv/a/sub/y.bin",
            "srv/b",
            "srv/b/keep.txt"
        ]
    );
    assert_eq!((summary.files, summary.dirs), (2, 4));
    assert_eq!(fs::read(target.join("srv/b/keep.txt")).unwrap(), b"keep me");
    // Parents on the way carry their own metadata.
    let m = fs::metadata(target.join("srv/a")).unwrap();
    assert_eq!((m.mode() & 0o7777, mtime_ns(&m)), (0o750, MTIME + 7));

    // An include that matches nothing stops the restore before it starts.
    let target = c.path("t2");
    for bad in [&b"/srv/nope"[..], b"/srv/top.txt/x", b"/sr"] {
        let o = RestoreOptions {
            include: vec![b"/srv/a".to_vec(), bad.to_vec()],
            ..opts(&target)
        };
        let e = restore(&reader, &snap, &o).await.unwrap_err();
        assert!(matches!(e, RestoreError::IncludeNotFound { .. }), "{e}");
        assert!(
            e.to_string().contains(&*String::from_utf8_lossy(bad)),
            "{e}"
        );
        assert!(!target.exists());
    }
    let o = RestoreOptions {
        include: vec![b"/srv/../etc".to_vec()],
        ..opts(&target)
    };
    assert!(matches!(
        restore(&reader, &snap, &o).await.unwrap_err(),
        RestoreError::BadInclude { .. }
    ));
}

#[tokio::test]
async fn restore_into_existing_target_replaces_files_and_never_follows_links() {
    let mut c = Craft::new().await;
    let f1 = c.file(b"file.txt", b"dari snapshot", 0o644);
    let f2 = c.file(b"was-link.txt", b"juga dari snapshot", 0o644);
    let inner_file = c.file(b"inner.txt", b"tidak boleh keluar", 0o644);
    let inner = c.tree(vec![inner_file]);
    let blocked_file = c.file(b"blocked", b"x", 0o644);
    let data = c.tree(vec![f1, f2, dir(b"sub", inner, 0o755), blocked_file]);
    let srv = c.tree(vec![dir(b"data", data, 0o755)]);
    let snap = c.commit(vec![dir(b"srv", srv, 0o755)], &["/srv"]).await;
    let reader = c.reader().await;

    let outside_dir = c.path("outside");
    fs::create_dir(&outside_dir).unwrap();
    let outside_file = c.path("outside.txt");
    fs::write(&outside_file, b"jangan diubah").unwrap();
    let target = c.path("target");
    let d = target.join("srv/data");
    fs::create_dir_all(&d).unwrap();
    // A hard link to a file outside, a symlink to one, a symlink to a
    // directory where the snapshot has a directory, a directory where it
    // has a file.
    fs::hard_link(&outside_file, d.join("file.txt")).unwrap();
    std::os::unix::fs::symlink(&outside_file, d.join("was-link.txt")).unwrap();
    std::os::unix::fs::symlink(&outside_dir, d.join("sub")).unwrap();
    fs::create_dir(d.join("blocked")).unwrap();
    fs::write(d.join("blocked/mine"), b"milik operator").unwrap();

    let summary = restore(&reader, &snap, &opts(&target)).await.unwrap();
    assert_eq!(fs::read(&outside_file).unwrap(), b"jangan diubah");
    assert!(
        names(&outside_dir).is_empty(),
        "restore wrote through a symlink"
    );
    assert_eq!(fs::read(d.join("file.txt")).unwrap(), b"dari snapshot");
    assert_eq!(fs::metadata(d.join("file.txt")).unwrap().nlink(), 1);
    assert_eq!(
        fs::read(d.join("was-link.txt")).unwrap(),
        b"juga dari snapshot"
    );
    assert!(fs::symlink_metadata(d.join("was-link.txt"))
        .unwrap()
        .is_file());
    assert!(fs::symlink_metadata(d.join("sub"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(d.join("blocked/mine")).unwrap(), b"milik operator");
    assert_eq!(summary.errors.len(), 2, "{:#?}", summary.errors);
    let all = summary.errors.join("\n");
    assert!(
        all.contains("srv/data/sub: cannot create the directory: a symlink is in the way"),
        "{all}"
    );
    assert!(
        all.contains("srv/data/blocked: a directory is in the way"),
        "{all}"
    );
    assert_eq!(summary.files, 2);
}

#[tokio::test]
async fn restore_reports_damaged_packs_and_restores_the_rest() {
    let mut c = Craft::new().await;
    c.data_per_pack = 1;
    let a = c.file(b"a.bin", &noise(50_000, 1), 0o644);
    let b = c.file(b"b.bin", &noise(50_000, 2), 0o644);
    let good = noise(50_000, 3);
    let g = c.file(b"good.bin", &good, 0o644);
    let chunk_of = |n: &Node| match n.content[0] {
        Extent::Chunk(id) => id,
        _ => unreachable!(),
    };
    let (ca, cb) = (chunk_of(&a), chunk_of(&b));
    let data = c.tree(vec![a, b, g]);
    let snap = c.commit(vec![dir(b"data", data, 0o755)], &["/data"]).await;
    let reader = c.reader().await;
    let pa = reader.index.get(&ca).unwrap().pack;
    let pb = reader.index.get(&cb).unwrap().pack;
    fs::remove_file(c.pack_file(&pa)).unwrap();
    let mut bytes = fs::read(c.pack_file(&pb)).unwrap();
    bytes[100] ^= 1;
    fs::write(c.pack_file(&pb), bytes).unwrap();

    let target = c.path("target");
    let summary = restore(&reader, &snap, &opts(&target)).await.unwrap();
    assert_eq!(fs::read(target.join("data/good.bin")).unwrap(), good);
    assert_eq!(summary.errors.len(), 2, "{:#?}", summary.errors);
    for (pack, file) in [(pa, "data/a.bin"), (pb, "data/b.bin")] {
        let e = summary
            .errors
            .iter()
            .find(|e| e.contains(&pack.to_hex()))
            .unwrap_or_else(|| panic!("no error names pack {pack}: {:#?}", summary.errors));
        assert!(e.contains(&target.join(file).display().to_string()), "{e}");
    }
    assert_eq!(summary.files, 1);
}

#[tokio::test]
async fn restore_of_a_stdin_snapshot_and_special_files() {
    let mut c = Craft::new().await;
    let dump = noise(200_000, 5);
    let f = c.file(b"db.dump", &dump, 0o600);
    let dev = Node {
        rdev: libc::makedev(1, 3),
        ..node(b"null", NodeKind::Chardev, 0o666)
    };
    let sock = node(b"sock", NodeKind::Socket, 0o755);
    let snap = c.commit(vec![f, dev, sock], &["/db.dump"]).await;
    let reader = c.reader().await;
    let target = c.path("target");
    let summary = restore(&reader, &snap, &opts(&target)).await.unwrap();
    assert_eq!(fs::read(target.join("db.dump")).unwrap(), dump);
    assert!(fs::symlink_metadata(target.join("sock"))
        .unwrap()
        .file_type()
        .is_socket());
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert_eq!(summary.errors.len(), 1, "{:#?}", summary.errors);
        assert!(summary.errors[0].contains("only root can create device nodes"));
    } else if summary.errors.is_empty() {
        let m = fs::symlink_metadata(target.join("null")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), libc::makedev(1, 3));
    } else {
        // Root without CAP_MKNOD (a container): reported, not fatal.
        assert!(summary.errors[0].contains("null"), "{:#?}", summary.errors);
    }
}
