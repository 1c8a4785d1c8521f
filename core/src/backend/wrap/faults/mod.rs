//! Fault injection, for tests: a store that fails when told to.
//!
//! **Test only.** A plan names which calls fail and how; it is given in
//! code ([`FaultPlan::parse`]) or, for a test that runs the real binary,
//! in the environment variable `CADANG_FAULTS`, which every program reads
//! where it opens a store (a warning is logged whenever a plan is active).
//! The plan is deterministic: the same plan and the same sequence of calls
//! fail the same calls; chances are drawn from the plan's seed.
//!
//! ```text
//! CADANG_FAULTS = RULE[,RULE...][,seed=N]
//! RULE   = OP[:KIND]@WHEN=ACTION
//! OP     = read | write | delete | list | stat | any
//!          (read: read and read_range; write: write, write_new, write_retained)
//! KIND   = config | keys | packs | index | snapshots | locks | pending | any other folder
//! WHEN   = N      the Nth matching call (counted from 1)
//!        | N+     the Nth and every later one
//!        | NxM    M calls from the Nth
//!        | P%     each matching call with chance P (from the seed)
//! ACTION = fail      a permanent I/O error; nothing is done
//!        | transient a timed-out I/O error; nothing is done
//!        | nospace   the store is full; nothing is done
//!        | lost      the call is done, then a timed-out error is returned (the answer was lost)
//!        | truncate  (reads) half of the bytes come back
//!        | delay:MS  the call waits MS milliseconds, then is done
//! ```
//!
//! For example `write:packs@2=fail` fails the second pack upload, and
//! `read:index@1x3=transient` makes the first three index reads time out.
//! Each rule counts the calls it matches; the first rule that fires acts.

mod plan;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;

use super::SplitMix;
use crate::backend::{layout, Backend, BackendError, BackendResult, FileInfo, FileKind};
use plan::{Action, Op, When};

pub use plan::{FaultPlan, FaultSpecError, FAULTS_ENV};

/// A backend that fails as its plan says.
#[derive(Debug)]
pub struct FaultBackend {
    inner: Arc<dyn Backend>,
    plan: FaultPlan,
    /// Matching calls seen so far, per rule.
    seen: Vec<AtomicU64>,
    chance: Mutex<SplitMix>,
}

impl FaultBackend {
    pub fn new(inner: Arc<dyn Backend>, plan: FaultPlan) -> FaultBackend {
        FaultBackend {
            inner,
            seen: plan.rules.iter().map(|_| AtomicU64::new(0)).collect(),
            chance: Mutex::new(SplitMix::new(plan.seed)),
            plan,
        }
    }

    /// Counts the call against every rule it matches and returns the action
    /// of the first that fires.
    fn decide(&self, op: Op, kind: Option<FileKind>) -> Option<Action> {
        let mut chosen = None;
        for (rule, seen) in self.plan.rules.iter().zip(&self.seen) {
            if !(rule.op == Op::Any || rule.op == op) || !kind_matches(&rule.kind, kind) {
                continue;
            }
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            let fires = match rule.when {
                When::Calls { from, count } => n >= from && count.is_none_or(|c| n < from + c),
                When::Chance(p) => self.draw() < p,
            };
            if fires && chosen.is_none() {
                chosen = Some(rule.action);
            }
        }
        chosen
    }

    fn draw(&self) -> f64 {
        self.chance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_f64()
    }

    /// Acts before the call: an error that stops it, or a delay. Returns
    /// the action left for after the call (`Lost`, `Truncate`).
    async fn before(
        &self,
        op: Op,
        kind: Option<FileKind>,
        what: impl Fn() -> String,
    ) -> BackendResult<Option<Action>> {
        let Some(action) = self.decide(op, kind) else {
            return Ok(None);
        };
        tracing::warn!(file = %what(), ?action, "injected store fault ({FAULTS_ENV})");
        match action {
            Action::Fail => Err(injected(op, what(), std::io::ErrorKind::Other)),
            Action::Transient => Err(injected(op, what(), std::io::ErrorKind::TimedOut)),
            Action::NoSpace => Err(BackendError::NoSpace { what: what() }),
            Action::Delay(d) => {
                tokio::time::sleep(d).await;
                Ok(None)
            }
            after => Ok(Some(after)),
        }
    }
}

