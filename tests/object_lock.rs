//! `cadang forget --prune` at a DR target under S3 Object Lock (moto, a
//! child process): locked files survive, the command says why, exits 0, and
//! leaves a repository that passes `check`.
//!
//! The locked store is made by copying a local repository's files into the
//! bucket with `write_retained`, as `replicate --lock-days` would.

mod common;
#[path = "../s3/tests/moto/mod.rs"]
mod moto;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use cadang_core::backend::{Backend, BackendError, FileKind, LocalBackend};
use cadang_s3::{S3Backend, S3Options, StaticCredentials};
use common::*;
use moto::Moto;

fn moto_options() -> S3Options {
    S3Options {
        credentials: Some(StaticCredentials {
            access_key_id: moto::ACCESS_KEY.into(),
            secret_access_key: moto::SECRET_KEY.into(),
            session_token: None,
        }),
        ..S3Options::default()
    }
}

/// Copies every file of the local repository at `local` to `url`; files of
/// the kinds in `retain` are written under Object Lock for a day.
fn copy_to_s3(local: &Path, url: &str, retain: &[FileKind]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let src = LocalBackend::new(local.to_path_buf());
        let dst = S3Backend::with_options(url, moto_options()).unwrap();
        let until = SystemTime::now() + Duration::from_secs(86_400);
        let mut kinds = vec![FileKind::Config];
        kinds.extend([
            FileKind::Keys,
            FileKind::Packs,
            FileKind::Index,
            FileKind::Snapshots,
        ]);
        for kind in kinds {
            for f in src.list(kind).await.unwrap() {
                let data = src.read(kind, &f.name).await.unwrap();
                if retain.contains(&kind) {
                    dst.write_retained(kind, &f.name, data, until)
                        .await
                        .unwrap();
                } else {
                    dst.write(kind, &f.name, data).await.unwrap();
                }
            }
        }
    });
}

/// A local repository with two snapshots; the first one's data is in packs
/// that the second does not need.
fn two_snapshots() -> TestRepo {
    let t = TestRepo::new();
    let src = t.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), noise(900 * 1024, 1)).unwrap();
    t.backup(&[&src], &[]);
    fs::remove_file(src.join("a.bin")).unwrap();
    fs::write(src.join("b.bin"), noise(900 * 1024, 2)).unwrap();
    t.backup(&[&src], &[]);
    t
}

fn with_keys(args: &[&str]) -> std::process::Output {
    cadang(args)
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_KEY)
        .output()
        .expect("cadang runs")
}

fn show(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn snapshot_count(url: &str) -> usize {
    let out = with_keys(&["snapshots", "--repo", url, "--json"]);
    assert!(out.status.success(), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().map(Vec::len).unwrap_or(0)
}

/// Objects of `kind` in the store at `url`.
fn listed(url: &str, kind: FileKind) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let b = S3Backend::with_options(url, moto_options()).unwrap();
        let files = b.list(kind).await.unwrap();
        files.into_iter().map(|f| f.name).collect()
    })
}

