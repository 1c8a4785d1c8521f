//! A store wrapper that lets a running backup stop at a safe point.
//!
//! Once [`StopGuard::stop`] is called every further read, list and write
//! fails, so the backup's pipeline meets an error at its next store
//! operation and winds down through its normal error path: the session
//! aborts and releases its repository lock. Deleting lock files is always
//! let through. The repository's write order (packs, then index, then
//! snapshot) makes a backup cut anywhere harmless: uploaded packs are
//! reused by the next run.
//!
//! It also records the lock files the backup created, so that if the
//! backup does not wind down in time the daemon removes them itself — an
//! orphaned lock would otherwise hold prune back for 30 minutes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cadang_core::backend::{Backend, BackendError, BackendResult, FileInfo, FileKind};

#[derive(Debug)]
pub struct StopGuard {
    inner: Arc<dyn Backend>,
    stopped: AtomicBool,
    locks: Mutex<HashSet<String>>,
}

impl StopGuard {
    pub fn new(inner: Arc<dyn Backend>) -> StopGuard {
        StopGuard {
            inner,
            stopped: AtomicBool::new(false),
            locks: Mutex::new(HashSet::new()),
        }
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    fn check(&self, what: &str) -> BackendResult<()> {
        if self.is_stopped() {
            return Err(BackendError::Unavailable {
                location: self.inner.location(),
                reason: format!("the agent is stopping; {what} was not done (the backup ends here and is retried)"),
            });
        }
        Ok(())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes every lock file this backup created and did not remove.
    pub async fn remove_leftover_locks(&self) -> usize {
        let names: Vec<String> = self.held().drain().collect();
        let mut removed = 0;
        for n in names {
            match self.inner.delete(FileKind::Locks, &n).await {
                Ok(()) => removed += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::warn!(lock = %n, error = %e, "could not remove the backup's lock; prune ignores it after 30 minutes")
                }
            }
        }
        removed
    }
}

#[async_trait]
impl Backend for StopGuard {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn create(&self) -> BackendResult<()> {
        self.check("creating the store")?;
        self.inner.create().await
    }

    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        self.check("a listing")?;
        self.inner.list(kind).await
    }

    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Vec<u8>> {
        self.check("a read")?;
        self.inner.read(kind, name).await
    }

    async fn read_into(&self, kind: FileKind, name: &str, buf: Vec<u8>) -> BackendResult<Vec<u8>> {
        self.check("a read")?;
        self.inner.read_into(kind, name, buf).await
    }

    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Vec<u8>> {
        self.check("a read")?;
        self.inner.read_range(kind, name, offset, length).await
    }

    async fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        self.check("a write")?;
        self.inner.write(kind, name, data).await
    }

    async fn write_new(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        self.check("a write")?;
        if kind == FileKind::Locks {
            // Recorded before the write: a lock written but not recorded
            // could be left behind.
            self.held().insert(name.to_string());
        }
        self.inner.write_new(kind, name, data).await
    }

    async fn delete(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        if kind == FileKind::Locks {
            let r = self.inner.delete(kind, name).await;
            if r.is_ok() || matches!(&r, Err(e) if e.is_not_found()) {
                self.held().remove(name);
            }
            return r;
        }
        self.check("a delete")?;
        self.inner.delete(kind, name).await
    }

    async fn stat(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        self.check("a lookup")?;
        self.inner.stat(kind, name).await
    }

    // The retention calls are forwarded too: without them the guard would
    // answer with the trait's defaults ("unsupported", "not retained") and a
    // guarded prune or replicate --lock-days would misjudge an Object Lock
    // store.
    async fn write_retained(
        &self,
        kind: FileKind,
        name: &str,
        data: Vec<u8>,
        until: std::time::SystemTime,
    ) -> BackendResult<()> {
        self.check("a write")?;
        self.inner.write_retained(kind, name, data, until).await
    }

    async fn check_retention(&self) -> BackendResult<()> {
        self.check("a lookup")?;
        self.inner.check_retention().await
    }

    async fn retained_until(
        &self,
        kind: FileKind,
        name: &str,
    ) -> BackendResult<Option<std::time::SystemTime>> {
        self.check("a lookup")?;
        self.inner.retained_until(kind, name).await
    }
}
