//! A backup session: deduplication against the index, pack upload and the
//! final commit, in the order that makes a crash harmless:
//! packs → index → (check the packs are all there) → snapshot.
//!
//! The session is shared by the agent's worker threads (sync code); uploads
//! run as async tasks on the runtime whose handle the session holds.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::backend::{BackendError, FileKind};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{IndexFile, IndexPack, MasterIndex};
use crate::index_cache::ChunkIndex;
use crate::keys::{Credentials, DataRecipient, RepoSecret};
use crate::lock::BackupLock;
use crate::pack::{BlobKind, PackBuilder, SealedPack};
use crate::repository::Repository;
use crate::snapshot::{Snapshot, SnapshotBody, SnapshotMeta, SnapshotStats};

/// Uploads in flight at once; each holds one sealed pack in memory.
const PARALLEL_UPLOADS: usize = 3;
/// Write an index file after this many packs, so a killed backup's uploads
/// are found and reused by the next one.
const INDEX_EVERY_PACKS: usize = 4;

pub struct BackupSession {
    repo: Arc<Repository>,
    rt: tokio::runtime::Handle,
    credentials: Credentials,
    recipient: DataRecipient,
    index: Dedupe,
    claimed: Mutex<HashSet<Id>>,
    referenced: Mutex<HashSet<Id>>,
    upload_tx: Mutex<Option<mpsc::Sender<SealedPack>>>,
    uploader: Mutex<Option<tokio::task::JoinHandle<Result<Vec<Id>>>>>,
    lock: Mutex<Option<BackupLock>>,
    added_bytes: Arc<AtomicU64>,
    new_chunks: AtomicU64,
    pub recovered_packs: usize,
}

/// What a session deduplicates against: the repository's index as of the
/// start (the local chunk index, see `index_cache`) minus the packs prune
/// marked, plus packs a killed backup left unindexed that this session
/// indexed from their trailers.
struct Dedupe {
    cache: ChunkIndex,
    excluded: HashSet<Id>,
    recovered: MasterIndex,
}

impl Dedupe {
    fn pack_of(&self, id: &Id) -> Option<Id> {
        match self.recovered.get(id) {
            Some(loc) => Some(loc.pack),
            None => self.cache.pack_of(id, &self.excluded),
        }
    }
}

impl BackupSession {
    /// Starts a session whose chunk index is a temporary one built for it
    /// (tests and one-off callers; `start_with_cache` for real backups).
    pub async fn start(repo: Arc<Repository>, credentials: Credentials) -> Result<BackupSession> {
        BackupSession::start_with_cache(repo, credentials, None).await
    }

    /// Starts a session that keeps its chunk index under `cache_dir` (the
    /// agent's cache directory), so the next backup only merges the index
    /// files written since. Memory does not grow with the repository.
    pub async fn start_with_cache(
        repo: Arc<Repository>,
        credentials: Credentials,
        cache_dir: Option<&Path>,
    ) -> Result<BackupSession> {
        repo.check_credentials(&credentials)?;
        let recipient = credentials.recipient()?;
        let lock = BackupLock::acquire(repo.backend().clone()).await?;
        let index = match open_dedupe(&repo, cache_dir, &lock.excluded_packs).await {
            Ok(i) => i,
            Err(e) => {
                let _ = lock.release().await;
                return Err(e);
            }
        };
        let recovered = index.recovered.packs().count();

        let (tx, rx) = mpsc::channel::<SealedPack>(1);
        let added_bytes = Arc::new(AtomicU64::new(0));
        let uploader = tokio::spawn(upload_loop(repo.clone(), rx, added_bytes.clone()));
        Ok(BackupSession {
            repo,
            rt: tokio::runtime::Handle::current(),
            credentials,
            recipient,
            index,
            claimed: Mutex::new(HashSet::new()),
            referenced: Mutex::new(HashSet::new()),
            upload_tx: Mutex::new(Some(tx)),
            uploader: Mutex::new(Some(uploader)),
            lock: Mutex::new(Some(lock)),
            added_bytes,
            new_chunks: AtomicU64::new(0),
            recovered_packs: recovered,
        })
    }

    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    pub fn secret(&self) -> &RepoSecret {
        &self.credentials.repo_secret
    }

    pub fn chunk_id(&self, data: &[u8]) -> Id {
        self.credentials.repo_secret.chunk_id(data)
    }

    pub fn new_pack(&self, kind: BlobKind) -> Result<PackBuilder> {
        PackBuilder::new(
            kind,
            self.recipient.clone(),
            self.repo.config.compression.level,
        )
    }

    pub fn pack_size(&self) -> u64 {
        self.repo.config.pack_size as u64
    }