/// `replicate --lock-days` writes the DR copy under Object Lock, and
/// refuses, before copying anything, a bucket that would not enforce it.
#[test]
fn replicate_with_lock_days_locks_the_dr_copy_and_refuses_an_unlocked_bucket() {
    let m = Moto::start();
    m.create_bucket("dr-plain", false);
    m.create_bucket("dr-locked", true);
    let t = two_snapshots();

    let plain = m.url("dr-plain", "dinkes", "");
    let out = with_keys(&[
        "replicate",
        "--from",
        s(&t.repo),
        "--to",
        &plain,
        "--lock-days",
        "1",
    ]);
    let text = show(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{text}");
    assert!(
        err.contains("--lock-days") && err.contains("Object Lock") && err.contains("dr-plain"),
        "{text}"
    );
    for kind in [FileKind::Config, FileKind::Keys, FileKind::Packs] {
        assert!(listed(&plain, kind).is_empty(), "{kind} written: {text}");
    }

    let url = m.url("dr-locked", "dinkes", "");
    let out = with_keys(&[
        "replicate",
        "--from",
        s(&t.repo),
        "--to",
        &url,
        "--lock-days",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(snapshot_count(&url), 2);

    // Every pack at the target is retained for about a day.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let packs = listed(&url, FileKind::Packs);
    assert!(!packs.is_empty());
    rt.block_on(async {
        let b = S3Backend::with_options(&url, moto_options()).unwrap();
        let soon = SystemTime::now() + Duration::from_secs(23 * 3600);
        for p in &packs {
            let until = b.retained_until(FileKind::Packs, p).await.unwrap();
            assert!(until.is_some_and(|u| u > soon), "{p}: {until:?}");
            let err = b.delete(FileKind::Packs, p).await.unwrap_err();
            assert!(matches!(err, BackendError::Locked { .. }), "{err:?}");
        }
    });

    // A compromised data center's forget --prune at the DR copy removes
    // nothing, says why, and the copy still restores.
    let out = with_keys(&["forget", "--repo", &url, "--keep-last", "1", "--prune"]);
    let text = show(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("under Object Lock until"), "{text}");
    assert_eq!(snapshot_count(&url), 2);
    assert_eq!(listed(&url, FileKind::Packs), packs);
    let out = with_keys(&["check", "--repo", &url, "--read-data"]);
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn forget_keeps_locked_snapshots_and_says_why() {
    let m = Moto::start();
    m.create_bucket("dr-all-locked", true);
    let t = two_snapshots();
    let url = m.url("dr-all-locked", "dinkes", "");
    copy_to_s3(
        &t.repo,
        &url,
        &[
            FileKind::Config,
            FileKind::Keys,
            FileKind::Packs,
            FileKind::Index,
            FileKind::Snapshots,
        ],
    );
    assert_eq!(snapshot_count(&url), 2);

    let out = with_keys(&["forget", "--repo", &url, "--keep-last", "1", "--prune"]);
    let text = show(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("1 snapshot file(s) are under Object Lock until"),
        "{text}"
    );
    assert!(text.contains("were kept"), "{text}");
    // The locked snapshot is still there, and so is everything it needs.
    assert_eq!(snapshot_count(&url), 2);
    let out = with_keys(&["check", "--repo", &url]);
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn prune_keeps_locked_packs_and_index_and_reports_them() {
    let m = Moto::start();
    m.create_bucket("dr-data-locked", true);
    let t = two_snapshots();
    let url = m.url("dr-data-locked", "dinkes", "");
    // Data locked, snapshots not: forget removes a snapshot, prune meets locks.
    copy_to_s3(&t.repo, &url, &[FileKind::Packs, FileKind::Index]);

    let out = with_keys(&[
        "forget",
        "--repo",
        &url,
        "--keep-last",
        "1",
        "--prune",
        "--json",
    ]);
    let text = show(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let prune = &v["prune"];
    assert_eq!(prune["deleted_packs"], 0, "{text}");
    let locked = prune["locked"].as_array().expect("locked list");
    assert!(
        locked.iter().any(|l| l["kind"] == "packs"),
        "locked packs are listed: {text}"
    );
    assert!(
        locked
            .iter()
            .all(|l| l["until"].as_str().is_some_and(|u| u.len() >= 20)),
        "{text}"
    );
    assert_eq!(snapshot_count(&url), 1);

    // Human output of a second prune says the same in words, and the
    // repository stays consistent: every index entry has its pack.
    let out = with_keys(&["prune", "--repo", &url]);
    let text = show(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("are under Object Lock until") && text.contains("were kept"),
        "{text}"
    );
    assert!(text.contains("kept packs/"), "{text}");
    let out = with_keys(&["check", "--repo", &url, "--read-data"]);
    assert!(out.status.success(), "{}", show(&out));
    let target = t.path("restored");
    let out = with_keys(&["restore", "--repo", &url, "latest", "--target", s(&target)]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(fs::read(
        target
            .join(t.path("src").strip_prefix("/").unwrap())
            .join("b.bin")
    )
    .is_ok_and(|d| d == noise(900 * 1024, 2)));
}
