//! The backend decorators (`cadang_core::backend::wrap`) on the local
//! backend: each keeps the backend contract (the conformance suite), retries
//! ride out transient failures and nothing else, the rate limit paces, and
//! injected faults are deterministic.

use std::sync::Arc;
use std::time::Duration;

use cadang_core::backend::wrap::{
    FaultBackend, FaultPlan, RateLimitedBackend, RetryBackend, RetryPolicy,
};
use cadang_core::backend::{
    conformance, wrap_backend, Backend, BackendError, FileKind, LocalBackend, WrapOptions,
};
use cadang_core::ratelimit::RateLimiter;
use tokio::time::Instant;

fn local(dir: &tempfile::TempDir) -> Arc<dyn Backend> {
    Arc::new(LocalBackend::new(dir.path().join("store")))
}

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        jitter_seed: Some(1),
    }
}

fn faults(inner: Arc<dyn Backend>, spec: &str) -> Arc<dyn Backend> {
    Arc::new(FaultBackend::new(inner, FaultPlan::parse(spec).unwrap()))
}

fn retried(inner: Arc<dyn Backend>, max_attempts: u32) -> Arc<dyn Backend> {
    Arc::new(RetryBackend::new(inner, policy(max_attempts)))
}

#[tokio::test]
async fn retry_layer_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(&*retried(local(&dir), 3)).await.unwrap();
}

#[tokio::test]
async fn rate_limit_layer_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let fast = || Some(Arc::new(RateLimiter::new(1 << 30)));
    let b = RateLimitedBackend::new(local(&dir), fast(), fast());
    conformance::run(&b).await.unwrap();
}

#[tokio::test]
async fn fault_layer_passes_conformance_when_it_only_delays() {
    let dir = tempfile::tempdir().unwrap();
    let b = faults(local(&dir), "any@2+=delay:1");
    conformance::run(&*b).await.unwrap();
}

/// The whole stack, with transient failures and lost answers sprinkled
/// over the suite: the retries hide every one of them, and the contract
/// (including "write_new over an existing file is refused" and "deleting
/// a missing file is NotFound") still holds.
#[tokio::test(start_paused = true)]
async fn full_stack_rides_out_injected_transient_faults_through_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let options = WrapOptions {
        retry: Some(policy(4)),
        write_limit: Some(Arc::new(RateLimiter::new(1 << 30))),
        read_limit: Some(Arc::new(RateLimiter::new(1 << 30))),
        faults: Some(
            FaultPlan::parse(
                "list@2x2=transient,read@1=transient,read@4=transient,write@1=lost,write@3x3=transient,delete@1=lost,stat@2=transient",
            )
            .unwrap(),
        ),
    };
    let b = wrap_backend(local(&dir), &options);
    conformance::run(&*b).await.unwrap();
}

#[tokio::test]
async fn nothing_asked_is_the_store_itself() {
    let dir = tempfile::tempdir().unwrap();
    let inner = local(&dir);
    let b = wrap_backend(inner.clone(), &WrapOptions::none());
    assert!(Arc::ptr_eq(&inner, &b));
}

#[tokio::test(start_paused = true)]
async fn retry_rides_out_transient_failures_and_keeps_the_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let inner = local(&dir);
    inner.create().await.unwrap();
    let b = retried(
        faults(inner.clone(), "write@1x3=transient,read@1x3=transient"),
        4,
    );
    let data: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
    let t0 = Instant::now();
    b.write(FileKind::Index, "00ff", data.clone())
        .await
        .unwrap();
    // Three backoffs of at least half of 100, 200 and 400 ms.
    assert!(
        t0.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(b.read(FileKind::Index, "00ff").await.unwrap(), data);
    assert_eq!(inner.read(FileKind::Index, "00ff").await.unwrap(), data);
}

/// A read into the caller's buffer (the restore's reused pack buffer) is
/// faulted and retried like a read: the buffer of a failed attempt is not
/// handed back half filled.
#[tokio::test(start_paused = true)]
async fn retry_of_a_read_into_a_used_buffer_returns_only_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let inner = local(&dir);
    inner.create().await.unwrap();
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    inner
        .write(FileKind::Packs, "00ff", data.clone())
        .await
        .unwrap();
    let b = retried(faults(inner.clone(), "read@1x2=transient"), 4);
    let got = b
        .read_into(FileKind::Packs, "00ff", vec![0xEE; 80_000])
        .await
        .unwrap();
    assert_eq!(got, data);
    let failing = retried(faults(inner, "read@1x4=transient"), 2);
    let err = failing
        .read_into(FileKind::Packs, "00ff", vec![0xEE; 80_000])
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn retry_gives_up_after_max_attempts_with_the_last_error() {
    let dir = tempfile::tempdir().unwrap();
    let inner = local(&dir);
    inner.create().await.unwrap();
    // Four transient failures in a row, and four attempts allowed.
    let b = retried(faults(inner.clone(), "write@1x4=transient"), 4);
    let err = b
        .write(FileKind::Index, "00ff", vec![1, 2, 3])
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(
        err.to_string().contains("gave up after 4 attempts"),
        "{err}"
    );
    assert!(inner.stat(FileKind::Index, "00ff").await.unwrap().is_none());
    // The plan's fifth write is no longer a fault: the layer made exactly
    // four attempts, so this one goes through.
    b.write(FileKind::Index, "00ff", vec![1, 2, 3])
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn answers_are_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let inner = local(&dir);
    inner.create().await.unwrap();
    inner
        .write_new(FileKind::Locks, "l1", b"one".to_vec())
        .await
        .unwrap();
    // Every call after the first of each kind would fail: a retry would
    // turn these answers into injected I/O errors, and would sleep.
    let b = retried(
        faults(inner, "read@2+=fail,write@2+=fail,delete@2+=fail"),
        5,
    );
    let t0 = Instant::now();
    assert!(matches!(
        b.read(FileKind::Index, "missing").await,
        Err(BackendError::NotFound { .. })
    ));
    assert!(matches!(
        b.write_new(FileKind::Locks, "l1", b"two".to_vec()).await,
        Err(BackendError::AlreadyExists { .. })
    ));
    assert!(matches!(
        b.delete(FileKind::Index, "missing").await,
        Err(BackendError::NotFound { .. })
    ));
    assert!(matches!(
        b.stat(FileKind::Index, "../escape").await,
        Err(BackendError::InvalidName(_))
    ));
    assert_eq!(t0.elapsed(), Duration::ZERO, "an answer was retried");
    // A permanent I/O error is an answer too.
    let err = b.read(FileKind::Locks, "l1").await.unwrap_err();
    assert!(
        !err.is_transient() && err.to_string().contains("injected"),
        "{err}"
    );
    assert_eq!(
        t0.elapsed(),
        Duration::ZERO,
        "a permanent error was retried"
    );
}

