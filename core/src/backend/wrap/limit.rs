//! Pacing of the bytes a store reads and writes, through the shared
//! [`RateLimiter`] (`--bwlimit`).
//!
//! The grain is one call: a write waits until its bytes may go, then goes
//! whole (the file must reach the store in one piece, see the durability
//! contract); a read is booked when its size is known — before a ranged
//! read, after a whole-file read — so the next read waits for it. Over many
//! files the average holds to the rate; a single call may burst (a 16 MiB
//! pack goes at full speed once its turn comes). The S3 backend paces its
//! upload bodies in 64 KiB slices inside its client, which is finer; the
//! binary edge uses that for S3 and this layer for directories, never both.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::backend::{Backend, BackendResult, FileInfo, FileKind};
use crate::ratelimit::RateLimiter;

#[derive(Debug)]
pub struct RateLimitedBackend {
    inner: Arc<dyn Backend>,
    writes: Option<Arc<RateLimiter>>,
    reads: Option<Arc<RateLimiter>>,
}

impl RateLimitedBackend {
    pub fn new(
        inner: Arc<dyn Backend>,
        writes: Option<Arc<RateLimiter>>,
        reads: Option<Arc<RateLimiter>>,
    ) -> RateLimitedBackend {
        RateLimitedBackend {
            inner,
            writes,
            reads,
        }
    }

    async fn before_write(&self, bytes: usize) {
        if let Some(l) = &self.writes {
            l.acquire(bytes as u64).await;
        }
    }

    async fn before_read(&self, bytes: u64) {
        if let Some(l) = &self.reads {
            l.acquire(bytes).await;
        }
    }

    /// Books a whole-file read once its size is known; the wait falls on
    /// the next read.
    fn after_read(&self, bytes: usize) {
        if let Some(l) = &self.reads {
            l.reserve(bytes as u64);
        }
    }
}

#[async_trait]
impl Backend for RateLimitedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn create(&self) -> BackendResult<()> {
        self.inner.create().await
    }

    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        self.inner.list(kind).await
    }

    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Vec<u8>> {
        // Waits for the reads booked before this one.
        self.before_read(0).await;
        let data = self.inner.read(kind, name).await?;
        self.after_read(data.len());
        Ok(data)
    }

    async fn read_into(&self, kind: FileKind, name: &str, buf: Vec<u8>) -> BackendResult<Vec<u8>> {
        self.before_read(0).await;
        let data = self.inner.read_into(kind, name, buf).await?;
        self.after_read(data.len());
        Ok(data)
    }

    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Vec<u8>> {
        self.before_read(length).await;
        self.inner.read_range(kind, name, offset, length).await
    }

    async fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        self.before_write(data.len()).await;
        self.inner.write(kind, name, data).await
    }

    async fn write_new(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        self.before_write(data.len()).await;
        self.inner.write_new(kind, name, data).await
    }

    async fn delete(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        self.inner.delete(kind, name).await
    }

    async fn stat(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        self.inner.stat(kind, name).await
    }

    async fn write_retained(
        &self,
        kind: FileKind,
        name: &str,
        data: Vec<u8>,
        until: SystemTime,
    ) -> BackendResult<()> {
        self.before_write(data.len()).await;
        self.inner.write_retained(kind, name, data, until).await
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
