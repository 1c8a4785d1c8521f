//! `kill -9` of a backup at many points leaves a repository that passes
//! `check --read-data`, whose visible files are all whole, and from which the
//! next backup completes, reusing what the killed one uploaded.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const MIB: usize = 1024 * 1024;
const SIGKILL: i32 = 9;

/// ~60 MiB of incompressible data in four files plus 300 small files.
fn make_source(root: &Path) {
    fs::create_dir_all(root).unwrap();
    for i in 0..4u64 {
        fs::write(
            root.join(format!("big-{i}.bin")),
            noise(15 * MIB + i as usize * 4099, 100 + i),
        )
        .unwrap();
    }
    for d in 0..6u64 {
        let dir = root.join(format!("dir-{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..50u64 {
            let n = d * 50 + f;
            fs::write(
                dir.join(format!("small-{f:02}.dat")),
                noise(100 + (n as usize * 37) % 6000, 1_000 + n),
            )
            .unwrap();
        }
    }
    fs::write(root.join("empty"), b"").unwrap();
}

/// Visible (non-hidden) files under `dir`, recursively, by name.
fn visible_files(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().into_string().unwrap();
            if name.starts_with('.') {
                continue;
            }
            match e.file_type() {
                Ok(ft) if ft.is_dir() => stack.push(e.path()),
                Ok(_) => {
                    out.insert(name, e.path());
                }
                Err(_) => {}
            }
        }
    }
    out
}

fn pack_count(repo: &Path) -> usize {
    visible_files(&repo.join("packs")).len()
}

/// No visible file is partial: packs, index files and snapshots hash to
/// their names, locks and marks are whole JSON. Returns the packs and sizes.
fn assert_files_whole(repo: &Path, what: &str) -> BTreeMap<String, u64> {
    let mut packs = BTreeMap::new();
    for kind in ["packs", "index", "snapshots"] {
        for (name, path) in visible_files(&repo.join(kind)) {
            let data = fs::read(&path).unwrap();
            assert_eq!(
                blake3::hash(&data).to_hex().as_str(),
                name,
                "{what}: {} ({} bytes) does not hash to its name: a partial file is visible",
                path.display(),
                data.len()
            );
            if kind == "packs" {
                packs.insert(name, data.len() as u64);
            }
        }
    }
    for kind in ["locks", "pending"] {
        for (_, path) in visible_files(&repo.join(kind)) {
            let data = fs::read(&path).unwrap();
            assert!(
                serde_json::from_slice::<Value>(&data).is_ok(),
                "{what}: {} is not whole JSON: {:?}",
                path.display(),
                String::from_utf8_lossy(&data)
            );
        }
    }
    packs
}

#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// Kill this long after the start.
    After(Duration),
    /// Kill as soon as this many packs are visible in the repository.
    Packs(usize),
}

#[derive(Debug)]
struct Killed {
    /// The backup finished before the kill landed.
    finished: bool,
    at: Duration,
}