fn kind_matches(rule: &Option<String>, kind: Option<FileKind>) -> bool {
    match (rule.as_deref(), kind) {
        (None | Some("any"), _) => true,
        (Some("config"), Some(FileKind::Config)) => true,
        (Some(dir), Some(k)) => k != FileKind::Config && k.dir() == dir,
        (Some(_), None) => false,
    }
}

fn injected(op: Op, what: String, kind: std::io::ErrorKind) -> BackendError {
    BackendError::Io {
        op: op.verb(),
        what,
        source: std::io::Error::new(kind, format!("injected fault ({FAULTS_ENV})")),
    }
}

/// The result of a call that was done, after `Lost` or `Truncate`.
fn after<T>(
    op: Op,
    action: Option<Action>,
    what: String,
    result: BackendResult<T>,
    truncate: impl FnOnce(T) -> T,
) -> BackendResult<T> {
    match (action, result) {
        (Some(Action::Lost), Ok(_)) => Err(injected(op, what, std::io::ErrorKind::TimedOut)),
        (Some(Action::Truncate), Ok(v)) => Ok(truncate(v)),
        (_, r) => r,
    }
}

fn half(mut data: Vec<u8>) -> Vec<u8> {
    data.truncate(data.len() / 2);
    data
}

#[async_trait]
impl Backend for FaultBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn create(&self) -> BackendResult<()> {
        let w = || "the repository's folders".to_string();
        let act = self.before(Op::Write, None, w).await?;
        let r = self.inner.create().await;
        after(Op::Write, act, w(), r, |v| v)
    }

    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        let w = || kind.to_string();
        let act = self.before(Op::List, Some(kind), w).await?;
        let r = self.inner.list(kind).await;
        after(Op::List, act, w(), r, |v| v)
    }

    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Vec<u8>> {
        let w = || layout::what(kind, name);
        let act = self.before(Op::Read, Some(kind), w).await?;
        let r = self.inner.read(kind, name).await;
        after(Op::Read, act, w(), r, half)
    }

    async fn read_into(&self, kind: FileKind, name: &str, buf: Vec<u8>) -> BackendResult<Vec<u8>> {
        let w = || layout::what(kind, name);
        let act = self.before(Op::Read, Some(kind), w).await?;
        let r = self.inner.read_into(kind, name, buf).await;
        after(Op::Read, act, w(), r, half)
    }

    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Vec<u8>> {
        let w = || layout::what(kind, name);
        let act = self.before(Op::Read, Some(kind), w).await?;
        let r = self.inner.read_range(kind, name, offset, length).await;
        after(Op::Read, act, w(), r, half)
    }

    async fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        let w = || layout::what(kind, name);
        let act = self.before(Op::Write, Some(kind), w).await?;
        let r = self.inner.write(kind, name, data).await;
        after(Op::Write, act, w(), r, |v| v)
    }

    async fn write_new(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        let w = || layout::what(kind, name);
        let act = self.before(Op::Write, Some(kind), w).await?;
        let r = self.inner.write_new(kind, name, data).await;
        after(Op::Write, act, w(), r, |v| v)
    }

    async fn delete(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        let w = || layout::what(kind, name);
        let act = self.before(Op::Delete, Some(kind), w).await?;
        let r = self.inner.delete(kind, name).await;
        after(Op::Delete, act, w(), r, |v| v)
    }

    async fn stat(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        let w = || layout::what(kind, name);
        let act = self.before(Op::Stat, Some(kind), w).await?;
        let r = self.inner.stat(kind, name).await;
        after(Op::Stat, act, w(), r, |v| v)
    }

    async fn write_retained(
        &self,
        kind: FileKind,
        name: &str,
        data: Vec<u8>,
        until: SystemTime,
    ) -> BackendResult<()> {
        let w = || layout::what(kind, name);
        let act = self.before(Op::Write, Some(kind), w).await?;
        let r = self.inner.write_retained(kind, name, data, until).await;
        after(Op::Write, act, w(), r, |v| v)
    }

    async fn check_retention(&self) -> BackendResult<()> {
        self.inner.check_retention().await
    }

    async fn retained_until(
        &self,
        kind: FileKind,
        name: &str,
    ) -> BackendResult<Option<SystemTime>> {
        self.inner.retained_until(kind, name).await
    }
}
