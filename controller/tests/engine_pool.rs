//! The site-job pool's rules, observed with a scripted runner: per-store
//! limit, Busy, panics, timeouts, retries with backoff, shutdown.

mod engine_common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cadang_controller::engine::{
    Clock, JobError, JobRunner, ManualClock, PoolConfig, Report, SiteJob, SiteJobKind, SiteJobPool,
    SiteJobResult, SiteOutcome, SubmitError,
};
use cadang_policies::model::Site;
use engine_common::*;
use tokio::sync::{mpsc, Semaphore};

/// What the scripted runner does on each attempt of a job (by job id).
#[derive(Clone, Copy)]
enum Script {
    /// Wait until the test releases a permit, then succeed.
    Gate,
    /// Never finish.
    Hang,
    Panic,
    /// Fail transiently this many times, then succeed.
    FailTransient(u32),
    Permanent,
    Problems,
}

struct Scripted {
    scripts: Mutex<HashMap<String, Script>>,
    attempts: Mutex<HashMap<String, u32>>,
    gate: Arc<Semaphore>,
    /// Jobs inside `run` per store name, and the most ever seen at once.
    per_store: Mutex<HashMap<String, (usize, usize)>>,
    inside: AtomicUsize,
    cancelled: Mutex<Vec<String>>,
}

impl Scripted {
    fn new() -> Arc<Scripted> {
        Arc::new(Scripted {
            scripts: Mutex::default(),
            attempts: Mutex::default(),
            gate: Arc::new(Semaphore::new(0)),
            per_store: Mutex::default(),
            inside: AtomicUsize::new(0),
            cancelled: Mutex::default(),
        })
    }

    fn script(&self, id: &str, s: Script) {
        self.scripts.lock().unwrap().insert(id.into(), s);
    }

    fn max_at_once(&self, store: &str) -> usize {
        self.per_store.lock().unwrap().get(store).map_or(0, |c| c.1)
    }

    fn enter(&self, store: &str) {
        let mut m = self.per_store.lock().unwrap();
        let c = m.entry(store.to_string()).or_default();
        c.0 += 1;
        c.1 = c.1.max(c.0);
        self.inside.fetch_add(1, Ordering::SeqCst);
    }

    fn leave(&self, store: &str) {
        self.per_store.lock().unwrap().get_mut(store).unwrap().0 -= 1;
        self.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Leaves the per-store count when `run` ends or is dropped (aborted).
struct Inside<'a>(&'a Scripted, String);
impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.leave(&self.1);
    }
}

