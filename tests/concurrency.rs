//! Backups, forget and prune running at the same time on one repository:
//! every backup succeeds, nothing a backup needs is deleted, and the
//! repository stays sound.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cadang_core::snapshot::Snapshot;
use common::*;
use serde_json::Value;

const MIB: usize = 1024 * 1024;

fn spawn_backup(t: &TestRepo, src: &Path, extra: &[&str], hold: Option<&Path>) -> Child {
    let mut cmd = cadang(&t.backup_args(&[src], extra));
    if let Some(h) = hold {
        cmd.env("CADANG_TEST_HOLD_BEFORE_COMMIT", h);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cadang starts")
}

/// Waits for `child` (at most `limit`), killing it on timeout.
fn finish(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{what}: did not finish within {limit:?}\n{}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Requires a successful `backup --json` and returns the snapshot id.
fn snapshot_of(out: &Output, what: &str) -> (String, Value) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: the backup must succeed\n{}",
        text(out)
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: backup --json ({e})\n{}", text(out)));
    (v["snapshot"].as_str().expect("snapshot id").to_string(), v)
}

/// Waits until the held backup reports it is waiting before its commit.
fn wait_until_held(waiting: &Path, child: &mut Child, what: &str) {
    let start = Instant::now();
    while !waiting.exists() {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!(
                "{what}: the backup exited ({st:?}) instead of holding before its commit\n{err}"
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what}: {} never appeared",
            waiting.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn visible_names(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().into_string().unwrap();
            if name.starts_with('.') {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(name);
            }
        }
    }
    out
}

fn pack_names(t: &TestRepo) -> BTreeSet<String> {
    visible_names(&t.repo.join("packs"))
}

/// The packs a snapshot lists (keyless, from its file).
fn snapshot_packs(t: &TestRepo, id: &str) -> BTreeSet<String> {
    let data = fs::read(t.repo.join("snapshots").join(id))
        .unwrap_or_else(|e| panic!("snapshot {id}: {e}"));
    Snapshot::parse(id, &data)
        .expect("snapshot parses")
        .payload
        .packs
        .iter()
        .map(|p| p.to_hex())
        .collect()
}

fn check_read_data(t: &TestRepo, what: &str) {
    let out = t.check(&["--read-data"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: check --read-data must pass\n{}",
        text(&out)
    );
}

fn assert_restores(t: &TestRepo, id: &str, src: &Path, listing: &[String], what: &str) {
    let target = t.path(&format!("restore-{}", &id[..12]));
    t.restore(id, &target);
    assert_eq!(
        tree_listing(&restored(&target, src)),
        listing,
        "{what}: snapshot {id} does not restore {} exactly",
        src.display()
    );
    fs::remove_dir_all(&target).unwrap();
}

fn small_files(dir: &Path, count: u64, seed: u64) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        fs::write(
            dir.join(format!("f{i:03}.txt")),
            noise(64 + ((seed + i) as usize * 131) % 5000, seed + i),
        )
        .unwrap();
    }
}

