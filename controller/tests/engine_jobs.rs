//! Site jobs against real directory repositories: replicate, verify,
//! retention, repair, a timeout that must not leave a lock, and retries
//! until a missing store appears.

mod engine_common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cadang_controller::engine::{
    Clock, CoreRunner, ManualClock, PoolConfig, SiteJob, SiteJobKind, SiteJobPool, SiteJobResult,
    SiteOutcome, StoreTarget,
};
use cadang_core::backend::{Backend, BackendResult, FileInfo, FileKind, LocalBackend};
use cadang_policies::model::Site;
use cadang_policies::retention::KeepPolicy;
use engine_common::*;
use tokio::sync::mpsc;

fn config() -> PoolConfig {
    PoolConfig {
        workers: 2,
        per_store: 2,
        timeout: Duration::from_secs(3600),
        max_attempts: 3,
        backoff_base: Duration::from_secs(60),
        backoff_cap: Duration::from_secs(300),
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(at("2026-06-10T00:00:00Z")))
}

async fn one(
    pool: &SiteJobPool,
    rx: &mut mpsc::UnboundedReceiver<SiteJobResult>,
    job: SiteJob,
) -> SiteJobResult {
    pool.submit(job).expect("submitted");
    rx.recv().await.expect("a result")
}

fn job(id: &str, kind: SiteJobKind) -> SiteJob {
    SiteJob {
        id: id.into(),
        pd: "DINKES".into(),
        kind,
    }
}

fn verify(store: StoreTarget) -> SiteJobKind {
    SiteJobKind::Verify {
        store,
        site: Site::OnSite,
        read_share_percent: 100,
    }
}

fn replicate(from: StoreTarget, to: StoreTarget) -> SiteJobKind {
    SiteJobKind::Replicate {
        from,
        to,
        bandwidth_limit: None,
        window_end: None,
        lock_days: 0,
    }
}

