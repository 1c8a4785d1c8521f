//! The state writer (group commit): many callers' changes in one commit,
//! each answered only after it; a failing or panicking op fails alone; memory
//! hooks run only after a commit; stop releases the state file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cadang_controller::error::Error;
use cadang_controller::state::writer::{Writer, WriterOptions};
use cadang_controller::state::{get_json, put_json, State, META};

fn open(dir: &tempfile::TempDir) -> Arc<State> {
    State::open(&dir.path().join("state.redb")).unwrap()
}

fn stored(state: &State, key: &str) -> Option<u64> {
    state
        .read(|txn| get_json::<u64>(&txn.open_table(META)?, key))
        .unwrap()
}

/// Puts `key = value` in META.
async fn put(writer: &Writer, key: String, value: u64) -> Result<(), Error> {
    writer
        .write(move |b| put_json(&mut b.txn.open_table(META)?, &key, &value))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_each_is_stored_when_answered() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(&dir);
    let writer = Writer::start(
        state.clone(),
        WriterOptions {
            window: Duration::from_millis(50),
            max_ops: 1000,
        },
    )
    .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let (w, s) = (writer.clone(), state.clone());
        tasks.spawn(async move {
            put(&w, format!("k{i}"), i).await.unwrap();
            // Answered means committed: a fresh read sees it.
            assert_eq!(stored(&s, &format!("k{i}")), Some(i));
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let commits = writer.stats().commits.load(Ordering::Relaxed);
    assert_eq!(writer.stats().ops.load(Ordering::Relaxed), 200);
    // 200 callers within a 50 ms window: a handful of commits, not 200.
    assert!(commits <= 20, "{commits} commits for 200 writes");
    writer.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_op_fails_alone_and_its_memory_hook_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(&dir);
    let writer = Writer::start(
        state.clone(),
        WriterOptions {
            window: Duration::from_millis(100),
            max_ops: 1000,
        },
    )
    .unwrap();
    let hooks = Arc::new(AtomicUsize::new(0));
    let good = |key: &'static str| {
        let (w, h) = (writer.clone(), hooks.clone());
        tokio::spawn(async move {
            w.write(move |b| {
                put_json(&mut b.txn.open_table(META)?, key, &1u64)?;
                let h = h.clone();
                b.after_commit(move || {
                    h.fetch_add(1, Ordering::SeqCst);
                });
                Ok(())
            })
            .await
        })
    };
    let before = good("before");
    let w = writer.clone();
    let h = hooks.clone();
    let bad = tokio::spawn(async move {
        w.write(move |b| {
            // Its change and its hook must vanish with it.
            put_json(&mut b.txn.open_table(META)?, "bad", &1u64)?;
            let h = h.clone();
            b.after_commit(move || {
                h.fetch_add(100, Ordering::SeqCst);
            });
            Err::<(), _>(Error::Invalid("refused".into()))
        })
        .await
    });
    let w = writer.clone();
    let panics = tokio::spawn(async move {
        w.write(|_b| -> Result<(), Error> { panic!("a bug in an op") })
            .await
    });
    let after = good("after");
    assert!(before.await.unwrap().is_ok());
    assert!(after.await.unwrap().is_ok());
    assert!(matches!(bad.await.unwrap(), Err(Error::Invalid(m)) if m == "refused"));
    assert!(panics.await.unwrap().is_err());
    assert_eq!(stored(&state, "before"), Some(1));
    assert_eq!(stored(&state, "after"), Some(1));
    assert_eq!(stored(&state, "bad"), None);
    assert_eq!(hooks.load(Ordering::SeqCst), 2);
    // The writer still works after a panicking op.
    put(&writer, "later".into(), 7).await.unwrap();
    assert_eq!(stored(&state, "later"), Some(7));
    writer.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_commits_what_was_answered_and_releases_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(&dir);
    let writer = Writer::start(state.clone(), WriterOptions::default()).unwrap();
    put(&writer, "kept".into(), 3).await.unwrap();
    writer.stop();
    assert!(put(&writer, "refused".into(), 4).await.is_err());
    drop(state);
    // The thread's handle on the state is gone: the file opens again.
    let state = open(&dir);
    assert_eq!(stored(&state, "kept"), Some(3));
    assert_eq!(stored(&state, "refused"), None);
}
