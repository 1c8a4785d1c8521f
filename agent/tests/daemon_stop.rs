//! SIGTERM during a backup: the backup ends at a safe point, its
//! repository lock is gone at once (not after 30 minutes), an
//! `Interrupted` report is written, and the job runs again after the
//! restart. Its own test binary: it sets the process-wide hold hook.

mod daemon_support;

use std::sync::Arc;
use std::time::Duration;

use cadang_agent::daemon::ManualClock;
use cadang_proto::agent::{Job, JobKind, Outcome};
use daemon_support as fake;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_mid_backup_releases_the_lock_reports_interrupted_and_retries_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("a.txt"), vec![1u8; 200_000]).unwrap();
    let (backend, grant, store) = fake::repository(dir.path()).await;
    let fc = fake::start(
        fake::pki("cadang"),
        fake::policy("srv", &files, "0 2 * * *"),
    )
    .await;
    fc.with(|s| s.grant = Some((grant, store)));
    let config = fake::enrolled(&fc, &dir.path().join("agent"), "srv").await;
    let clock = Arc::new(ManualClock::new("2026-12-02T10:00:00Z".parse().unwrap()));

    // The backup holds after its packs and index, before its snapshot,
    // while this file exists.
    let hold = dir.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    std::env::set_var("CADANG_TEST_HOLD_BEFORE_COMMIT", &hold);
    fc.with(|s| {
        s.jobs.push_back(Job {
            id: "j1".into(),
            kind: JobKind::Backup {
                source: "files".into(),
                slot: None,
            },
            not_after: None,
            due_at: None,
        })
    });
    let agent = fake::spawn(&config, clock.clone());
    let waiting = hold.with_extension("waiting");
    fake::eventually(60, "the backup reaches the hold", || waiting.exists()).await;
    assert_eq!(
        fake::lock_count(&backend).await,
        1,
        "a running backup holds a lock"
    );
    fake::eventually(10, "progress is polled", || {
        fc.with(|s| {
            s.last_running
                .iter()
                .any(|p| p.job_id.as_deref() == Some("j1") && p.files == 1)
        })
    })
    .await;

    let stopped = tokio::time::Instant::now();
    agent.stop().await.unwrap();
    assert!(stopped.elapsed() < Duration::from_secs(15));
    assert_eq!(
        fake::lock_count(&backend).await,
        0,
        "the lock is released at once"
    );
    assert_eq!(fake::snapshot_count(&backend).await, 0);
    let interrupted = fc.with(|s| s.reports.clone());
    assert_eq!(interrupted.len(), 1, "{interrupted:?}");
    assert_eq!(interrupted[0].outcome, Outcome::Interrupted);
    assert_eq!(interrupted[0].job_id.as_deref(), Some("j1"));

    // After the restart the job runs again and completes.
    std::fs::remove_file(&hold).unwrap();
    let agent = fake::spawn(&config, clock);
    fake::wait_snapshots(&backend, 1, 60).await;
    fake::eventually(30, "the retried job's report", || {
        fc.with(|s| s.reports.len()) == 2
    })
    .await;
    agent.stop().await.unwrap();
    let reports = fc.with(|s| s.reports.clone());
    assert_eq!(
        reports[1].outcome,
        Outcome::Succeeded,
        "{}",
        reports[1].message
    );
    assert_eq!(reports[1].job_id.as_deref(), Some("j1"));
    assert_ne!(reports[0].report_id, reports[1].report_id);
    assert_eq!(fake::snapshot_count(&backend).await, 1);
    assert_eq!(fake::lock_count(&backend).await, 0);
}
