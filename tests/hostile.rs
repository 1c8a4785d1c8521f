//! Hostile input: crafted snapshots cannot make restore write outside its
//! target, and operator mistakes give one clear line, not a panic.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use cadang_core::backend::LocalBackend;
use cadang_core::keys::Credentials;
use cadang_core::pack::BlobKind;
use cadang_core::session::BackupSession;
use cadang_core::snapshot::{SnapshotBody, SnapshotMeta, SnapshotStats};
use cadang_core::tree::{Extent, FileName, Node, NodeKind, Tree};
use cadang_core::{Id, Repository};
use common::*;

// ---------------------------------------------------------------------------
// Crafting snapshots with the library.

/// Blobs for one crafted snapshot, stored and committed by `commit`.
struct Craft {
    repo: PathBuf,
    creds: PathBuf,
    ids: Credentials,
    data: Vec<(Id, Vec<u8>)>,
    trees: Vec<(Id, Vec<u8>)>,
}

impl Craft {
    fn new(t: &TestRepo) -> Craft {
        Craft {
            repo: t.repo.clone(),
            creds: t.creds.clone(),
            ids: Credentials::from_json(&fs::read(&t.creds).unwrap()).unwrap(),
            data: Vec::new(),
            trees: Vec::new(),
        }
    }

    /// A file node holding `content`.
    fn file(&mut self, name: &[u8], content: &[u8]) -> Node {
        let id = self.ids.repo_secret.chunk_id(content);
        self.data.push((id, content.to_vec()));
        Node {
            content: vec![Extent::Chunk(id)],
            size: content.len() as u64,
            ..node(name, NodeKind::File, 0o644)
        }
    }

    /// A directory node whose entries are `nodes`.
    fn dir(&mut self, name: &[u8], nodes: Vec<Node>) -> Node {
        let id = self.tree(nodes);
        Node {
            subtree: Some(id),
            ..node(name, NodeKind::Dir, 0o755)
        }
    }

    fn tree(&mut self, nodes: Vec<Node>) -> Id {
        let bytes = Tree { nodes }.encode();
        let id = self.ids.repo_secret.chunk_id(&bytes);
        self.trees.push((id, bytes));
        id
    }

    /// Stores everything and commits a snapshot of `/srv` whose root tree
    /// (the tree of `/`) holds `root`. Returns the snapshot id.
    fn commit(mut self, root: Vec<Node>) -> String {
        let root = self.tree(root);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let repo = Arc::new(
                Repository::open(Arc::new(LocalBackend::new(self.repo.clone())))
                    .await
                    .unwrap(),
            );
            let creds = Credentials::from_json(&fs::read(&self.creds).unwrap()).unwrap();
            let session = Arc::new(BackupSession::start(repo, creds).await.unwrap());
            let worker = session.clone();
            let (data, trees) = (self.data, self.trees);
            tokio::task::spawn_blocking(move || {
                for (kind, blobs) in [(BlobKind::Data, data), (BlobKind::Tree, trees)] {
                    let mut pack = worker.new_pack(kind).unwrap();
                    for (id, bytes) in blobs {
                        if worker.claim(id) {
                            worker.store(&mut pack, id, &bytes).unwrap();
                        }
                    }
                    worker.flush(&mut pack).unwrap();
                }
            })
            .await
            .unwrap();
            let session = Arc::try_unwrap(session)
                .ok()
                .expect("no other session handle");
            let meta = SnapshotMeta {
                host: "crafted".into(),
                tags: vec![],
                agent: "crafted".into(),
            };
            let body = SnapshotBody {
                paths: vec![FileName(b"/srv".to_vec())],
                tree: root,
                stdin_command: None,
                excludes: vec![],
            };
            let (id, _) = session
                .commit(meta, body, SnapshotStats::default())
                .await
                .unwrap();
            id.to_hex()
        })
    }
}

fn node(name: &[u8], kind: NodeKind, mode: u32) -> Node {
    Node {
        name: FileName(name.to_vec()),
        kind,
        mode,
        uid: unsafe { libc::getuid() },
        gid: unsafe { libc::getgid() },
        user: None,
        group: None,
        mtime_ns: 1_600_000_000_000_000_000,
        size: 0,
        links: 0,
        device: 0,
        inode: 0,
        rdev: 0,
        sparse: false,
        content: Vec::new(),
        subtree: None,
        target: None,
    }
}

