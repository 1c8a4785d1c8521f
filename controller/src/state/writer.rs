//! Group commit: one writer thread runs the hot writes of many requests
//! (jobs handed out in polls, agents' report batches, dispatch rounds,
//! site-job results) in one redb write transaction and one fsync.
//!
//! redb has one writer at a time and fsyncs each commit, so at 10,000
//! agents one commit per request queues every request behind hundreds of
//! fsyncs. Here a request is an *op* (a closure over the transaction). The
//! thread takes the first op, then whatever else arrives within a short
//! window (or up to a number of ops), runs them in order in one
//! transaction, commits once, and only then answers each caller.
//!
//! Durability is unchanged: a caller's future resolves after the commit
//! that holds its change is on disk, so a report is acknowledged only once
//! it is committed, and a job is marked delivered before the poll that
//! hands it out answers. A `kill -9` before the commit loses the whole
//! batch and nobody was told it was stored.
//!
//! An op that fails must not take its batch mates down with it: the batch
//! is aborted and each op runs again alone, in order, in its own
//! transaction; only the failing one gets its error. Ops therefore change
//! nothing outside the transaction while they run (they may run twice):
//! what memory should learn from a commit goes into
//! [`Batch::after_commit`], run once the commit succeeded.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::WriteTransaction;
use tokio::sync::oneshot;

use super::State;
use crate::error::{Error, Result};

/// How long the writer waits for more ops after the first of a batch, and
/// how many it takes at most.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    pub window: Duration,
    pub max_ops: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        // 5 ms costs a lone request little and, under load, gathers the
        // polls and reports of that instant into one commit.
        WriterOptions {
            window: Duration::from_millis(5),
            max_ops: 1000,
        }
    }
}

/// What an op sees: the batch's transaction, and a place for what memory
/// should do once that transaction is committed.
pub struct Batch<'a> {
    pub txn: &'a WriteTransaction,
    after: Vec<AfterCommit>,
}

type AfterCommit = Box<dyn FnOnce() + Send>;

impl Batch<'_> {
    /// Runs `f` after the commit (memory follows the state, never leads).
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after.push(Box::new(f));
    }
}

/// Commits made and ops carried, since the start (for the bench and logs).
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: std::sync::atomic::AtomicU64,
    pub ops: std::sync::atomic::AtomicU64,
}

/// An op with its caller's answer channel, type-erased for the queue.
trait Pending: Send {
    fn run(&mut self, batch: &mut Batch<'_>) -> Result<()>;
    /// Answers the caller: the op's value when `committed` is Ok.
    fn answer(self: Box<Self>, committed: Result<()>);
}

struct Op<T, F> {
    f: F,
    value: Option<T>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Pending for Op<T, F>
where
    T: Send + 'static,
    F: FnMut(&mut Batch<'_>) -> Result<T> + Send + 'static,
{
    fn run(&mut self, batch: &mut Batch<'_>) -> Result<()> {
        self.value = Some((self.f)(batch)?);
        Ok(())
    }

    fn answer(self: Box<Self>, committed: Result<()>) {
        let Op { value, reply, .. } = *self;
        let out = committed.and_then(|()| {
            value.ok_or_else(|| Error::State("a write op was answered without running".into()))
        });
        // The caller may have gone (its connection closed): nothing to do.
        let _ = reply.send(out);
    }
}

/// The handle callers submit ops through; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` once stopped.
    tx: Mutex<Option<mpsc::Sender<Box<dyn Pending>>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    stats: Arc<WriterStats>,
}

impl Writer {
    /// Starts the writer thread over `state`; [`Writer::stop`] ends it.
    pub fn start(state: Arc<State>, options: WriterOptions) -> Result<Writer> {
        let (tx, rx) = mpsc::channel::<Box<dyn Pending>>();
        let stats = Arc::new(WriterStats::default());
        let s = stats.clone();
        let thread = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || writer_loop(&state, &rx, options, &s))
            .map_err(|e| Error::State(format!("cannot start the state writer thread: {e}")))?;
        Ok(Writer {
            inner: Arc::new(Inner {
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                stats,
            }),
        })
    }

