//! Retries of transient store errors, with exponential backoff and jitter.
//!
//! Only errors [`BackendError::is_transient`] names are retried (a timed-out
//! or reset I/O call); an answer such as "not found", "already exists", an
//! invalid name, permission denied or a full store comes back at once. After
//! the last attempt the last error is returned, saying how many attempts
//! were made.
//!
//! A retry must not change what a call means. Two calls need care, because
//! an attempt that failed may still have been carried out (the answer was
//! lost, not the work):
//!
//! * `write_new` that finds the file existing after such an attempt reads
//!   it back: the same bytes are its own earlier attempt (success), other
//!   bytes a real conflict (`AlreadyExists`);
//! * `delete` that finds the file missing after such an attempt counts as
//!   done.
//!
//! Every attempt hands the store the whole file, so a retried write is as
//! all-or-nothing as the first. The price is a copy of the bytes kept for
//! the next attempt while a write is in flight.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::SplitMix;
use crate::backend::{Backend, BackendError, BackendResult, FileInfo, FileKind};

/// How often and how patiently to retry.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (1 means no retry).
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles for each later one.
    pub base_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
    /// Seeds the jitter (tests); `None` seeds it from the OS, so that many
    /// agents hit by one outage do not come back in step.
    pub jitter_seed: Option<u64>,
}

impl Default for RetryPolicy {
    /// Five attempts over about 6 s in all (0.5, 1, 2 and 4 s less jitter):
    /// long enough for a remount or a network blip, short enough that a
    /// store that is really gone is reported while the operator still
    /// watches.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            jitter_seed: None,
        }
    }
}

/// A backend whose calls are retried on transient errors.
#[derive(Debug)]
pub struct RetryBackend {
    inner: Arc<dyn Backend>,
    policy: RetryPolicy,
    jitter: Mutex<SplitMix>,
}

/// What a failed attempt left uncertain.
#[derive(Clone, Copy, PartialEq)]
enum Attempts {
    /// Every failed attempt so far was an answer; nothing was done.
    Clean,
    /// A transient failure came before: the store may have done the work.
    MaybeDone,
}

impl RetryBackend {
    pub fn new(inner: Arc<dyn Backend>, policy: RetryPolicy) -> RetryBackend {
        let jitter = match policy.jitter_seed {
            Some(seed) => SplitMix::new(seed),
            None => SplitMix::from_os(),
        };
        RetryBackend {
            inner,
            policy,
            jitter: Mutex::new(jitter),
        }
    }

