//! The stop guard: once stopped, a backup's store operations fail so it
//! winds down through its error path, and no lock file is left behind.

mod daemon_support;

use std::sync::Arc;

use cadang_agent::daemon::guard::StopGuard;
use cadang_agent::{backup, BackupOptions, Progress, Source};
use cadang_core::backend::{Backend, FileKind};
use cadang_core::config::ChunkerParams;
use cadang_core::lock::BackupLock;
use cadang_core::Repository;
use daemon_support as fake;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_guard_refuses_store_work_but_removes_the_locks_it_saw() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, _, _) = fake::repository(dir.path()).await;
    let guard = Arc::new(StopGuard::new(backend.clone()));
    let lock = BackupLock::acquire(guard.clone() as Arc<dyn Backend>)
        .await
        .unwrap();
    assert_eq!(fake::lock_count(&backend).await, 1);
    guard.stop();
    assert!(guard.list(FileKind::Snapshots).await.is_err());
    assert!(guard.write(FileKind::Locks, "x", vec![1]).await.is_err());
    assert_eq!(guard.remove_leftover_locks().await, 1);
    assert_eq!(fake::lock_count(&backend).await, 0);
    lock.release().await.unwrap();
}

/// Stopped between its packs and its snapshot (the backup's own hold
/// hook; this file's only backup, as the hook is process-wide): the
/// backup fails at its next store operation and its own error path
/// releases the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_stopped_mid_way_fails_at_its_next_store_operation_and_releases_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("a"), vec![3u8; 100_000]).unwrap();
    let url = dir.path().join("store").display().to_string();
    let backend = cadang_s3::open_store(&url, None).unwrap();
    let init = Repository::init(backend.clone(), "PD", "srv", "pw", ChunkerParams::default())
        .await
        .unwrap();
    let guard = Arc::new(StopGuard::new(backend.clone()));
    let repo = Arc::new(Repository::open(guard.clone()).await.unwrap());
    let hold = dir.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    std::env::set_var("CADANG_TEST_HOLD_BEFORE_COMMIT", &hold);
    let opts = BackupOptions {
        host: "srv".into(),
        agent: "srv".into(),
        tags: vec![],
        excludes: vec![],
        cache_dir: None,
        workers: 1,
    };
    let job = tokio::spawn(backup(
        repo,
        init.credentials,
        Source::Paths(vec![files]),
        opts,
        Arc::new(Progress::default()),
    ));
    let waiting = hold.with_extension("waiting");
    fake::eventually(60, "the backup reaches the hold", || waiting.exists()).await;
    assert_eq!(fake::lock_count(&backend).await, 1);
    guard.stop();
    std::fs::remove_file(&hold).unwrap();
    let err = job.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("the agent is stopping"), "{err}");
    assert_eq!(
        fake::lock_count(&backend).await,
        0,
        "released by the backup itself"
    );
    assert_eq!(guard.remove_leftover_locks().await, 0);
    assert_eq!(fake::snapshot_count(&backend).await, 0);
}