fn symlink(name: &[u8], target: &[u8]) -> Node {
    Node {
        target: Some(FileName(target.to_vec())),
        ..node(name, NodeKind::Symlink, 0o777)
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Restores a crafted snapshot whose `/srv` holds `srv` (plus `extra_root`
/// beside `srv` in the root tree) into `TMP/target`, and checks that restore
/// refuses it, names `mention`, and writes nothing outside the target.
fn assert_refused(
    what: &str,
    build: impl FnOnce(&mut Craft, &Path) -> (Vec<Node>, Vec<Node>),
    mention: &str,
) {
    let t = TestRepo::new();
    let tmp = t.dir.path().to_path_buf();
    let outside = tmp.join("outside");
    fs::create_dir(&outside).unwrap();
    let mut c = Craft::new(&t);
    let (srv, extra_root) = build(&mut c, &tmp);
    let mut root = vec![c.dir(b"srv", srv)];
    root.extend(extra_root);
    let id = c.commit(root);

    let before = names(&tmp);
    let target = tmp.join("target");
    let out = run(&["restore", "--repo", s(&t.repo), &id, "--target", s(&target)]);
    let err = String::from_utf8_lossy(&out.stderr);
    let mut after = names(&tmp);
    after.remove("target");

    assert!(
        out.status.code().is_some(),
        "{what}: restore died: {:?}\n{err}",
        out.status
    );
    assert!(
        !tmp.join("escaped").exists(),
        "{what}: restore wrote {}/escaped",
        tmp.display()
    );
    assert_eq!(
        names(&outside),
        BTreeSet::new(),
        "{what}: restore wrote into a directory outside the target"
    );
    assert_eq!(
        after, before,
        "{what}: restore created files beside the target"
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "{what}: restore accepted the snapshot\nstderr: {err}"
    );
    assert!(
        err.contains(mention),
        "{what}: stderr does not name {mention:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
}

fn abs_escape(tmp: &Path) -> Vec<u8> {
    format!("{}/escaped", tmp.display()).into_bytes()
}

#[test]
fn crafted_snapshot_control_restores() {
    // The crafting itself works: a benign crafted snapshot restores.
    let t = TestRepo::new();
    let mut c = Craft::new(&t);
    let srv = vec![
        c.file(b"ok.txt", b"aman"),
        c.dir(b"sub", vec![]),
        symlink(b"link", b"ok.txt"),
        symlink(b"abs-link", b"/etc/passwd"),
    ];
    let sub = c.dir(b"srv", srv);
    let id = c.commit(vec![sub]);
    let target = t.path("target");
    t.restore(&id, &target);
    assert_eq!(fs::read(target.join("srv/ok.txt")).unwrap(), b"aman");
    assert!(target.join("srv/sub").is_dir());
    assert_eq!(
        fs::read_link(target.join("srv/link")).unwrap(),
        Path::new("ok.txt")
    );
    assert_eq!(
        fs::read_link(target.join("srv/abs-link")).unwrap(),
        Path::new("/etc/passwd")
    );
}

#[test]
fn dot_dot_file_name_is_refused() {
    assert_refused(
        "file ../../escaped",
        |c, _| {
            (
                vec![
                    c.file(b"ok.txt", b"aman"),
                    c.file(b"../../escaped", b"pwned"),
                ],
                vec![],
            )
        },
        "escaped",
    );
}

#[test]
fn name_with_slashes_is_refused() {
    assert_refused(
        "file sub/../../../escaped",
        |c, _| {
            (
                vec![
                    c.file(b"ok.txt", b"aman"),
                    c.file(b"sub/../../../escaped", b"pwned"),
                ],
                vec![],
            )
        },
        "escaped",
    );
}

#[test]
fn absolute_file_name_is_refused() {
    assert_refused(
        "absolute file name",
        |c, tmp| {
            (
                vec![
                    c.file(b"ok.txt", b"aman"),
                    c.file(&abs_escape(tmp), b"pwned"),
                ],
                vec![],
            )
        },
        "escaped",
    );
}

#[test]
fn absolute_dir_name_is_refused() {
    assert_refused(
        "absolute directory name",
        |c, tmp| {
            let inner = vec![c.file(b"escaped", b"pwned")];
            (
                vec![
                    c.file(b"ok.txt", b"aman"),
                    c.dir(format!("{}", tmp.display()).as_bytes(), inner),
                ],
                vec![],
            )
        },
        "",
    );
}

#[test]
fn nul_in_name_is_refused() {
    assert_refused(
        "name with NUL",
        |c, _| {
            (
                vec![
                    c.file(b"ok.txt", b"aman"),
                    c.file(b"escaped\0nul", b"pwned"),
                ],
                vec![],
            )
        },
        "escaped",
    );
}

#[test]
fn dot_dot_directories_are_refused() {
    assert_refused(
        "directories named ..",
        |c, _| {
            let deepest = vec![c.file(b"escaped", b"pwned")];
            let up2 = vec![c.dir(b"..", deepest)];
            (vec![c.file(b"ok.txt", b"aman"), c.dir(b"..", up2)], vec![])
        },
        "..",
    );
}

#[test]
fn dot_dot_at_the_root_is_refused() {
    assert_refused(
        "directory .. in the root tree",
        |c, _| {
            let up = vec![c.file(b"escaped", b"pwned")];
            (vec![c.file(b"ok.txt", b"aman")], vec![c.dir(b"..", up)])
        },
        "..",
    );
}

#[test]
fn dot_and_empty_names_are_refused() {
    assert_refused(
        "directory .",
        |c, _| {
            let inner = vec![c.file(b"x", b"x")];
            (vec![c.file(b"ok.txt", b"aman"), c.dir(b".", inner)], vec![])
        },
        "",
    );
    assert_refused(
        "empty file name",
        |c, _| (vec![c.file(b"ok.txt", b"aman"), c.file(b"", b"x")], vec![]),
        "",
    );
}

#[test]
fn symlink_then_directory_of_the_same_name_is_refused() {
    // A naive restore creates the link, then writes the directory's files
    // through it.
    for (what, link) in [
        ("absolute link", None),
        ("relative link", Some(&b"../../outside"[..])),
    ] {
        assert_refused(
            what,
            |c, tmp| {
                let abs = format!("{}/outside", tmp.display()).into_bytes();
                let inner = vec![c.file(b"pwned", b"pwned")];
                let nodes = vec![
                    c.file(b"ok.txt", b"aman"),
                    symlink(b"link", link.unwrap_or(&abs[..])),
                    c.dir(b"link", inner),
                ];
                (nodes, vec![])
            },
            "link",
        );
    }
}

#[test]
fn symlink_then_file_of_the_same_name_is_refused() {
    assert_refused(
        "symlink then file",
        |c, tmp| {
            let abs = format!("{}/outside/pwned", tmp.display()).into_bytes();
            (
                vec![symlink(b"dup", &abs), c.file(b"dup", b"pwned")],
                vec![],
            )
        },
        "dup",
    );
}

// ---------------------------------------------------------------------------
// Operator mistakes: one line, no panic.

/// Runs with backtraces enabled, so a panic or a debug-printed error would show.
fn run_bt(args: &[&str], passphrase: Option<&str>) -> Output {
    let mut c = cadang(args);
    c.env("RUST_BACKTRACE", "1");
    if let Some(p) = passphrase {
        c.env("CADANG_PASSPHRASE", p);
    }
    c.output().unwrap()
}

/// Exit ≠ 0 and exactly one line `error: ...` holding every keyword.
fn one_line_error(what: &str, out: &Output, keywords: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.code().is_some(),
        "{what}: died: {:?}\n{err}",
        out.status
    );
    assert_ne!(out.status.code(), Some(0), "{what}: succeeded\n{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: stderr is not one line:\n{err}"
    );
    assert!(err.starts_with("error: "), "{what}: {err}");
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE", "Error {", "Os {"] {
        assert!(!err.contains(bad), "{what}: stderr contains {bad:?}: {err}");
    }
    for k in keywords {
        assert!(
            err.contains(k),
            "{what}: stderr does not mention {k:?}: {err}"
        );
    }
    err
}

#[test]
fn operator_mistakes_give_one_line() {
    let t = TestRepo::new();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), b"a").unwrap();
    t.backup(&[&src], &[]);
    let repo = s(&t.repo);
    let target = t.path("target");

    // Wrong passphrase.
    let out = run_bt(
        &["restore", "--repo", repo, "latest", "--target", s(&target)],
        Some("salah sekali kata sandinya"),
    );
    one_line_error("wrong passphrase", &out, &["wrong passphrase"]);

    // A repository path that does not exist.
    let missing = t.path("no-such-store");
    for args in [
        vec!["snapshots", "--repo", s(&missing)],
        vec!["ls", "--repo", s(&missing), "latest"],
        vec![
            "backup",
            "--repo",
            s(&missing),
            "--credentials",
            s(&t.creds),
            "--cache-dir",
            s(&t.cache),
            s(&src),
        ],
    ] {
        let out = run_bt(&args, None);
        one_line_error(
            &format!("missing store ({})", args[0]),
            &out,
            &["no-such-store", "does not exist"],
        );
    }
    assert!(
        !missing.exists(),
        "a reading command created the missing store"
    );

    // A path that exists but is not a repository: an empty directory, a file.
    let empty = t.path("empty-dir");
    fs::create_dir(&empty).unwrap();
    let out = run_bt(&["snapshots", "--repo", s(&empty)], None);
    one_line_error(
        "empty directory",
        &out,
        &["empty-dir", "not a cadang repository"],
    );
    let file = t.path("plain-file");
    fs::write(&file, b"bukan repositori").unwrap();
    let out = run_bt(&["snapshots", "--repo", s(&file)], None);
    let err = one_line_error("a plain file", &out, &["plain-file", "not a"]);
    assert!(
        !err.contains("does not exist"),
        "the file exists; the message says otherwise: {err}"
    );

    // Unknown snapshot ids.
    for id in ["deadbeef", "tidak-ada"] {
        let out = run_bt(&["ls", "--repo", repo, id], None);
        one_line_error("unknown snapshot", &out, &["no snapshot matches", id]);
        let out = run_bt(
            &["restore", "--repo", repo, id, "--target", s(&target)],
            None,
        );
        one_line_error(
            "unknown snapshot (restore)",
            &out,
            &["no snapshot matches", id],
        );
    }

    // A corrupt credential file.
    let corrupt = t.path("corrupt.credentials");
    fs::write(
        &corrupt,
        b"{\"format\": \"cadang-agent-credentials\", \"version\": 1, \"repo_id\": \"zz",
    )
    .unwrap();
    let out = run_bt(
        &[
            "backup",
            "--repo",
            repo,
            "--credentials",
            s(&corrupt),
            "--cache-dir",
            s(&t.cache),
            s(&src),
        ],
        None,
    );
    one_line_error(
        "corrupt credentials",
        &out,
        &["corrupt.credentials", "credential file"],
    );
    let out = run_bt(
        &[
            "backup",
            "--repo",
            repo,
            "--credentials",
            s(&t.path("absent.credentials")),
            s(&src),
        ],
        None,
    );
    one_line_error("missing credentials", &out, &["absent.credentials"]);
    // Another repository's credentials.
    let other = TestRepo::new();
    let out = run_bt(
        &[
            "backup",
            "--repo",
            repo,
            "--credentials",
            s(&other.creds),
            "--cache-dir",
            s(&t.cache),
            s(&src),
        ],
        None,
    );
    one_line_error(
        "foreign credentials",
        &out,
        &["credential file", "belongs to"],
    );
    assert_eq!(
        t.snapshots().as_array().unwrap().len(),
        1,
        "a failed backup wrote a snapshot"
    );

    // repo init over an existing credential file, or an existing repository.
    let new_repo = t.path("new-repo");
    let out = run_bt(
        &[
            "repo",
            "init",
            "--repo",
            s(&new_repo),
            "--pd",
            "DINSOS",
            "--agent-credentials",
            s(&t.creds),
        ],
        None,
    );
    one_line_error(
        "existing credential file",
        &out,
        &["agent.credentials", "already exists"],
    );
    assert!(
        !new_repo.join("config").exists(),
        "init created a repository despite refusing"
    );
    let out = run_bt(
        &[
            "repo",
            "init",
            "--repo",
            repo,
            "--pd",
            "DINSOS",
            "--agent-credentials",
            s(&t.path("x.credentials")),
        ],
        None,
    );
    one_line_error("existing repository", &out, &["already exists"]);
    assert!(
        !t.path("x.credentials").exists(),
        "init wrote credentials for a repository it did not create"
    );
}

#[test]
fn help_and_usage_errors() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "repo",
        "backup",
        "snapshots",
        "ls",
        "dump",
        "restore",
        "check",
        "forget",
        "prune",
    ] {
        assert!(text.contains(cmd), "--help does not list {cmd}: {text}");
    }
    // Secrets never on the command line: no command takes one as an option.
    for cmd in [
        &["repo", "init"][..],
        &["repo", "export-identity"][..],
        &["repo", "add-agent"][..],
        &["backup"][..],
        &["snapshots"][..],
        &["ls"][..],
        &["dump"][..],
        &["restore"][..],
        &["check"][..],
        &["forget"][..],
        &["prune"][..],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = run(&args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        for secret in ["--passphrase", "--password", "--secret", "--access-key"] {
            assert!(!text.contains(secret), "{args:?} offers {secret}: {text}");
        }
    }
    let out = run(&["backup", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--repo",
        "--credentials",
        "--stdin-name",
        "--stdin-from",
        "--exclude",
        "--no-cache",
    ] {
        assert!(text.contains(flag), "backup --help does not show {flag}");
    }
    for args in [
        &["backup", "--no-such-flag"][..],
        &["frobnicate"][..],
        &["restore", "--repo", "/nonexistent"][..],
        &[
            "backup",
            "--repo",
            "r",
            "--credentials",
            "c",
            "--stdin-from",
            "true",
            "/x",
        ][..],
    ] {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