    /// The wait after `failed` failed attempts: the exponential step,
    /// less up to half of it at random ("equal jitter": never shorter than
    /// half the step, so the backoff still grows).
    fn backoff(&self, failed: u32) -> Duration {
        let step = self
            .policy
            .base_delay
            .saturating_mul(
                1u32.checked_shl(failed.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.policy.max_delay);
        let r = self
            .jitter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_f64();
        step.mul_f64(1.0 - 0.5 * r)
    }

    /// Runs `call` until it succeeds, fails with an answer, or the attempts
    /// are used up. `settle` may turn the error of a later attempt into a
    /// result, knowing whether an earlier attempt may have done the work.
    async fn attempts<T, F, Fut>(
        &self,
        what: &str,
        mut call: F,
        settle: impl AsyncSettle<T>,
    ) -> BackendResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = BackendResult<T>>,
    {
        let max = self.policy.max_attempts.max(1);
        let mut state = Attempts::Clean;
        let mut tried = 0u32;
        loop {
            tried += 1;
            let err = match call().await {
                Ok(v) => return Ok(v),
                Err(e) if state == Attempts::MaybeDone => match settle.settle(e).await {
                    Ok(v) => return Ok(v),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if !err.is_transient() {
                return Err(err);
            }
            if tried >= max {
                return Err(gave_up(err, tried));
            }
            state = Attempts::MaybeDone;
            let wait = self.backoff(tried);
            tracing::warn!(
                store = %self.inner.location(), file = what, attempt = tried, error = %err,
                "transient store error; trying again in {} ms", wait.as_millis()
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// The last error, saying that it was the last of several attempts. It
/// stays an I/O error of the same kind, so callers that sort errors (the
/// controller's job pool) still see it as transient.
fn gave_up(err: BackendError, tried: u32) -> BackendError {
    match err {
        BackendError::Io { op, what, source } if tried > 1 => BackendError::Io {
            op,
            what,
            source: std::io::Error::new(
                source.kind(),
                format!("{source} (gave up after {tried} attempts)"),
            ),
        },
        other => other,
    }
}

/// Turns the error of a retry into a result where an earlier attempt
/// explains it.
#[async_trait]
trait AsyncSettle<T>: Send + Sync {
    async fn settle(&self, e: BackendError) -> BackendResult<T>;
}

/// The error stands.
struct AsIs;

#[async_trait]
impl<T: Send + 'static> AsyncSettle<T> for AsIs {
    async fn settle(&self, e: BackendError) -> BackendResult<T> {
        Err(e)
    }
}

/// `AlreadyExists` after a lost answer: our own earlier attempt if the
/// stored bytes are ours.
struct OwnCreate<'a> {
    inner: &'a dyn Backend,
    kind: FileKind,
    name: &'a str,
    data: &'a [u8],
}

#[async_trait]
impl AsyncSettle<()> for OwnCreate<'_> {
    async fn settle(&self, e: BackendError) -> BackendResult<()> {
        if !matches!(e, BackendError::AlreadyExists { .. }) {
            return Err(e);
        }
        match self.inner.read(self.kind, self.name).await {
            Ok(existing) if existing == self.data => Ok(()),
            _ => Err(e),
        }
    }
}

/// `NotFound` after a lost answer: the earlier attempt deleted it.
struct GoneAlready;

#[async_trait]
impl AsyncSettle<()> for GoneAlready {
    async fn settle(&self, e: BackendError) -> BackendResult<()> {
        if e.is_not_found() {
            Ok(())
        } else {
            Err(e)
        }
    }
}

fn what(kind: FileKind, name: &str) -> String {
    crate::backend::layout::what(kind, name)
}

#[async_trait]
impl Backend for RetryBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn create(&self) -> BackendResult<()> {
        self.attempts("the repository's folders", || self.inner.create(), AsIs)
            .await
    }

    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        self.attempts(kind.dir(), || self.inner.list(kind), AsIs)
            .await
    }

    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Vec<u8>> {
        let w = what(kind, name);
        self.attempts(&w, || self.inner.read(kind, name), AsIs)
            .await
    }

    async fn read_into(&self, kind: FileKind, name: &str, buf: Vec<u8>) -> BackendResult<Vec<u8>> {
        // The first attempt gets the buffer; a retry reads into a new one.
        let buf = std::sync::Mutex::new(Some(buf));
        let w = what(kind, name);
        let call = || {
            let b = buf
                .lock()
                .ok()
                .and_then(|mut b| b.take())
                .unwrap_or_default();
            self.inner.read_into(kind, name, b)
        };
        self.attempts(&w, call, AsIs).await
    }

    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Vec<u8>> {
        let w = what(kind, name);
        let call = || self.inner.read_range(kind, name, offset, length);
        self.attempts(&w, call, AsIs).await
    }

    async fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        let w = what(kind, name);
        let call = || self.inner.write(kind, name, data.clone());
        self.attempts(&w, call, AsIs).await
    }

    async fn write_new(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        let w = what(kind, name);
        let own = OwnCreate {
            inner: &*self.inner,
            kind,
            name,
            data: &data,
        };
        let call = || self.inner.write_new(kind, name, data.clone());
        self.attempts(&w, call, own).await
    }

    async fn delete(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        let w = what(kind, name);
        self.attempts(&w, || self.inner.delete(kind, name), GoneAlready)
            .await
    }

    async fn stat(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        let w = what(kind, name);
        self.attempts(&w, || self.inner.stat(kind, name), AsIs)
            .await
    }

    async fn write_retained(
        &self,
        kind: FileKind,
        name: &str,
        data: Vec<u8>,
        until: SystemTime,
    ) -> BackendResult<()> {
        let w = what(kind, name);
        let call = || self.inner.write_retained(kind, name, data.clone(), until);
        self.attempts(&w, call, AsIs).await
    }

    async fn check_retention(&self) -> BackendResult<()> {
        self.attempts("Object Lock", || self.inner.check_retention(), AsIs)
            .await
    }

    async fn retained_until(
        &self,
        kind: FileKind,
        name: &str,
    ) -> BackendResult<Option<SystemTime>> {
        let w = what(kind, name);
        self.attempts(&w, || self.inner.retained_until(kind, name), AsIs)
            .await
    }
}