    /// Decides whether the caller must store a blob. Returns `false` when the
    /// repository or this session already has it.
    pub fn claim(&self, id: Id) -> bool {
        if let Some(pack) = self.index.pack_of(&id) {
            self.referenced.lock().expect("not poisoned").insert(pack);
            return false;
        }
        self.claimed.lock().expect("not poisoned").insert(id)
    }

    /// True when the repository (as of the session's start) or this session
    /// already has the chunk. Marks nothing as used: `claim` or `reuse` do.
    pub fn contains(&self, id: &Id) -> bool {
        self.index.pack_of(id).is_some() || self.claimed.lock().expect("not poisoned").contains(id)
    }

    /// For the agent's file cache: true (and the blobs count as used) only
    /// when every chunk is still in the repository.
    pub fn reuse(&self, ids: &[Id]) -> bool {
        let claimed = self.claimed.lock().expect("not poisoned");
        let mut packs = Vec::with_capacity(ids.len());
        for id in ids {
            match self.index.pack_of(id) {
                Some(pack) => packs.push(pack),
                None if claimed.contains(id) => {}
                None => return false,
            }
        }
        drop(claimed);
        self.referenced.lock().expect("not poisoned").extend(packs);
        true
    }

    /// Adds a chunk to `pack`, and hands the pack to the uploader once full.
    pub fn store(&self, pack: &mut PackBuilder, id: Id, data: &[u8]) -> Result<()> {
        pack.add(id, data)?;
        self.new_chunks.fetch_add(1, Ordering::Relaxed);
        if pack.plain_len() >= self.pack_size() {
            self.flush(pack)?;
        }
        Ok(())
    }

    /// Seals and queues a pack (blocking while the uploads are busy, which
    /// bounds memory). Call from worker threads, not from async code.
    pub fn flush(&self, pack: &mut PackBuilder) -> Result<()> {
        let Some(sealed) = pack.seal()? else {
            return Ok(());
        };
        let tx = self
            .upload_tx
            .lock()
            .expect("not poisoned")
            .clone()
            .ok_or_else(|| Error::Conflict("backup session already finished".into()))?;
        if tx.blocking_send(sealed).is_err() {
            // The uploader stopped on an error; finish() reports it.
            return Err(self.rt.block_on(self.take_upload_error()));
        }
        Ok(())
    }

    async fn take_upload_error(&self) -> Error {
        let handle = self.uploader.lock().expect("not poisoned").take();
        match handle {
            Some(h) => match h.await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => Error::Conflict("pack upload stopped unexpectedly".into()),
                Err(e) => Error::task("uploading packs", e),
            },
            None => Error::Conflict("pack upload failed earlier".into()),
        }
    }

    async fn wait_uploads(&self) -> Result<Vec<Id>> {
        self.upload_tx.lock().expect("not poisoned").take();
        let handle = self.uploader.lock().expect("not poisoned").take();
        match handle {
            Some(h) => h.await.map_err(|e| Error::task("uploading packs", e))?,
            None => Err(Error::Conflict("pack upload failed earlier".into())),
        }
    }

    /// Waits for every upload, checks every needed pack is in the store and
    /// writes the signed snapshot. Consumes the session.
    pub async fn commit(
        self,
        meta: SnapshotMeta,
        body: SnapshotBody,
        mut stats: SnapshotStats,
    ) -> Result<(Id, Snapshot)> {
        let result = self.commit_inner(meta, body, &mut stats).await;
        let lock = self.lock.lock().expect("not poisoned").take();
        if let Some(l) = lock {
            l.release().await?;
        }
        result
    }

    async fn commit_inner(
        &self,
        meta: SnapshotMeta,
        body: SnapshotBody,
        stats: &mut SnapshotStats,
    ) -> Result<(Id, Snapshot)> {
        let written = self.wait_uploads().await?;
        let mut packs: HashSet<Id> = self.referenced.lock().expect("not poisoned").clone();
        packs.extend(written.iter().copied());

        let present: HashSet<String> = self
            .repo
            .backend()
            .list(FileKind::Packs)
            .await?
            .into_iter()
            .map(|f| f.name)
            .collect();
        if let Some(missing) = packs.iter().find(|p| !present.contains(&p.to_hex())) {
            return Err(Error::Conflict(format!(
                "pack {missing} needed by this backup disappeared from the store (pruned while the backup was paused?); no snapshot was written, run the backup again"
            )));
        }
        stats.added_bytes = self.added_bytes.load(Ordering::Relaxed);
        stats.new_chunks = self.new_chunks.load(Ordering::Relaxed);
        let (id, data) = Snapshot::create(
            self.repo.config.id,
            chrono::Local::now().fixed_offset(),
            packs.into_iter().collect(),
            stats.clone(),
            &meta,
            &body,
            &self.credentials.repo_secret,
            &self.recipient,
            &self.credentials.agent_key()?,
        )?;
        self.repo
            .backend()
            .write_new(FileKind::Snapshots, &id.to_hex(), data.clone())
            .await?;
        Ok((id, Snapshot::parse(&id.to_hex(), &data)?))
    }

    /// Gives up: uploaded packs stay unreferenced (prune removes them later,
    /// or the next backup reuses them).
    pub async fn abort(self) {
        let _ = self.wait_uploads().await;
        let lock = self.lock.lock().expect("not poisoned").take();
        if let Some(l) = lock {
            let _ = l.release().await;
        }
    }
}