#[test]
fn two_backups_at_the_same_time_both_succeed() {
    let t = TestRepo::new();
    let s1 = t.path("host-a");
    let s2 = t.path("host-b");
    for (dir, own) in [(&s1, 1u64), (&s2, 2u64)] {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("shared.bin"), noise(6 * MIB, 21)).unwrap();
        small_files(&dir.join("common"), 40, 5_000);
        fs::write(
            dir.join(format!("only-{own}.bin")),
            noise(5 * MIB, 30 + own),
        )
        .unwrap();
        small_files(&dir.join(format!("own-{own}")), 20, 6_000 * own);
    }

    let mut snapshots = BTreeSet::new();
    for round in 0..2 {
        if round == 1 {
            fs::write(s1.join("later-1.bin"), noise(2 * MIB, 41)).unwrap();
            fs::write(s2.join("later-2.bin"), noise(2 * MIB, 42)).unwrap();
            fs::write(s2.join("shared-later.bin"), noise(MIB, 43)).unwrap();
            fs::write(s1.join("shared-later.bin"), noise(MIB, 43)).unwrap();
        }
        let l1 = tree_listing(&s1);
        let l2 = tree_listing(&s2);
        // Round 0: both run freely. Round 1: both are held before their
        // commit until both are waiting, so their sessions surely overlap
        // and they commit together.
        let (h1, h2) = (t.path("hold-1"), t.path("hold-2"));
        let (mut c1, mut c2) = if round == 0 {
            (
                spawn_backup(&t, &s1, &[], None),
                spawn_backup(&t, &s2, &[], None),
            )
        } else {
            fs::write(&h1, b"").unwrap();
            fs::write(&h2, b"").unwrap();
            (
                spawn_backup(&t, &s1, &[], Some(&h1)),
                spawn_backup(&t, &s2, &[], Some(&h2)),
            )
        };
        if round == 1 {
            wait_until_held(&t.path("hold-1.waiting"), &mut c1, "backup 1");
            wait_until_held(&t.path("hold-2.waiting"), &mut c2, "backup 2");
            fs::remove_file(&h1).unwrap();
            fs::remove_file(&h2).unwrap();
        }
        let o1 = finish(c1, Duration::from_secs(180), "backup 1");
        let o2 = finish(c2, Duration::from_secs(180), "backup 2");
        let (id1, _) = snapshot_of(&o1, &format!("round {round} backup 1"));
        let (id2, _) = snapshot_of(&o2, &format!("round {round} backup 2"));
        assert_ne!(id1, id2);
        snapshots.insert(id1.clone());
        snapshots.insert(id2.clone());

        let listed: BTreeSet<String> = t
            .snapshots()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            listed, snapshots,
            "round {round}: every backup left exactly its snapshot"
        );
        assert!(
            visible_names(&t.repo.join("locks")).is_empty(),
            "round {round}: both backups released their locks"
        );
        check_read_data(&t, &format!("round {round}"));
        assert_restores(&t, &id1, &s1, &l1, &format!("round {round} backup 1"));
        assert_restores(&t, &id2, &s2, &l2, &format!("round {round} backup 2"));
    }
}

