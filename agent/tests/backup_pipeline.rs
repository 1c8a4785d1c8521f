//! The backup pipeline against a local repository: dedup, cache, stdin, check.

use std::sync::Arc;

use cadang_agent::{backup, BackupOptions, Progress, Source};
use cadang_core::backend::LocalBackend;
use cadang_core::check::{check, ReadData};
use cadang_core::config::ChunkerParams;
use cadang_core::Repository;

fn opts(cache: Option<std::path::PathBuf>) -> BackupOptions {
    BackupOptions {
        host: "srv-test".into(),
        agent: "test".into(),
        tags: vec![],
        excludes: vec!["*.tmp".into()],
        cache_dir: cache,
        workers: 2,
    }
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_dedups_uses_cache_and_checks_clean() {
    std::env::set_var("CADANG_SCRYPT_LOG_N", "10");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("big.bin"), noise(5_000_000, 7)).unwrap();
    std::fs::write(src.join("sub/copy.bin"), noise(5_000_000, 7)).unwrap();
    std::fs::write(src.join("small.txt"), b"halo dunia").unwrap();
    std::fs::write(src.join("skip.tmp"), b"excluded").unwrap();

    let backend = Arc::new(LocalBackend::new(tmp.path().join("repo")));
    let init = Repository::init(backend, "PD", "test", "pw", ChunkerParams::default())
        .await
        .unwrap();
    let repo = Arc::new(init.repo);
    let creds = || cadang_core::keys::Credentials::from_json(&init.credentials.to_json()).unwrap();

    let cache = tmp.path().join("cache");
    let s1 = backup(
        repo.clone(),
        creds(),
        Source::Paths(vec![src.clone()]),
        opts(Some(cache.clone())),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert!(s1.problems.is_empty(), "{:?}", s1.problems);
    assert_eq!(s1.stats.files, 3, "skip.tmp is excluded");
    // The copy is stored once: added bytes are about one copy, not two.
    assert!(
        s1.stats.added_bytes < 5_600_000,
        "added {}",
        s1.stats.added_bytes
    );

    let progress = Arc::new(Progress::default());
    let s2 = backup(
        repo.clone(),
        creds(),
        Source::Paths(vec![src.clone()]),
        opts(Some(cache)),
        progress,
    )
    .await
    .unwrap();
    assert_eq!(s2.stats.new_chunks, 0);
    assert!(
        s2.stats.added_bytes < 10_000,
        "unchanged re-backup added {}",
        s2.stats.added_bytes
    );

    let s3 = backup(
        repo.clone(),
        creds(),
        Source::Command {
            name: "db.dump".into(),
            command: "head -c 3000000 /dev/zero | tr '\\0' x".into(),
        },
        opts(None),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert_eq!(s3.stats.bytes, 3_000_000);

    let failed = backup(
        repo.clone(),
        creds(),
        Source::Command {
            name: "db.dump".into(),
            command: "echo partial; exit 3".into(),
        },
        opts(None),
        Arc::new(Progress::default()),
    )
    .await;
    assert!(
        matches!(failed, Err(cadang_agent::BackupError::CommandFailed { .. })),
        "{failed:?}"
    );
    assert_eq!(
        repo.snapshots().await.unwrap().0.len(),
        3,
        "a failed command leaves no snapshot"
    );

    let identity = repo.unlock("pw").await.unwrap();
    let report = check(&repo, ReadData::All, Some(&identity)).await.unwrap();
    assert!(report.ok(), "{:?}", report.errors);
    assert!(report.blobs_verified > 3);
}