/// Starts a backup and kills it (SIGKILL) when `trigger` fires.
fn backup_and_kill(t: &TestRepo, src: &Path, no_cache: bool, trigger: Trigger) -> Killed {
    let mut child = cadang(&t.backup_args(&[src], no_cache_flag(no_cache)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cadang starts");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "backup failed on its own before the kill: {status:?}"
            );
            return Killed {
                finished: true,
                at: start.elapsed(),
            };
        }
        let fire = match trigger {
            Trigger::After(d) => start.elapsed() >= d,
            Trigger::Packs(n) => pack_count(&t.repo) >= n,
        };
        if fire {
            child.kill().expect("SIGKILL");
            let at = start.elapsed();
            let status = child.wait().unwrap();
            return match status.signal() {
                Some(SIGKILL) => Killed {
                    finished: false,
                    at,
                },
                _ => {
                    assert!(status.success(), "backup failed on its own: {status:?}");
                    Killed { finished: true, at }
                }
            };
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "backup neither finished nor reached its kill point in 300 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
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

#[test]
fn kill_9_during_backup_leaves_a_sound_repository_and_the_next_backup_reuses_uploads() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_source(&src);
    let listing = tree_listing(&src);

    // An uninterrupted run on a separate repository: duration and full size.
    let reference = TestRepo::new();
    let started = Instant::now();
    let out = cadang(&reference.backup_args(&[&src], &["--no-cache"]))
        .output()
        .unwrap();
    let duration = started.elapsed();
    assert!(out.status.success(), "reference backup\n{}", text(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("backup --json");
    let full = summary["added_bytes"].as_u64().expect("added_bytes");
    let full_packs = pack_count(&reference.repo);
    assert!(
        full >= 60 * MIB as u64,
        "the reference backup stored everything: {summary}"
    );
    assert!(
        full_packs >= 4,
        "the source fills several packs: {full_packs}"
    );
    drop(reference);
    eprintln!("reference backup: {duration:?}, {full} bytes in {full_packs} packs");

    // Kill points spread from 20 ms to 90% of the uninterrupted duration,
    // plus kills keyed to the number of uploaded packs (one followed by a
    // second kill of the next backup). Some runs use the file cache.
    let frac = |f: f64| Trigger::After(Duration::from_millis(20).max(duration.mul_f64(f)));
    let runs: Vec<(Trigger, Option<Trigger>, bool)> = vec![
        (Trigger::After(Duration::from_millis(20)), None, true),
        (frac(0.3), None, false),
        (frac(0.55), None, true),
        (frac(0.75), None, false),
        (frac(0.9), None, true),
        (Trigger::Packs(1), None, true),
        (Trigger::Packs(2), None, false),
        (Trigger::Packs(3), Some(frac(0.3)), true),
        (Trigger::Packs(4), None, true),
    ];

    let mut killed_runs = 0;
    let mut reuse_asserted = 0;
    for (i, (trigger, second, no_cache)) in runs.into_iter().enumerate() {
        let t = TestRepo::new();
        let what = format!("run {i} ({trigger:?}, no_cache={no_cache})");
        let k = backup_and_kill(&t, &src, no_cache, trigger);
        let mut packs = assert_files_whole(&t.repo, &format!("{what} after the kill"));
        eprintln!(
            "{what}: killed={} at {:?}, {} packs visible",
            !k.finished,
            k.at,
            packs.len()
        );
        if !k.finished {
            killed_runs += 1;
        }
        check_read_data(&t, &format!("{what} after the kill"));
        if let Some(second) = second {
            let k2 = backup_and_kill(&t, &src, no_cache, second);
            packs = assert_files_whole(&t.repo, &format!("{what} after the second kill"));
            eprintln!(
                "{what}: second kill: killed={} at {:?}, {} packs visible",
                !k2.finished,
                k2.at,
                packs.len()
            );
            check_read_data(&t, &format!("{what} after the second kill"));
        }
        let present: u64 = packs.values().sum();

        // The next backup completes and reuses what was uploaded.
        let out = cadang(&t.backup_args(&[&src], no_cache_flag(no_cache)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: the backup after the kill\n{}",
            text(&out)
        );
        let summary: Value = serde_json::from_slice(&out.stdout).expect("backup --json");
        let added = summary["added_bytes"].as_u64().expect("added_bytes");
        eprintln!("{what}: next backup added {added} of {full} bytes ({present} bytes were already uploaded)");
        // Everything the killed backup uploaded is reused (small slack for
        // pack overhead and tree packs).
        assert!(
            added + present * 9 / 10 <= full + MIB as u64,
            "{what}: the next backup added {added} bytes although {present} bytes of packs were already uploaded (full backup: {full})"
        );
        if packs.len() >= 2 && !k.finished {
            assert!(added + 8 * MIB as u64 <= full, "{what}: {} packs were uploaded before the kill, but the next backup added {added} of {full} bytes", packs.len());
            reuse_asserted += 1;
        }

        assert_files_whole(&t.repo, &format!("{what} after the next backup"));
        check_read_data(&t, &format!("{what} after the next backup"));

        // The dead backup's lock does not hold prune up, and prune keeps
        // everything the snapshot needs.
        let out = run(&["prune", "--repo", s(&t.repo), "--json"]);
        assert!(out.status.success(), "{what}: prune\n{}", text(&out));
        let report: Value = serde_json::from_slice(&out.stdout).expect("prune --json");
        assert_eq!(
            report["deferred_marks"].as_u64(),
            Some(0),
            "{what}: a killed backup's lock must not defer prune: {report}"
        );
        check_read_data(&t, &format!("{what} after prune"));

        let target = t.path("restore");
        t.restore("latest", &target);
        assert_eq!(
            tree_listing(&restored(&target, &src)),
            listing,
            "{what}: the restore differs from the source"
        );
    }
    assert!(
        killed_runs >= 5,
        "only {killed_runs} runs were killed before they finished; the kill points are too late"
    );
    assert!(
        reuse_asserted >= 1,
        "no run had two packs uploaded at its kill"
    );
}

fn no_cache_flag(no_cache: bool) -> &'static [&'static str] {
    if no_cache {
        &["--no-cache"]
    } else {
        &[]
    }
}
