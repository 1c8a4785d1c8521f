//! Ctrl-C of a CLI backup (real processes): SIGINT stops it at a safe
//! point, exit 130, no lock file stays in the store, the repository checks
//! clean, and the next backup reuses what the interrupted one uploaded.
//!
//! The signal lands at the backup's most exposed moment, deterministically:
//! the test hook `CADANG_TEST_HOLD_BEFORE_COMMIT` holds the backup after its
//! packs are uploaded and before it commits (its last index, then its
//! snapshot).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use common::*;

const MIB: usize = 1024 * 1024;

/// A source of a few MiB (several chunks, at least one pack).
fn source(t: &TestRepo) -> PathBuf {
    let src = t.path("src");
    fs::create_dir_all(src.join("arsip")).unwrap();
    fs::write(src.join("arsip/besar.bin"), noise(3 * MIB, 7)).unwrap();
    fs::write(src.join("laporan.txt"), b"laporan keuangan daerah 2026").unwrap();
    src
}

/// Starts `cadang backup` held before its commit; returns once it waits there.
fn held_backup(t: &TestRepo, src: &Path, hold: &Path) -> Child {
    fs::write(hold, b"").unwrap();
    let mut child = cadang(&t.backup_args(&[src], &[]))
        .env("CADANG_TEST_HOLD_BEFORE_COMMIT", hold)
        .stdout(fs::File::create(t.path("stdout")).unwrap())
        .stderr(fs::File::create(t.path("stderr")).unwrap())
        .spawn()
        .expect("cadang starts");
    let waiting = hold.with_extension("waiting");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !waiting.exists() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("backup ended ({st}) before reaching its commit");
        }
        assert!(Instant::now() < deadline, "backup never reached its commit");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(r, 0, "kill({}, {sig})", child.id());
}

/// Waits until the backup said it received the signal (its stderr), so the
/// test knows the stop is in force before it lets the backup go on.
fn await_ack(t: &TestRepo) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fs::read_to_string(t.path("stderr"))
        .unwrap_or_default()
        .contains("SIGINT received")
    {
        assert!(
            Instant::now() < deadline,
            "the backup never acknowledged SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the child (bounded), with its output.
fn wait(t: &TestRepo, mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: did not end within 60 s of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: fs::read(t.path("stdout")).unwrap(),
        stderr: fs::read(t.path("stderr")).unwrap(),
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// What an interrupted backup must leave: no lock, no snapshot, a clean check.
fn assert_interrupted_cleanly(t: &TestRepo, out: &Output) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(130), "SIGINT gives exit 130\n{all}");
    assert!(!all.contains("panicked"), "{all}");
    assert!(all.contains("interrupted"), "the operator is told\n{all}");
    assert!(
        names(&t.repo.join("locks")).is_empty(),
        "no lock file may stay behind: {:?}",
        names(&t.repo.join("locks"))
    );
    assert!(
        names(&t.repo.join("snapshots")).is_empty(),
        "the held backup never committed its snapshot"
    );
    let check = t.check(&["--read-data"]);
    assert!(
        check.status.success(),
        "check after Ctrl-C\n{}",
        text(&check)
    );
}

#[test]
fn sigint_mid_backup_releases_the_lock_and_leaves_a_sound_repository() {
    let t = TestRepo::new();
    let src = source(&t);
    let hold = t.path("hold");
    let child = held_backup(&t, &src, &hold);
    assert_eq!(
        names(&t.repo.join("locks")).len(),
        1,
        "the running backup holds its lock"
    );
    assert!(
        !names(&t.repo.join("packs")).is_empty(),
        "held after its packs were uploaded"
    );
    signal(&child, libc::SIGINT);
    // Released only once the stop is in force: the backup's next store
    // operation (the snapshot write) is the safe point where it stops.
    await_ack(&t);
    fs::remove_file(&hold).unwrap();
    let out = wait(&t, child, "interrupted backup");
    assert_interrupted_cleanly(&t, &out);

    // The next run completes and reuses the uploaded chunks.
    let again = t.backup(&[&src], &[]);
    assert!(
        again["added_bytes"].as_u64().unwrap() < MIB as u64,
        "the interrupted backup's packs are reused: {again}"
    );
    assert!(t.check(&["--read-data"]).status.success());
}

#[test]
fn a_second_sigint_stops_at_once_and_still_removes_the_lock() {
    let t = TestRepo::new();
    let src = source(&t);
    let hold = t.path("hold");
    let child = held_backup(&t, &src, &hold);
    signal(&child, libc::SIGINT);
    // The hold keeps the backup from reaching a store operation: only the
    // second signal can end it.
    await_ack(&t);
    signal(&child, libc::SIGINT);
    let out = wait(&t, child, "twice-interrupted backup");
    let _ = fs::remove_file(&hold);
    assert_interrupted_cleanly(&t, &out);
}

#[test]
fn sigint_mid_replication_stops_it_and_the_next_run_completes_a_sound_copy() {
    let t = TestRepo::new();
    let src = source(&t);
    t.backup(&[&src], &[]);
    let dr = t.path("dr");
    // 1 MiB/s: the ~3 MiB pack takes seconds to go, so the signal lands
    // while it is being paced, before it is written.
    let child = cadang(&[
        "replicate",
        "--from",
        s(&t.repo),
        "--to",
        s(&dr),
        "--bwlimit",
        "1MiB/s",
    ])
    .stdout(fs::File::create(t.path("stdout")).unwrap())
    .stderr(fs::File::create(t.path("stderr")).unwrap())
    .spawn()
    .expect("cadang starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dr.join("config").exists() {
        assert!(Instant::now() < deadline, "replication never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, libc::SIGINT);
    await_ack(&t);
    let out = wait(&t, child, "interrupted replication");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(130), "{all}");
    assert!(all.contains("replication was interrupted"), "{all}");
    assert!(
        names(&dr.join("snapshots")).is_empty(),
        "stopped before the snapshot: {all}"
    );

    ok(&["replicate", "--from", s(&t.repo), "--to", s(&dr)]);
    let check = run(&["check", "--repo", s(&dr), "--read-data"]);
    assert!(
        check.status.success(),
        "the DR copy checks clean\n{}",
        text(&check)
    );
    assert_eq!(names(&dr.join("snapshots")).len(), 1);
}