#[async_trait::async_trait]
impl JobRunner for Scripted {
    async fn run(&self, job: &SiteJob, _clock: Arc<dyn Clock>) -> Result<Report, JobError> {
        let store = job.kind.stores()[0].name.clone();
        self.enter(&store);
        let _inside = Inside(self, store);
        let attempt = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry(job.id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let script = self
            .scripts
            .lock()
            .unwrap()
            .get(&job.id)
            .copied()
            .unwrap_or(Script::Gate);
        let ok = || Report {
            problems: false,
            message: "done".into(),
            detail: serde_json::json!({}),
        };
        match script {
            Script::Gate => {
                self.gate.acquire().await.unwrap().forget();
                Ok(ok())
            }
            Script::Hang => std::future::pending().await,
            Script::Panic => panic!("scripted panic"),
            Script::FailTransient(n) if attempt <= n => Err(JobError::Transient(
                "store at /nowhere cannot be used".into(),
            )),
            Script::FailTransient(_) => Ok(ok()),
            Script::Permanent => Err(JobError::Permanent("wrong repository".into())),
            Script::Problems => Ok(Report {
                problems: true,
                message: "damage".into(),
                detail: serde_json::json!({}),
            }),
        }
    }

    async fn after_cancel(&self, job: &SiteJob) {
        self.cancelled.lock().unwrap().push(job.id.clone());
    }
}

fn verify(id: &str, pd: &str, store: &str) -> SiteJob {
    SiteJob {
        id: id.into(),
        pd: pd.into(),
        kind: SiteJobKind::Verify {
            store: target(store, std::path::Path::new("/unused")),
            site: Site::OnSite,
            read_share_percent: 5,
        },
    }
}

fn config(workers: usize, per_store: usize) -> PoolConfig {
    PoolConfig {
        workers,
        per_store,
        timeout: Duration::from_secs(3600),
        max_attempts: 4,
        backoff_base: Duration::from_secs(60),
        backoff_cap: Duration::from_secs(600),
    }
}

fn start(
    cfg: PoolConfig,
    runner: Arc<Scripted>,
) -> (
    SiteJobPool,
    mpsc::UnboundedReceiver<SiteJobResult>,
    Arc<ManualClock>,
) {
    let clock = Arc::new(ManualClock::new(at("2026-06-10T00:00:00Z")));
    let (pool, rx) = SiteJobPool::start_with(cfg, clock.clone(), runner);
    (pool, rx, clock)
}

/// Polls (yielding, a few ms at a time) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_store_limit_holds() {
    let runner = Scripted::new();
    let (pool, mut rx, _clock) = start(config(8, 2), runner.clone());
    for i in 0..6 {
        pool.submit(verify(&format!("a{i}"), &format!("PD{i}"), "a"))
            .unwrap();
    }
    pool.submit(verify("b0", "PD0", "b")).unwrap();
    until("2 on store a and 1 on b run", || {
        runner.inside.load(Ordering::SeqCst) == 3
    })
    .await;
    assert_eq!(pool.running(), 3);
    assert_eq!(pool.queued(), 4);
    runner.gate.add_permits(7);
    for _ in 0..7 {
        assert_eq!(rx.recv().await.unwrap().outcome, SiteOutcome::Succeeded);
    }
    assert_eq!(
        runner.max_at_once("a"),
        2,
        "never more than per_store on one store"
    );
    assert_eq!(runner.max_at_once("b"), 1);
    assert_eq!((pool.running(), pool.queued()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_bound_all_stores_together() {
    let runner = Scripted::new();
    let (pool, mut rx, _clock) = start(config(2, 5), runner.clone());
    for i in 0..5 {
        pool.submit(verify(&format!("j{i}"), "PD", &format!("s{i}")))
            .unwrap();
    }
    until("two run", || runner.inside.load(Ordering::SeqCst) == 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(runner.inside.load(Ordering::SeqCst), 2, "workers = 2");
    runner.gate.add_permits(5);
    for _ in 0..5 {
        rx.recv().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_busy_until_the_first_finishes() {
    let runner = Scripted::new();
    let (pool, mut rx, _clock) = start(config(4, 4), runner.clone());
    pool.submit(verify("v1", "DINKES", "onsite")).unwrap();
    assert_eq!(
        pool.submit(verify("v2", "DINKES", "onsite")),
        Err(SubmitError::Busy)
    );
    // Another PD, another store, or another kind is not a duplicate.
    pool.submit(verify("v3", "DISDIK", "onsite")).unwrap();
    pool.submit(verify("v4", "DINKES", "dr")).unwrap();
    let retention = SiteJob {
        id: "r1".into(),
        pd: "DINKES".into(),
        kind: SiteJobKind::Retention {
            store: target("onsite", std::path::Path::new("/unused")),
            site: Site::OnSite,
            keep: cadang_policies::retention::KeepPolicy {
                last: 1,
                ..Default::default()
            },
        },
    };
    pool.submit(retention).unwrap();
    runner.gate.add_permits(4);
    for _ in 0..4 {
        rx.recv().await.unwrap();
    }
    pool.submit(verify("v5", "DINKES", "onsite")).unwrap();
    runner.gate.add_permits(1);
    assert_eq!(rx.recv().await.unwrap().job.id, "v5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_an_internal_error_not_damage() {
    let runner = Scripted::new();
    runner.script("p", Script::Panic);
    let (pool, mut rx, _clock) = start(config(1, 1), runner.clone());
    pool.submit(verify("p", "DINKES", "onsite")).unwrap();
    let r = rx.recv().await.unwrap();
    assert_eq!(r.outcome, SiteOutcome::Failed);
    assert!(r.message.contains("internal error"), "{}", r.message);
    assert_eq!(r.attempt, 1, "a crash is not retried");
    // The pool keeps working and the PD is free again.
    pool.submit(verify("after", "DINKES", "onsite")).unwrap();
    runner.gate.add_permits(1);
    assert_eq!(rx.recv().await.unwrap().outcome, SiteOutcome::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_timeout_is_cancelled_as_timed_out() {
    let runner = Scripted::new();
    runner.script("slow", Script::Hang);
    let (pool, mut rx, clock) = start(config(1, 1), runner.clone());
    pool.submit(verify("slow", "DINKES", "onsite")).unwrap();
    until("it runs", || runner.inside.load(Ordering::SeqCst) == 1).await;
    clock.advance(chrono::Duration::minutes(59));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(pool.running(), 1, "not before the limit");
    clock.advance(chrono::Duration::minutes(1));
    let r = rx.recv().await.unwrap();
    assert_eq!(r.outcome, SiteOutcome::TimedOut);
    assert_eq!(r.finished - r.started, chrono::Duration::hours(1));
    assert_eq!(
        runner.inside.load(Ordering::SeqCst),
        0,
        "the attempt was dropped"
    );
    assert_eq!(*runner.cancelled.lock().unwrap(), ["slow"], "cleanup ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_retry_with_capped_backoff_on_the_clock() {
    let runner = Scripted::new();
    runner.script("flaky", Script::FailTransient(3));
    let (pool, mut rx, clock) = start(config(1, 1), runner.clone());
    pool.submit(verify("flaky", "DINKES", "onsite")).unwrap();
    // Backoffs: 60 s, 120 s, 240 s, each with jitter in its upper half.
    for (attempt, full) in [(1u32, 60i64), (2, 120), (3, 240)] {
        until("the retry waits", || {
            runner.attempts.lock().unwrap().get("flaky") == Some(&attempt)
                && pool.running() == 0
                && clock.sleepers() == 1
        })
        .await;
        assert_eq!(pool.queued(), 1, "waiting to retry counts as queued");
        clock.advance(chrono::Duration::seconds(full / 2 - 1));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            runner.attempts.lock().unwrap()["flaky"],
            attempt,
            "not before half the backoff"
        );
        clock.advance(chrono::Duration::seconds(full / 2 + 1));
    }
    let r = rx.recv().await.unwrap();
    assert_eq!(r.outcome, SiteOutcome::Succeeded);
    assert_eq!(r.attempt, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_after_max_attempts_and_no_retry_for_problems_or_permanent_errors() {
    let runner = Scripted::new();
    runner.script("down", Script::FailTransient(99));
    runner.script("damaged", Script::Problems);
    runner.script("wrong", Script::Permanent);
    let mut cfg = config(3, 3);
    cfg.max_attempts = 2;
    let (pool, mut rx, clock) = start(cfg, runner.clone());
    pool.submit(verify("damaged", "A", "s")).unwrap();
    pool.submit(verify("wrong", "B", "s")).unwrap();
    pool.submit(verify("down", "C", "s")).unwrap();
    let mut results = HashMap::new();
    for _ in 0..2 {
        let r = rx.recv().await.unwrap();
        results.insert(r.job.id.clone(), r);
    }
    assert_eq!(results["damaged"].outcome, SiteOutcome::Problems);
    assert_eq!(results["damaged"].attempt, 1);
    assert_eq!(results["wrong"].outcome, SiteOutcome::Failed);
    assert_eq!(results["wrong"].attempt, 1);
    until("the retry waits", || {
        clock.sleepers() == 1 && pool.running() == 0
    })
    .await;
    clock.advance(chrono::Duration::minutes(10));
    let r = rx.recv().await.unwrap();
    assert_eq!(
        (r.job.id.as_str(), r.outcome, r.attempt),
        ("down", SiteOutcome::Failed, 2)
    );
    assert!(
        r.message.contains("gave up after 2 attempt"),
        "{}",
        r.message
    );
    assert_eq!(runner.attempts.lock().unwrap()["down"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_running_and_queued_jobs() {
    let runner = Scripted::new();
    runner.script("running", Script::Hang);
    let (pool, mut rx, _clock) = start(config(1, 1), runner.clone());
    pool.submit(verify("running", "A", "s")).unwrap();
    pool.submit(verify("queued", "B", "s")).unwrap();
    until("one runs", || runner.inside.load(Ordering::SeqCst) == 1).await;
    pool.shutdown(Duration::from_secs(10)).await;
    let mut outcomes = HashMap::new();
    while let Some(r) = rx.recv().await {
        outcomes.insert(r.job.id.clone(), r.outcome);
    }
    assert_eq!(outcomes["running"], SiteOutcome::Cancelled);
    assert_eq!(outcomes["queued"], SiteOutcome::Cancelled);
    assert_eq!(*runner.cancelled.lock().unwrap(), ["running"]);
    assert_eq!(
        runner.attempts.lock().unwrap().get("queued"),
        None,
        "never started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_one_pd_and_store_take_turns() {
    let runner = Scripted::new();
    let (pool, mut rx, _clock) = start(config(4, 4), runner.clone());
    pool.submit(verify("v", "DINKES", "onsite")).unwrap();
    let retention = SiteJob {
        id: "r".into(),
        pd: "DINKES".into(),
        kind: SiteJobKind::Retention {
            store: target("onsite", std::path::Path::new("/unused")),
            site: Site::OnSite,
            keep: cadang_policies::retention::KeepPolicy {
                last: 1,
                ..Default::default()
            },
        },
    };
    pool.submit(retention).unwrap();
    until("one runs", || runner.inside.load(Ordering::SeqCst) == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(runner.inside.load(Ordering::SeqCst), 1, "the other waits");
    assert_eq!((pool.running(), pool.queued()), (1, 1));
    runner.gate.add_permits(2);
    rx.recv().await.unwrap();
    rx.recv().await.unwrap();
    assert_eq!(runner.max_at_once("onsite"), 1);
}