/// A create-only write whose answer was lost is found by its retry: the
/// same bytes are its own (success); other bytes stay a conflict.
#[tokio::test(start_paused = true)]
async fn create_only_write_after_a_lost_answer() {
    let dir = tempfile::tempdir().unwrap();
    let inner = local(&dir);
    inner.create().await.unwrap();
    let b = retried(faults(inner.clone(), "write@1=lost,write@2=transient"), 3);
    b.write_new(FileKind::Locks, "mine", b"ours".to_vec())
        .await
        .unwrap();
    assert_eq!(inner.read(FileKind::Locks, "mine").await.unwrap(), b"ours");

    inner
        .write_new(FileKind::Locks, "theirs", b"first".to_vec())
        .await
        .unwrap();
    // The first attempt fails transiently (nothing done), the retry finds
    // another writer's file: a conflict, not a success.
    let err = b
        .write_new(FileKind::Locks, "theirs", b"second".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(
        inner.read(FileKind::Locks, "theirs").await.unwrap(),
        b"first"
    );
}

#[tokio::test(start_paused = true)]
async fn delete_after_a_lost_answer_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let inner = local(&dir);
    inner.create().await.unwrap();
    inner.write(FileKind::Locks, "l", vec![1]).await.unwrap();
    let b = retried(faults(inner.clone(), "delete@1=lost"), 3);
    b.delete(FileKind::Locks, "l").await.unwrap();
    assert!(inner.stat(FileKind::Locks, "l").await.unwrap().is_none());
}

/// Writes and ranged reads are paced to the rate on tokio's paused clock:
/// ten 1 MiB writes at 2 MiB/s start over 4.5 s, and so do ten 1 MiB reads.
#[tokio::test(start_paused = true)]
async fn rate_limit_paces_writes_and_reads() {
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let inner = local(&dir);
    inner.create().await.unwrap();
    let rate = || Some(Arc::new(RateLimiter::new(2 * MIB)));
    let b = RateLimitedBackend::new(inner, rate(), rate());
    let t0 = Instant::now();
    for i in 0..10 {
        b.write(FileKind::Packs, &format!("ab{i:02}"), vec![7; MIB as usize])
            .await
            .unwrap();
    }
    let written = t0.elapsed().as_secs_f64();
    assert!((4.4..4.7).contains(&written), "writes took {written} s");
    let t1 = Instant::now();
    for i in 0..10 {
        b.read_range(FileKind::Packs, &format!("ab{i:02}"), 0, MIB)
            .await
            .unwrap();
    }
    let read = t1.elapsed().as_secs_f64();
    assert!((4.4..4.7).contains(&read), "reads took {read} s");
}

/// The same plan fails the same calls: the second pack write, and reads
/// cut to half their bytes.
#[tokio::test]
async fn faults_hit_the_calls_the_plan_names() {
    let dir = tempfile::tempdir().unwrap();
    let inner = local(&dir);
    inner.create().await.unwrap();
    let b = faults(inner.clone(), "write:packs@2=fail,read:index@1=truncate");
    b.write(FileKind::Index, "i1", vec![9; 100]).await.unwrap();
    b.write(FileKind::Packs, "aa01", vec![1; 10]).await.unwrap();
    let err = b
        .write(FileKind::Packs, "aa02", vec![2; 10])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert!(inner.stat(FileKind::Packs, "aa02").await.unwrap().is_none());
    b.write(FileKind::Packs, "aa03", vec![3; 10]).await.unwrap();
    assert_eq!(b.read(FileKind::Index, "i1").await.unwrap().len(), 50);
    assert_eq!(b.read(FileKind::Index, "i1").await.unwrap().len(), 100);
}

/// A seeded chance picks the same calls on every run.
#[tokio::test]
async fn seeded_chances_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let inner = local(&dir);
    inner.create().await.unwrap();
    let pattern = |seed: u64| {
        let b = faults(inner.clone(), &format!("stat@50%=fail,seed={seed}"));
        async move {
            let mut out = Vec::new();
            for _ in 0..32 {
                out.push(b.stat(FileKind::Index, "x").await.is_err());
            }
            out
        }
    };
    let first = pattern(42).await;
    assert_eq!(first, pattern(42).await);
    assert_ne!(first, pattern(43).await);
    let failed = first.iter().filter(|f| **f).count();
    assert!((6..=26).contains(&failed), "{failed} of 32 at 50%");
}