async fn upload_loop(
    repo: Arc<Repository>,
    mut rx: mpsc::Receiver<SealedPack>,
    added: Arc<AtomicU64>,
) -> Result<Vec<Id>> {
    let mut tasks: JoinSet<Result<IndexPack>> = JoinSet::new();
    let mut pending_index: Vec<IndexPack> = Vec::new();
    let mut written = Vec::new();
    let mut closed = false;
    loop {
        tokio::select! {
            sealed = rx.recv(), if !closed && tasks.len() < PARALLEL_UPLOADS => match sealed {
                Some(p) => {
                    let repo = repo.clone();
                    tasks.spawn(async move {
                        let size = p.data.len() as u64;
                        // Create-only (If-None-Match on S3): an agent never
                        // needs to replace a pack, so its store credentials
                        // need not allow it (docs/sites.md). A pack is named
                        // by the hash of its bytes, so one already there
                        // under this name (a retried upload) is this pack.
                        match repo.backend().write_new(FileKind::Packs, &p.id.to_hex(), p.data).await {
                            Ok(()) | Err(crate::backend::BackendError::AlreadyExists { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
                        Ok(IndexPack { id: p.id, size, blobs: p.blobs })
                    });
                }
                None => closed = true,
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let pack = done.map_err(|e| Error::task("uploading a pack", e))??;
                added.fetch_add(pack.size, Ordering::Relaxed);
                written.push(pack.id);
                pending_index.push(pack);
                if pending_index.len() >= INDEX_EVERY_PACKS {
                    write_index(&repo, std::mem::take(&mut pending_index)).await?;
                }
            }
            else => break,
        }
        if closed && tasks.is_empty() {
            break;
        }
    }
    if !pending_index.is_empty() {
        write_index(&repo, pending_index).await?;
    }
    Ok(written)
}

pub(crate) async fn write_index(repo: &Repository, packs: Vec<IndexPack>) -> Result<Id> {
    let (id, data) = IndexFile::new(packs).encode();
    match repo
        .backend()
        .write_new(FileKind::Index, &id.to_hex(), data)
        .await
    {
        Ok(()) | Err(BackendError::AlreadyExists { .. }) => Ok(id),
        Err(e) => Err(e.into()),
    }
}

async fn open_dedupe(
    repo: &Repository,
    cache_dir: Option<&Path>,
    excluded: &HashSet<Id>,
) -> Result<Dedupe> {
    let cache = ChunkIndex::open(repo, cache_dir).await?;
    let recovered = recover_unindexed(repo, &cache, excluded).await?;
    Ok(Dedupe {
        cache,
        excluded: excluded.clone(),
        recovered,
    })
}

/// Indexes packs that a killed backup uploaded but never indexed, from their
/// plaintext trailers (no key needed), so their chunks are reused.
async fn recover_unindexed(
    repo: &Repository,
    cache: &ChunkIndex,
    excluded: &HashSet<Id>,
) -> Result<MasterIndex> {
    let mut index = MasterIndex::default();
    let listed = repo.backend().list(FileKind::Packs).await?;
    let mut found = Vec::new();
    for f in listed {
        let Ok(id) = f.name.parse::<Id>() else {
            continue;
        };
        if cache.pack_size(&id).is_some() || excluded.contains(&id) {
            continue;
        }
        match repo.read_pack_trailer(&id, f.size).await {
            Ok(blobs) => found.push(IndexPack {
                id,
                size: f.size,
                blobs,
            }),
            Err(e) => {
                tracing::warn!(pack = %id, error = %e, "unindexed pack has no readable trailer; leaving it to prune")
            }
        }
    }
    let n = found.len();
    if n > 0 {
        for p in &found {
            index.add_pack(p);
        }
        write_index(repo, found).await?;
        tracing::info!(packs = n, "indexed packs left by an interrupted backup");
    }
    Ok(index)
}

/// Groups pack sizes by pack for reporting.
pub fn pack_sizes(index: &MasterIndex) -> HashMap<Id, u64> {
    index.packs().map(|(k, v)| (*k, *v)).collect()
}