/// Deterministic: a backup is held right before its commit, after it has
/// deduplicated against snapshot A's packs; A is forgotten and pruned. The
/// prune must defer (the held backup has not seen its mark), the backup must
/// commit a sound snapshot, and a later prune deletes only what A alone used.
#[test]
fn forget_and_prune_beside_a_held_backup_keep_what_it_needs() {
    let t = TestRepo::new();
    let s1 = t.path("s1");
    let s2 = t.path("s2");
    let shared = |dir: &Path| {
        fs::write(dir.join("m-shared-1.bin"), noise(6 * MIB, 2)).unwrap();
        fs::write(dir.join("m-shared-2.bin"), noise(4 * MIB, 3)).unwrap();
        small_files(&dir.join("m-docs"), 60, 7_000);
    };
    // S1 = 34 MiB of its own (sorted first, so it fills packs of its own)
    // plus the shared content.
    fs::create_dir_all(&s1).unwrap();
    fs::write(s1.join("a-only-s1.bin"), noise(34 * MIB, 1)).unwrap();
    shared(&s1);
    let (a, _) = snapshot_of(
        &run(&t.backup_args(&[&s1], &["--no-cache"])),
        "backup A of S1",
    );
    let a_packs = snapshot_packs(&t, &a);

    // S2 = the shared content plus a little of its own.
    fs::create_dir_all(&s2).unwrap();
    shared(&s2);
    fs::write(s2.join("z-only-s2.bin"), noise(3 * MIB, 4)).unwrap();
    let listing2 = tree_listing(&s2);

    // C: same host and path as A (so the same retention group), newer, tiny.
    fs::remove_dir_all(&s1).unwrap();
    fs::create_dir_all(&s1).unwrap();
    fs::write(s1.join("tiny.txt"), b"kecil\n").unwrap();
    let listing_c = tree_listing(&s1);
    let (c, _) = snapshot_of(
        &run(&t.backup_args(&[&s1], &["--no-cache"])),
        "backup C of S1",
    );

    // The S2 backup, held before its commit.
    let hold = t.path("hold");
    let waiting = t.path("hold.waiting");
    fs::write(&hold, b"").unwrap();
    let mut child = spawn_backup(&t, &s2, &["--no-cache"], Some(&hold));
    wait_until_held(&waiting, &mut child, "S2 backup");
    let before = pack_names(&t);

    let out = run(&[
        "forget",
        "--repo",
        s(&t.repo),
        "--keep-last",
        "1",
        "--prune",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "forget --prune beside the held backup\n{}",
        text(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("forget --json");
    let decision = |id: &str| {
        report["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap_or_else(|| panic!("no decision for {id}: {report}"))["keep"]
            .as_bool()
            .unwrap()
    };
    assert!(!decision(&a), "A must be removed: {report}");
    assert!(decision(&c), "C must be kept: {report}");
    assert!(
        !t.repo.join("snapshots").join(&a).exists(),
        "forget deleted A's snapshot file"
    );
    let prune = &report["prune"];
    assert!(
        prune["newly_marked"].as_u64().unwrap() >= 1,
        "A's packs are marked: {report}"
    );
    assert!(
        prune["deferred_marks"].as_u64().unwrap() >= 1,
        "the held backup has not seen the mark: the sweep must be deferred: {report}"
    );
    assert_eq!(
        prune["deleted_packs"].as_u64(),
        Some(0),
        "nothing may be deleted while the backup is held: {report}"
    );
    let after = pack_names(&t);
    let lost: Vec<_> = before.difference(&after).collect();
    assert!(
        lost.is_empty(),
        "prune deleted packs while a backup was held: {lost:?}"
    );

    // The text form names the deferral and the backup holding it up.
    let out = run(&["prune", "--repo", s(&t.repo)]);
    assert!(
        out.status.success(),
        "prune beside the held backup\n{}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("kept until running backups finish"),
        "prune must report the deferred mark\n{}",
        text(&out)
    );
    assert!(
        stdout.contains(&format!("pid {}", child.id())),
        "prune must name the held backup (pid {})\n{}",
        child.id(),
        text(&out)
    );
    let now = pack_names(&t);
    let lost: Vec<_> = before.difference(&now).collect();
    assert!(
        lost.is_empty(),
        "the second prune deleted packs while a backup was held: {lost:?}"
    );

    fs::remove_file(&hold).unwrap();
    let out = finish(child, Duration::from_secs(120), "S2 backup");
    let (b, summary) = snapshot_of(&out, "the held S2 backup after prune");
    assert!(!waiting.exists(), "the backup removes its .waiting file");
    let b_packs = snapshot_packs(&t, &b);
    let c_packs = snapshot_packs(&t, &c);
    // The premise: S2 really deduplicated against A's packs.
    assert!(
        !b_packs.is_disjoint(&a_packs),
        "S2's snapshot uses none of A's packs: the test does not exercise the hazard"
    );
    let added = summary["added_bytes"].as_u64().unwrap();
    assert!(added < 8 * MIB as u64, "S2 should deduplicate its 10 MiB of shared data against A, but added {added} bytes: {summary}");
    check_read_data(&t, "after the held backup committed");
    assert_restores(&t, &b, &s2, &listing2, "S2 right after its commit");

    // Now the mark can be swept: exactly the packs only A used go.
    let a_only: BTreeSet<String> = a_packs
        .difference(&b_packs)
        .filter(|p| !c_packs.contains(*p))
        .cloned()
        .collect();
    let pack_size = |name: &str| {
        fs::metadata(t.repo.join("packs").join(&name[..2]).join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let a_only_bytes: u64 = a_only.iter().map(|p| pack_size(p)).sum();
    // One worker gets at least half of the 34 MiB only S1 has, which fills a
    // 16 MiB pack before any shared chunk arrives.
    assert!(
        a_only_bytes >= 15 * MIB as u64,
        "A should have packs of its own (34 MiB only in S1): {a_only:?}, {a_only_bytes} bytes"
    );
    let size_before = t.size();
    let out = run(&["prune", "--repo", s(&t.repo), "--json"]);
    assert!(
        out.status.success(),
        "prune after the backup\n{}",
        text(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("prune --json");
    assert_eq!(report["deferred_marks"].as_u64(), Some(0), "{report}");
    assert!(
        report["deleted_packs"].as_u64().unwrap() >= a_only.len() as u64,
        "{report}"
    );
    let now = pack_names(&t);
    let kept: Vec<_> = a_only.intersection(&now).collect();
    assert!(
        kept.is_empty(),
        "packs only A used survived prune: {kept:?} ({report})"
    );
    let lost: Vec<_> = b_packs
        .union(&c_packs)
        .filter(|p| !now.contains(*p))
        .collect();
    assert!(
        lost.is_empty(),
        "prune deleted packs a snapshot needs: {lost:?}"
    );
    assert!(
        t.size() + a_only_bytes <= size_before,
        "the repository must shrink by A's own packs ({a_only_bytes} bytes): {size_before} -> {}",
        t.size()
    );
    assert!(
        visible_names(&t.repo.join("pending")).is_empty(),
        "every mark was swept"
    );
    check_read_data(&t, "after the final prune");
    assert_restores(&t, &b, &s2, &listing2, "S2 after the final prune");
    assert_restores(&t, &c, &s1, &listing_c, "C after the final prune");
}

/// Sets its flag when dropped, also while a panic unwinds.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Not hooked: backups of a changing directory one after another while
/// `forget --keep-last 1 --prune` runs over and over beside them.
#[test]
fn forget_prune_loop_beside_backups() {
    let t = TestRepo::new();
    let dir = t.path("live");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..3u64 {
        fs::write(dir.join(format!("big-{i}.bin")), noise(2 * MIB, 300 + i)).unwrap();
    }
    small_files(&dir.join("docs"), 40, 8_000);

    let done = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = (String::new(), Vec::new());
    let (prunes, deleted) = std::thread::scope(|sc| {
        let pruner = sc.spawn(|| {
            let (mut runs, mut deleted) = (0u64, 0u64);
            while !done.load(Ordering::SeqCst) {
                let out = run(&[
                    "forget",
                    "--repo",
                    s(&t.repo),
                    "--keep-last",
                    "1",
                    "--prune",
                    "--json",
                ]);
                if !out.status.success() {
                    done.store(true, Ordering::SeqCst);
                    panic!("forget --prune beside backups failed\n{}", text(&out));
                }
                let v: Value = serde_json::from_slice(&out.stdout).expect("forget --json");
                deleted += v["prune"]["deleted_packs"].as_u64().unwrap();
                runs += 1;
                std::thread::sleep(Duration::from_millis(30));
            }
            (runs, deleted)
        });
        // A failed backup or restore below panics out of this closure; the
        // scope then waits for the pruner, which must see `done` or the
        // failure becomes a hang instead of a report.
        let _stop_pruner = StopOnDrop(&done);
        for i in 0..8u64 {
            if done.load(Ordering::SeqCst) || Instant::now() > deadline {
                break;
            }
            fs::write(
                dir.join(format!("big-{}.bin", i % 3)),
                noise(2 * MIB + i as usize * 1_001, 400 + i),
            )
            .unwrap();
            fs::write(dir.join(format!("new-{i}.bin")), noise(MIB, 500 + i)).unwrap();
            if i >= 2 {
                fs::remove_file(dir.join(format!("new-{}.bin", i - 2))).unwrap();
            }
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(dir.join("docs").join(format!("f{i:03}.txt")))
                .unwrap();
            std::io::Write::write_all(&mut f, &noise(777, 600 + i)).unwrap();
            drop(f);
            let listing = tree_listing(&dir);
            let extra: &[&str] = if i % 2 == 0 { &[] } else { &["--no-cache"] };
            let out = run(&t.backup_args(&[&dir], extra));
            if !out.status.success() {
                done.store(true, Ordering::SeqCst);
            }
            let (id, _) = snapshot_of(&out, &format!("backup {i} beside forget --prune"));
            // The newest snapshot is never forgotten: restore it while prune goes on.
            assert_restores(
                &t,
                &id,
                &dir,
                &listing,
                &format!("backup {i}, restored beside forget --prune"),
            );
            last = (id, listing);
        }
        done.store(true, Ordering::SeqCst);
        pruner.join().expect("the prune loop")
    });
    eprintln!("{prunes} forget --prune runs deleted {deleted} packs beside the backups");
    assert!(
        prunes >= 3,
        "forget --prune ran only {prunes} times beside the backups"
    );
    assert!(
        deleted >= 1,
        "the prune loop never deleted anything: the test exercised nothing"
    );

    check_read_data(&t, "after the loop");
    ok(&[
        "forget",
        "--repo",
        s(&t.repo),
        "--keep-last",
        "1",
        "--prune",
    ]);
    let snaps = t.snapshots();
    let ids: Vec<&str> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![last.0.as_str()],
        "only the last backup's snapshot remains"
    );
    check_read_data(&t, "after the final forget --prune");
    let target = t.path("final");
    t.restore("latest", &target);
    assert_eq!(
        tree_listing(&restored(&target, &dir)),
        last.1,
        "the latest snapshot restores the directory exactly"
    );
}
