//! Replication to the DR site and repair between sites, against real S3
//! (cadang-testkit) and local directories.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use cadang_testkit::S3Server;
use common::*;
use serde_json::Value;

const MIB: usize = 1024 * 1024;

/// ~40 MiB: incompressible files (several packs) and small ones.
fn make_source(root: &Path) {
    fs::create_dir_all(root.join("surat")).unwrap();
    for i in 0..4u64 {
        fs::write(
            root.join(format!("pindai-{i}.bin")),
            noise(9 * MIB + i as usize * 777, 50 + i),
        )
        .unwrap();
    }
    for i in 0..60u64 {
        fs::write(
            root.join(format!("surat/{i:03}.txt")),
            noise(2000 + i as usize * 31, 900 + i),
        )
        .unwrap();
    }
}

/// Pack names and sizes under a store directory (local store or bucket prefix).
fn packs_in(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for sub in fs::read_dir(dir.join("packs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in fs::read_dir(sub.path()).into_iter().flatten().flatten() {
            let name = f.file_name().into_string().unwrap();
            if !name.starts_with('.') && f.path().is_file() {
                out.insert(name, f.metadata().unwrap().len());
            }
        }
    }
    out
}

fn files_of(dir: &Path, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join(kind))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

#[test]
fn backup_to_s3_replicate_to_a_second_bucket_wipe_the_first_restore_from_the_second() {
    let server = S3Server::start();
    server.create_bucket("onsite");
    server.create_bucket("dr-site");
    let (onsite, dr) = (
        server.url("onsite", "dinkes"),
        server.url("dr-site", "dinkes"),
    );
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("data");
    let creds = dir.path().join("agent.credentials");
    make_source(&src);
    s3_ok(
        &server,
        &[
            "repo",
            "init",
            "--repo",
            &onsite,
            "--pd",
            "DINKES",
            "--agent-credentials",
            s(&creds),
        ],
    );
    s3_ok(
        &server,
        &[
            "backup",
            "--repo",
            &onsite,
            "--credentials",
            s(&creds),
            "--no-cache",
            s(&src),
        ],
    );

    let report: Value = serde_json::from_str(&s3_ok(
        &server,
        &[
            "replicate",
            "--from",
            &onsite,
            "--to",
            &dr,
            "--pd",
            "DINKES",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(report["snapshots"]["files"], 1, "{report}");
    assert!(report["lag_seconds"].as_i64().unwrap() >= 0, "{report}");
    assert!(report["newest_missing"].is_string(), "{report}");
    // A second run finds nothing to do and reports no lag.
    let again: Value = serde_json::from_str(&s3_ok(
        &server,
        &["replicate", "--from", &onsite, "--to", &dr, "--json"],
    ))
    .unwrap();
    assert_eq!(again["packs"]["files"], 0, "{again}");
    assert_eq!(again["lag_seconds"], 0, "{again}");

    fs::remove_dir_all(server.bucket_path("onsite")).unwrap();
    server.create_bucket("onsite");
    s3_ok(&server, &["check", "--repo", &dr, "--read-data"]);
    let target = dir.path().join("restore");
    s3_ok(
        &server,
        &["restore", "--repo", &dr, "latest", "--target", s(&target)],
    );
    assert_eq!(tree_listing(&restored(&target, &src)), tree_listing(&src));
}

#[test]
fn killed_replication_resumes_without_sending_finished_packs_again() {
    let server = S3Server::start();
    server.create_bucket("dr-site");
    let dr = server.url("dr-site", "bappeda");
    let t = TestRepo::new();
    let src = t.path("data");
    make_source(&src);
    t.backup(&[&src], &[]);
    fs::write(src.join("surat/baru.txt"), b"hari kedua").unwrap();
    t.backup(&[&src], &[]);
    let source_packs = packs_in(&t.repo);
    assert!(source_packs.len() >= 3, "{source_packs:?}");

    let mut seed = 0x2026_1122u64;
    let mut kills = 0;
    for round in 0..8 {
        let before = packs_in(&server.bucket_path("dr-site").join("bappeda"));
        server.clear_requests();
        // 12 MiB/s: the ~40 MiB take a few seconds, so kills land mid-way.
        let mut child = s3_cadang(
            &server,
            &[
                "replicate",
                "--from",
                s(&t.repo),
                "--to",
                &dr,
                "--bwlimit",
                "12MiB/s",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = Duration::from_millis(200 + seed % 2500);
        let started = Instant::now();
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "round {round}: replicate failed on its own: {status:?}"
                );
                break true;
            }
            if started.elapsed() >= wait {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // No pack the target already had was sent again.
        for name in before.keys() {
            let puts = server.count("PUT", name);
            assert_eq!(
                puts, 0,
                "round {round}: finished pack {name} was uploaded again"
            );
        }
        // The target is consistent after every run.
        let out = s3_run(&server, &["check", "--repo", &dr]);
        if !before.is_empty() || finished {
            assert!(
                out.status.success(),
                "round {round}: check of the target failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if finished {
            break;
        }
    }
    assert!(kills >= 1, "no run was killed mid-way");
    s3_ok(&server, &["replicate", "--from", s(&t.repo), "--to", &dr]);
    let target_dir = server.bucket_path("dr-site").join("bappeda");
    assert_eq!(packs_in(&target_dir), source_packs);
    for kind in ["index", "snapshots", "keys"] {
        assert_eq!(
            files_of(&target_dir, kind),
            files_of(&t.repo, kind),
            "{kind}"
        );
    }
    s3_ok(&server, &["check", "--repo", &dr, "--read-data"]);
}

#[test]
fn replication_rides_out_ten_percent_failed_requests() {
    let server = S3Server::start();
    server.create_bucket("dr-site");
    let dr = server.url("dr-site", "faulty");
    let t = TestRepo::new();
    let src = t.path("data");
    make_source(&src);
    t.backup(&[&src], &[]);
    server.set_fault_rate(0.10, 7);
    s3_ok(
        &server,
        &[
            "replicate",
            "--from",
            s(&t.repo),
            "--to",
            &dr,
            "--parallel",
            "2",
        ],
    );
    s3_ok(&server, &["check", "--repo", &dr, "--read-data"]);
    assert!(server.faults_injected() >= 2, "no faults were injected");
    server.set_fault_rate(0.0, 0);
    let target = t.path("restore");
    s3_ok(
        &server,
        &["restore", "--repo", &dr, "latest", "--target", s(&target)],
    );
    assert_eq!(tree_listing(&restored(&target, &src)), tree_listing(&src));
}

fn flip_a_byte(path: &Path) {
    let mut data = fs::read(path).unwrap();
    let i = data.len() / 3;
    data[i] ^= 0x40;
    fs::write(path, data).unwrap();
}

fn pack_path(repo: &Path, name: &str) -> PathBuf {
    repo.join("packs").join(&name[..2]).join(name)
}

#[test]
fn damage_found_by_check_is_repaired_from_the_dr_store() {
    let t = TestRepo::new();
    let src = t.path("data");
    make_source(&src);
    t.backup(&[&src], &[]);
    let dr = t.path("dr-site");
    ok(&["replicate", "--from", s(&t.repo), "--to", s(&dr)]);

    let packs: Vec<String> = packs_in(&t.repo).into_keys().collect();
    flip_a_byte(&pack_path(&t.repo, &packs[0]));
    fs::remove_file(pack_path(&t.repo, &packs[1])).unwrap();
    let index = files_of(&t.repo, "index");
    let ix = t.repo.join("index").join(&index[0]);
    let len = fs::metadata(&ix).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&ix)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let out = t.check(&["--read-data"]);
    assert_ne!(out.status.code(), Some(0), "check missed the damage");
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains(&packs[0]),
        "check did not name the flipped pack: {report}"
    );

    let out: Value = serde_json::from_str(&ok(&[
        "repair",
        "--repo",
        s(&t.repo),
        "--from",
        s(&dr),
        "--json",
    ]))
    .unwrap();
    let replaced: Vec<String> = out["replaced"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["file"].as_str().unwrap().to_string())
        .collect();
    for want in [
        format!("packs/{}", packs[0]),
        format!("packs/{}", packs[1]),
        format!("index/{}", index[0]),
    ] {
        assert!(replaced.contains(&want), "{want} not replaced: {out}");
    }
    assert_eq!(out["unrepaired"].as_array().map(Vec::len), Some(0), "{out}");
    let out = t.check(&["--read-data"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let target = t.path("restore");
    t.restore("latest", &target);
    assert_eq!(tree_listing(&restored(&target, &src)), tree_listing(&src));
    // Nothing left to do.
    let again = ok(&["repair", "--repo", s(&t.repo), "--from", s(&dr)]);
    assert!(again.contains("nothing to repair"), "{again}");
}

#[test]
fn damaged_source_pack_is_not_replicated_and_is_named() {
    let t = TestRepo::new();
    let src = t.path("data");
    make_source(&src);
    t.backup(&[&src], &[]);
    let packs: Vec<String> = packs_in(&t.repo).into_keys().collect();
    flip_a_byte(&pack_path(&t.repo, &packs[0]));
    let dr = t.path("dr-site");
    let out = run(&["replicate", "--from", s(&t.repo), "--to", s(&dr)]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&packs[0]) && err.contains("cadang repair"),
        "{err}"
    );
    assert!(
        !pack_path(&dr, &packs[0]).exists(),
        "a damaged pack was copied"
    );
    assert!(
        files_of(&dr, "snapshots").is_empty(),
        "a snapshot needing a damaged pack was copied"
    );
    // What reached the target is a consistent repository.
    let out = run(&["check", "--repo", s(&dr), "--read-data"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn operator_mistakes_are_refused_before_copying() {
    let t = TestRepo::new();
    let src = t.path("data");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"isi").unwrap();
    t.backup(&[&src], &[]);
    let dr = t.path("dr-site");
    let one_line = |out: &Output, words: &[&str]| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        for w in words {
            assert!(err.contains(w), "{err} lacks {w}");
        }
    };
    let out = run(&[
        "replicate",
        "--from",
        s(&t.repo),
        "--to",
        s(&dr),
        "--lock-days",
        "30",
    ]);
    one_line(&out, &["--lock-days", "Object Lock"]);
    assert!(!dr.exists() || files_of(&dr, "packs").is_empty());

    let out = run(&[
        "replicate",
        "--from",
        s(&t.repo),
        "--to",
        s(&dr),
        "--pd",
        "DISDIK",
    ]);
    one_line(&out, &["DINKES", "DISDIK"]);

    let other = TestRepo::new();
    let out = run(&["replicate", "--from", s(&t.repo), "--to", s(&other.repo)]);
    one_line(&out, &["another repository"]);

    let out = run(&[
        "replicate",
        "--from",
        s(&t.repo),
        "--to",
        s(&dr),
        "--bwlimit",
        "fast",
    ]);
    one_line(&out, &["--bwlimit"]);

    // A window that does not contain now: nothing copied, exit 0.
    let now = chrono::Local::now();
    let start = (now + chrono::Duration::hours(2))
        .format("%H:%M")
        .to_string();
    let end = (now + chrono::Duration::hours(3))
        .format("%H:%M")
        .to_string();
    let window = format!("{start}-{end}");
    let out = ok(&[
        "replicate",
        "--from",
        s(&t.repo),
        "--to",
        s(&dr),
        "--window",
        &window,
    ]);
    assert!(out.contains("outside the replication window"), "{out}");
    assert!(
        !dr.join("config").exists(),
        "something was copied outside the window"
    );
}