    /// Runs `f` in the next batch; resolves after that batch is committed.
    /// `f` may run more than once (see the module doc): keep it free of
    /// side effects outside the transaction.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut Batch<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = Box::new(Op {
            f,
            value: None,
            reply,
        });
        let sent = match &*lock(&self.inner.tx) {
            Some(tx) => tx.send(op).is_ok(),
            None => false,
        };
        if !sent {
            return Err(Error::State(
                "the state writer has stopped (the controller is shutting down)".into(),
            ));
        }
        answer.await.map_err(|_| {
            Error::State("the state writer stopped before committing this change".into())
        })?
    }

    /// Commits what is queued, then ends the thread and releases the state
    /// (a restart in the same process opens it again). Later writes fail.
    pub fn stop(&self) {
        drop(lock(&self.inner.tx).take());
        if let Some(thread) = lock(&self.inner.thread).take() {
            if thread.join().is_err() {
                tracing::error!("the state writer thread ended with a panic");
            }
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.inner.stats
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn writer_loop(
    state: &State,
    rx: &mpsc::Receiver<Box<dyn Pending>>,
    options: WriterOptions,
    stats: &WriterStats,
) {
    while let Some(batch) = gather(rx, options) {
        stats.ops.fetch_add(batch.len() as u64, Ordering::Relaxed);
        commit_batch(state, batch, stats);
    }
}

/// Blocks for the first op, then takes what arrives within the window.
/// `None` once every handle is gone and the queue is empty.
fn gather(
    rx: &mpsc::Receiver<Box<dyn Pending>>,
    options: WriterOptions,
) -> Option<Vec<Box<dyn Pending>>> {
    let first = rx.recv().ok()?;
    let mut batch = vec![first];
    let until = Instant::now() + options.window;
    while batch.len() < options.max_ops {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// The batch in one transaction; when an op fails, each op alone.
fn commit_batch(state: &State, mut ops: Vec<Box<dyn Pending>>, stats: &WriterStats) {
    match run_together(state, &mut ops) {
        Ok(after) => {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            run_hooks(after);
            ops.into_iter().for_each(|op| op.answer(Ok(())));
        }
        Err(Failure::Commit(e)) => {
            tracing::error!(error = %e, ops = ops.len(), "committing a batch of state changes failed");
            let message = e.to_string();
            for op in ops {
                op.answer(Err(Error::State(message.clone())));
            }
        }
        Err(Failure::Op) => {
            for op in ops {
                commit_alone(state, op, stats);
            }
        }
    }
}

enum Failure {
    /// An op returned an error (or panicked): the transaction was aborted.
    Op,
    /// Every op ran; the commit itself failed (disk full, I/O error).
    Commit(Error),
}

fn run_together(
    state: &State,
    ops: &mut [Box<dyn Pending>],
) -> std::result::Result<Vec<AfterCommit>, Failure> {
    let mut op_failed = false;
    let result = state.write(|txn| {
        let mut batch = Batch {
            txn,
            after: Vec::new(),
        };
        for op in ops.iter_mut() {
            if let Err(e) = run_guarded(op.as_mut(), &mut batch) {
                op_failed = true;
                return Err(e);
            }
        }
        Ok(batch.after)
    });
    match result {
        Ok(after) => Ok(after),
        Err(_) if op_failed => Err(Failure::Op),
        Err(e) => Err(Failure::Commit(e)),
    }
}

/// One op in its own transaction; its error (or the commit's) is its answer.
fn commit_alone(state: &State, mut op: Box<dyn Pending>, stats: &WriterStats) {
    let result = state.write(|txn| {
        let mut batch = Batch {
            txn,
            after: Vec::new(),
        };
        run_guarded(op.as_mut(), &mut batch)?;
        Ok(batch.after)
    });
    match result {
        Ok(after) => {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            run_hooks(after);
            op.answer(Ok(()));
        }
        Err(e) => op.answer(Err(e)),
    }
}

/// Memory follows the commit; a panicking hook is logged, and the writer
/// carries on (the state is committed either way).
fn run_hooks(after: Vec<AfterCommit>) {
    for f in after {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
            tracing::error!(
                "updating memory after a commit failed (a bug); the state is committed"
            );
        }
    }
}

/// A panicking op fails alone instead of ending the writer thread (which
/// would stop every later write).
fn run_guarded(op: &mut dyn Pending, batch: &mut Batch<'_>) -> Result<()> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op.run(batch))) {
        Ok(r) => r,
        Err(_) => Err(Error::State(
            "an internal error stopped this state change (a bug: see the controller log)".into(),
        )),
    }
}
