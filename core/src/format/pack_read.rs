//! Reading packs to verify them against their names, several at a time.
//!
//! A store behind S3 or a WAN link is bound by round trips, not bandwidth,
//! so `check --read-data` and `repair` keep a few reads in flight. The
//! re-hash runs off the async threads. Memory is bounded: at most
//! `parallel` packs are held at once (packs are at most a few tens of MiB).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::backend::{Backend, FileKind};
use crate::Id;

/// Reads in flight at once; the same as replication's default.
pub const PARALLEL_READS: usize = 4;

/// What reading one pack found.
pub enum PackRead {
    /// Read whole: its content hashes to its name.
    Whole(Vec<u8>),
    /// Read, but its content does not match its name.
    Damaged,
    /// Could not be read; the backend's message says why.
    Unreadable(String),
}

/// Packs being read and re-hashed; finished reads come out in the order
/// they finish, not the order they were asked for.
pub struct PackReads {
    backend: Arc<dyn Backend>,
    queue: std::vec::IntoIter<String>,
    running: JoinSet<(String, PackRead)>,
    names: HashMap<tokio::task::Id, String>,
    parallel: usize,
}

impl PackReads {
    pub fn new(backend: Arc<dyn Backend>, names: Vec<String>, parallel: usize) -> Self {
        PackReads {
            backend,
            queue: names.into_iter(),
            running: JoinSet::new(),
            names: HashMap::new(),
            parallel: parallel.max(1),
        }
    }

    /// The next finished read; `None` once every pack has been read.
    pub async fn next(&mut self) -> Option<(String, PackRead)> {
        while self.running.len() < self.parallel {
            let Some(name) = self.queue.next() else { break };
            let backend = self.backend.clone();
            let task_name = name.clone();
            let handle = self
                .running
                .spawn(async move { (task_name.clone(), read_one(&*backend, task_name).await) });
            self.names.insert(handle.id(), name);
        }
        match self.running.join_next_with_id().await? {
            Ok((id, done)) => {
                self.names.remove(&id);
                Some(done)
            }
            // Only a panic inside the backend gets here; report it against
            // the pack rather than lose the pack from the results.
            Err(e) => {
                let name = self.names.remove(&e.id()).unwrap_or_default();
                Some((name, PackRead::Unreadable(format!("internal error: the read task crashed ({e}); not damage in the pack, check it again"))))
            }
        }
    }
}

async fn read_one(backend: &dyn Backend, name: String) -> PackRead {
    let data = match backend.read(FileKind::Packs, &name).await {
        Ok(d) => d,
        Err(e) => return PackRead::Unreadable(e.to_string()),
    };
    let hashed = tokio::task::spawn_blocking(move || {
        let whole = Id::of_bytes(&data).to_hex() == name;
        (whole, data)
    })
    .await;
    match hashed {
        Ok((true, data)) => PackRead::Whole(data),
        Ok((false, _)) => PackRead::Damaged,
        Err(e) => PackRead::Unreadable(format!("internal error: the hashing task crashed ({e}); not damage in the pack, check it again")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::backend::{BackendResult, FileInfo, LocalBackend};

    /// Counts reads in flight, holding each one briefly so they overlap.
    #[derive(Debug)]
    struct Counting {
        inner: LocalBackend,
        now: AtomicUsize,
        peak: AtomicUsize,
    }

    #[async_trait]
    impl Backend for Counting {
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
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            let r = self.inner.read(kind, name).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            r
        }
        async fn read_range(
            &self,
            kind: FileKind,
            name: &str,
            offset: u64,
            length: u64,
        ) -> BackendResult<Vec<u8>> {
            self.inner.read_range(kind, name, offset, length).await
        }
        async fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
            self.inner.write(kind, name, data).await
        }
        async fn write_new(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
            self.inner.write_new(kind, name, data).await
        }
        async fn delete(&self, kind: FileKind, name: &str) -> BackendResult<()> {
            self.inner.delete(kind, name).await
        }
        async fn stat(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
            self.inner.stat(kind, name).await
        }
    }

    #[tokio::test]
    async fn every_pack_is_reported_whole_damaged_or_unreadable_with_bounded_reads_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Counting {
            inner: LocalBackend::new(dir.path().join("store")),
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        });
        store.create().await.unwrap();
        let mut names = Vec::new();
        for i in 0..10u8 {
            let data = vec![i; 1000 + i as usize];
            let name = Id::of_bytes(&data).to_hex();
            // Pack 3 is stored under its name with other bytes: damaged.
            let stored = if i == 3 { vec![0xEE; 1003] } else { data };
            store.write(FileKind::Packs, &name, stored).await.unwrap();
            names.push(name);
        }
        let missing = Id::of_bytes(b"never written").to_hex();
        names.push(missing.clone());

        let mut reads = PackReads::new(store.clone(), names.clone(), 4);
        let mut whole = Vec::new();
        let mut damaged = Vec::new();
        let mut unreadable = Vec::new();
        while let Some((name, read)) = reads.next().await {
            match read {
                PackRead::Whole(data) => {
                    assert_eq!(Id::of_bytes(&data).to_hex(), name);
                    whole.push(name);
                }
                PackRead::Damaged => damaged.push(name),
                PackRead::Unreadable(e) => unreadable.push((name, e)),
            }
        }
        assert_eq!(whole.len(), 9, "whole: {whole:?}");
        assert_eq!(damaged, vec![names[3].clone()]);
        assert_eq!(unreadable.len(), 1);
        assert_eq!(unreadable[0].0, missing);
        assert!(
            unreadable[0].1.contains("does not exist"),
            "{}",
            unreadable[0].1
        );
        let peak = store.peak.load(Ordering::SeqCst);
        assert_eq!(
            peak, 4,
            "reads in flight peaked at {peak}, not the 4 asked for"
        );
    }
}