/// Flips one byte in the middle of the largest pack (the data pack).
fn corrupt_a_pack(repo: &TestRepo) -> std::path::PathBuf {
    let pack = repo
        .files("packs")
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a pack");
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&pack, bytes).unwrap();
    pack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_copies_snapshots_to_the_dr_store() {
    let (onsite, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let repo = init_repo(onsite.path(), "DINKES").await;
    repo.backup("srv1", "/srv/a", noise(200_000, 1)).await;
    repo.backup("srv1", "/srv/a", noise(200_000, 2)).await;
    let (pool, mut rx) = SiteJobPool::start(config(), clock());
    let (from, to) = (target("onsite", onsite.path()), target("dr", dr.path()));

    let r = one(
        &pool,
        &mut rx,
        job("rep1", replicate(from.clone(), to.clone())),
    )
    .await;
    assert_eq!(r.outcome, SiteOutcome::Succeeded, "{}", r.message);
    assert_eq!(snapshot_count(dr.path(), "DINKES").await, 2);
    assert_eq!(r.detail["snapshots"]["files"], 2);
    assert_eq!(r.detail["packs"]["files"], 4, "{}", r.detail);
    assert!(r.detail["bytes"].as_u64().unwrap() > 400_000);
    assert!(
        r.message.contains("replicated PD DINKES from onsite to dr"),
        "{}",
        r.message
    );

    // The next run finds nothing to copy; a third snapshot goes over alone.
    repo.backup("srv1", "/srv/a", noise(200_000, 3)).await;
    let r = one(&pool, &mut rx, job("rep2", replicate(from, to))).await;
    assert_eq!(r.outcome, SiteOutcome::Succeeded, "{}", r.message);
    assert_eq!(r.detail["snapshots"]["files"], 1);
    assert_eq!(snapshot_count(dr.path(), "DINKES").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_after_the_window_closed_copies_nothing() {
    let (onsite, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let repo = init_repo(onsite.path(), "DINKES").await;
    repo.backup("srv1", "/srv/a", noise(10_000, 1)).await;
    let clock = clock();
    let (pool, mut rx) = SiteJobPool::start(config(), clock.clone());
    let kind = SiteJobKind::Replicate {
        from: target("onsite", onsite.path()),
        to: target("dr", dr.path()),
        bandwidth_limit: Some(1 << 20),
        window_end: Some(clock.now() - chrono::Duration::minutes(1)),
        lock_days: 0,
    };
    let r = one(&pool, &mut rx, job("late", kind)).await;
    assert_eq!(r.outcome, SiteOutcome::Problems, "{}", r.message);
    assert!(r.message.contains("window ended"), "{}", r.message);
    assert!(!dr.path().join("DINKES").join("config").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_a_corrupted_pack_as_problems() {
    let onsite = tempfile::tempdir().unwrap();
    let repo = init_repo(onsite.path(), "DINKES").await;
    repo.backup("srv1", "/srv/a", noise(200_000, 1)).await;
    let (pool, mut rx) = SiteJobPool::start(config(), clock());
    let store = target("onsite", onsite.path());

    let r = one(&pool, &mut rx, job("v1", verify(store.clone()))).await;
    assert_eq!(r.outcome, SiteOutcome::Succeeded, "{}", r.message);
    assert!(r.message.contains("no damage found"), "{}", r.message);
    assert_eq!(r.detail["packs_read"], 2);

    let pack = corrupt_a_pack(&repo);
    let r = one(&pool, &mut rx, job("v2", verify(store))).await;
    assert_eq!(r.outcome, SiteOutcome::Problems, "{}", r.message);
    assert_eq!(r.attempt, 1, "damage is a result, not retried");
    let name = pack.file_name().unwrap().to_string_lossy().into_owned();
    let errors = r.detail["errors"].to_string();
    assert!(
        errors.contains(&name),
        "names the damaged pack {name}: {errors}"
    );
    assert!(r.message.contains("damaged"), "{}", r.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_forgets_and_prunes() {
    let onsite = tempfile::tempdir().unwrap();
    let repo = init_repo(onsite.path(), "DINKES").await;
    for seed in 1..=3 {
        repo.backup("srv1", "/srv/a", noise(100_000, seed)).await;
    }
    repo.backup("srv2", "/srv/b", noise(100_000, 9)).await;
    assert_eq!(repo.files("packs").len(), 8);
    let (pool, mut rx) = SiteJobPool::start(config(), clock());
    let kind = SiteJobKind::Retention {
        store: target("onsite", onsite.path()),
        site: Site::OnSite,
        keep: KeepPolicy {
            last: 1,
            ..Default::default()
        },
    };
    let r = one(&pool, &mut rx, job("ret", kind)).await;
    assert_eq!(r.outcome, SiteOutcome::Succeeded, "{}", r.message);
    assert_eq!(r.detail["forgotten"], 2, "{}", r.detail);
    assert_eq!(r.detail["kept"], 2, "the newest of each host+source group");
    assert_eq!(snapshot_count(onsite.path(), "DINKES").await, 2);
    assert_eq!(r.detail["prune"]["deleted_packs"], 4, "{}", r.detail);
    assert_eq!(repo.files("packs").len(), 4);
    assert!(repo.files("locks").is_empty(), "prune released its lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_keep_policy_forgets_nothing() {
    let onsite = tempfile::tempdir().unwrap();
    let repo = init_repo(onsite.path(), "DINKES").await;
    repo.backup("srv1", "/srv/a", noise(1000, 1)).await;
    let (pool, mut rx) = SiteJobPool::start(config(), clock());
    let kind = SiteJobKind::Retention {
        store: target("onsite", onsite.path()),
        site: Site::OnSite,
        keep: KeepPolicy::default(),
    };
    let r = one(&pool, &mut rx, job("ret", kind)).await;
    assert_eq!(r.outcome, SiteOutcome::Failed);
    assert!(r.message.contains("keeps nothing"), "{}", r.message);
    assert_eq!(snapshot_count(onsite.path(), "DINKES").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_replaces_a_damaged_pack_from_the_other_site() {
    let (onsite, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let repo = init_repo(onsite.path(), "DINKES").await;
    repo.backup("srv1", "/srv/a", noise(200_000, 1)).await;
    let (pool, mut rx) = SiteJobPool::start(config(), clock());
    let (a, b) = (target("onsite", onsite.path()), target("dr", dr.path()));
    let r = one(&pool, &mut rx, job("rep", replicate(a.clone(), b.clone()))).await;
    assert_eq!(r.outcome, SiteOutcome::Succeeded, "{}", r.message);

    corrupt_a_pack(&repo);
    let r = one(
        &pool,
        &mut rx,
        job(
            "fix",
            SiteJobKind::Repair {
                store: a.clone(),
                from: b,
            },
        ),
    )
    .await;
    assert_eq!(r.outcome, SiteOutcome::Succeeded, "{}", r.message);
    assert_eq!(
        r.detail["replaced"].as_array().unwrap().len(),
        1,
        "{}",
        r.detail
    );
    let r = one(&pool, &mut rx, job("v", verify(a))).await;
    assert_eq!(r.outcome, SiteOutcome::Succeeded, "repaired: {}", r.message);
}

/// A store whose pack listing never answers: prune holds `locks/prune`
/// and then stalls, as on a hung NAS.
#[derive(Debug)]
struct StallingPacks(LocalBackend);

#[async_trait::async_trait]
impl Backend for StallingPacks {
    fn location(&self) -> String {
        self.0.location()
    }
    async fn create(&self) -> BackendResult<()> {
        self.0.create().await
    }
    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        if kind == FileKind::Packs {
            std::future::pending::<()>().await;
        }
        self.0.list(kind).await
    }
    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Vec<u8>> {
        self.0.read(kind, name).await
    }
    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Vec<u8>> {
        self.0.read_range(kind, name, offset, length).await
    }
    async fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        self.0.write(kind, name, data).await
    }
    async fn write_new(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        self.0.write_new(kind, name, data).await
    }
    async fn delete(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        self.0.delete(kind, name).await
    }
    async fn stat(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        self.0.stat(kind, name).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_retention_leaves_no_lock() {
    let onsite = tempfile::tempdir().unwrap();
    let repo = init_repo(onsite.path(), "DINKES").await;
    repo.backup("srv1", "/srv/a", noise(1000, 1)).await;
    repo.backup("srv1", "/srv/a", noise(1000, 2)).await;
    let runner = CoreRunner::with_opener(Arc::new(|store: &StoreTarget, pd: &str| {
        let root = Path::new(&store.url).join(pd);
        Ok(Arc::new(StallingPacks(LocalBackend::new(root))) as Arc<dyn Backend>)
    }));
    let clock = clock();
    let (pool, mut rx) = SiteJobPool::start_with(config(), clock.clone(), Arc::new(runner));
    let kind = SiteJobKind::Retention {
        store: target("onsite", onsite.path()),
        site: Site::OnSite,
        keep: KeepPolicy {
            last: 1,
            ..Default::default()
        },
    };
    pool.submit(job("stuck", kind)).unwrap();
    let lock = repo.path.join("locks").join("prune");
    for _ in 0..2000 {
        if lock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(lock.exists(), "prune took its lock before stalling");
    clock.advance(chrono::Duration::hours(1));
    let r = rx.recv().await.unwrap();
    assert_eq!(r.outcome, SiteOutcome::TimedOut, "{}", r.message);
    assert!(
        repo.files("locks").is_empty(),
        "left: {:?}",
        repo.files("locks")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_store_is_retried_until_it_appears() {
    let onsite = tempfile::tempdir().unwrap();
    let clock = clock();
    let (pool, mut rx) = SiteJobPool::start(config(), clock.clone());
    pool.submit(job("v", verify(target("onsite", onsite.path()))))
        .unwrap();
    // The first attempt finds no repository directory and waits to retry.
    clock.wait_for_sleepers(1).await;
    for _ in 0..2000 {
        if pool.running() == 0 && clock.sleepers() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let repo = init_repo(onsite.path(), "DINKES").await;
    repo.backup("srv1", "/srv/a", noise(1000, 1)).await;
    clock.advance(chrono::Duration::seconds(60));
    let r = rx.recv().await.unwrap();
    assert_eq!(r.outcome, SiteOutcome::Succeeded, "{}", r.message);
    assert_eq!(r.attempt, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_verification_continues_where_it_stopped_across_restarts() {
    let (onsite, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let repo = init_repo(onsite.path(), "DINKES").await;
    for seed in 1..=2 {
        repo.backup("srv1", "/srv/a", noise(10_000, seed)).await;
    }
    let state_file = state.path().join("check-positions.json");
    let kind = || SiteJobKind::Verify {
        store: target("onsite", onsite.path()),
        site: Site::OnSite,
        read_share_percent: 25,
    };
    let mut read = Vec::new();
    for run in 0..4 {
        // A new runner (a restarted controller) for every run.
        let runner = CoreRunner::new().with_state_file(state_file.clone());
        let (pool, mut rx) = SiteJobPool::start_with(config(), clock(), Arc::new(runner));
        let r = one(&pool, &mut rx, job(&format!("v{run}"), kind())).await;
        assert_eq!(r.outcome, SiteOutcome::Succeeded, "{}", r.message);
        assert_eq!(r.detail["packs_read"], 1, "25% of 4 packs");
        read.push(r.detail["last_read"].as_str().unwrap().to_string());
    }
    read.sort();
    read.dedup();
    assert_eq!(read.len(), 4, "four runs of 25% cover every pack: {read:?}");
}
