//! The local chunk index: "is this chunk stored, and in which pack?" for a
//! backup, in memory that does not grow with the repository.
//!
//! `MasterIndex` holds every chunk of the repository in a HashMap (~220 B a
//! chunk: 2 GiB at 10 M chunks, on every server, every night). This cache
//! keeps the same facts on local disk instead — a sorted base file of
//! 40-byte records plus a small sorted delta of the newest ones (see
//! `format`), each read one 64 K-th bucket at a time with `pread` — and in
//! memory only the list of index files merged, the pack table and the two
//! bucket tables (~2 MiB + 48 B per pack). A start that finds new index
//! files rewrites only the delta, so it costs the new records, not the
//! repository.
//!
//! It is a cache, never a source of truth:
//! * on every start the store's `index/` is listed; index files not merged
//!   yet are read and merged (in sorted runs, bounded memory), and entries of
//!   index files that left the store (prune rewrote them) are forgotten, so a
//!   chunk counts as stored only while an index file in the store lists it;
//! * the manifest is checksummed and every bucket is checked against its
//!   checksum when read; anything that does not match is rebuilt, and a
//!   bucket that fails mid-backup answers "not stored" (the chunk is stored
//!   again: slower, never wrong);
//! * no cache directory, or one that is busy or unwritable, means a
//!   temporary index built for this backup and deleted after it.

mod build;
mod format;
mod merge;

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repository::Repository;
use format::{bucket_checksum, bucket_of, Manifest, Part, Record, CHUNKS_HEADER, RECORD};

/// A bucket larger than this (2.5 MiB; a real one holds ~80 records at 5 M
/// chunks) can only come from crafted index files: its chunks are treated
/// as not stored rather than read into memory.
const MAX_BUCKET_RECORDS: u64 = 1 << 16;

/// Why the local cache could not be used. Only `Store` reaches the caller;
/// everything else falls back to a rebuild or a temporary index.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the local chunk index is damaged: {0}")]
    Damaged(String),
    #[error("another backup of this repository is updating the local chunk index")]
    Busy,
    #[error(transparent)]
    Store(Error),
}

impl CacheError {
    fn io(path: &Path) -> impl Fn(std::io::Error) -> CacheError {
        let path = path.to_path_buf();
        move |source| CacheError::Io {
            path: path.clone(),
            source,
        }
    }
}

/// The repository's chunk index as of the start of a backup.
pub struct ChunkIndex {
    manifest: Manifest,
    base: Option<File>,
    delta: Option<File>,
    /// Pack entries ordered by pack id, for `pack_size`.
    by_pack: Vec<u32>,
    dir: PathBuf,
    temporary: bool,
    damaged: AtomicBool,
    oversized: AtomicBool,
}

impl ChunkIndex {
    /// Opens the cache of `repo` under `cache_dir` (in `chunk-index/<repo
    /// id>/`) and brings it up to date with the store's `index/`. Without a
    /// usable cache directory it builds a temporary one. Fails only when the
    /// store cannot be read, or no local directory at all can be written.
    pub async fn open(repo: &Repository, cache_dir: Option<&Path>) -> Result<ChunkIndex> {
        let listed = list_index(repo).await?;
        if let Some(d) = cache_dir {
            let dir = d.join("chunk-index").join(repo.config.id.to_hex());
            match open_in(&dir, false, repo, &listed).await {
                Ok(ix) => return Ok(ix),
                Err(CacheError::Store(e)) => return Err(e),
                Err(e) => tracing::warn!(dir = %dir.display(), error = %e,
                    "local chunk index unusable; building a temporary one (this backup starts slower)"),
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "cadang-chunk-index-{}",
            &Id::random().to_hex()[..16]
        ));
        match open_in(&dir, true, repo, &listed).await {
            Ok(ix) => Ok(ix),
            Err(CacheError::Store(e)) => Err(e),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(Error::Conflict(format!(
                    "cannot build the local chunk index a backup needs ({e}); free disk space in the cache directory or in {} (TMPDIR) and run the backup again",
                    std::env::temp_dir().display()
                )))
            }
        }
    }

    /// The pack holding chunk `id`, skipping packs in `excluded` (marked by
    /// prune). `None` means "store it": also when the cache cannot answer.
    pub fn pack_of(&self, id: &Id, excluded: &HashSet<Id>) -> Option<Id> {
        [Part::Base, Part::Delta]
            .into_iter()
            .find_map(|part| self.pack_in(part, id, excluded))
    }

    fn pack_in(&self, part: Part, id: &Id, excluded: &HashSet<Id>) -> Option<Id> {
        let bucket = self.bucket(part, id)?;
        let n = bucket.len() / RECORD;
        let at = |i: usize| &bucket[i * RECORD..(i + 1) * RECORD];
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if at(mid)[..32] < id.0[..] {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        for i in lo..n {
            let r = Record::decode(at(i));
            if r.id != id.0 {
                break;
            }
            let Some(pack) = self.manifest.packs.get(r.pack as usize) else {
                self.damage("a record names a pack the manifest does not have");
                return None;
            };
            if pack.file != r.file {
                self.damage("a record and its pack disagree on the index file");
                return None;
            }
            if !excluded.contains(&pack.id) {
                return Some(pack.id);
            }
        }
        None
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.pack_of(id, &HashSet::new()).is_some()
    }

    /// Stored size of `pack` if an index file lists it.
    pub fn pack_size(&self, pack: &Id) -> Option<u64> {
        let packs = &self.manifest.packs;
        let i = self
            .by_pack
            .partition_point(|&p| packs[p as usize].id < *pack);
        let p = packs.get(*self.by_pack.get(i)? as usize)?;
        (p.id == *pack).then_some(p.size)
    }

    /// Chunk records (a chunk listed by two index files counts twice).
    pub fn records(&self) -> u64 {
        self.manifest.records()
    }

    /// Records in the delta (the part rewritten at each start).
    pub fn delta_records(&self) -> u64 {
        self.manifest.delta.records
    }

    /// Index files merged.
    pub fn index_files(&self) -> usize {
        self.manifest.files.len()
    }

    /// Where the cache lives (a temporary directory when none was usable).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads and verifies the bucket `id` falls in, in the base or delta.
    fn bucket(&self, part: Part, id: &Id) -> Option<Vec<u8>> {
        let b = bucket_of(&id.0);
        let segment = self.manifest.segment(part);
        let file = match part {
            Part::Base => self.base.as_ref(),
            Part::Delta => self.delta.as_ref(),
        }?;
        let (start, end) = segment.bucket_range(b);
        if start == end {
            return None;
        }
        if end - start > MAX_BUCKET_RECORDS {
            if !self.oversized.swap(true, Ordering::Relaxed) {
                tracing::warn!(records = end - start, "implausibly large chunk index bucket (crafted index files?); its chunks are stored again");
            }
            return None;
        }
        let mut buf = vec![0u8; ((end - start) as usize) * RECORD];
        let offset = CHUNKS_HEADER + start * RECORD as u64;
        if let Err(e) = file.read_exact_at(&mut buf, offset) {
            self.damage(&format!("reading bucket {b} ({part:?}): {e}"));
            return None;
        }
        if bucket_checksum(&buf) != segment.buckets[b].checksum {
            self.damage(&format!(
                "bucket {b} ({part:?}) does not match its checksum"
            ));
            return None;
        }
        Some(buf)
    }

    /// Stops trusting the cache: this backup stores the affected chunks
    /// again, and the next one rebuilds the cache.
    fn damage(&self, what: &str) {
        if self.damaged.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::warn!(dir = %self.dir.display(), problem = what,
            "local chunk index damaged; affected chunks are stored again and the index is rebuilt next time");
        let _ = std::fs::remove_file(self.dir.join("manifest"));
    }
}

impl Drop for ChunkIndex {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn list_index(repo: &Repository) -> Result<Vec<Id>> {
    let mut out = Vec::new();
    for f in repo.backend().list(FileKind::Index).await? {
        match f.name.parse::<Id>() {
            Ok(id) => out.push(id),
            Err(_) => {
                tracing::warn!(name = %f.name, "ignoring a file in index/ that is not named by a hash")
            }
        }
    }
    Ok(out)
}

async fn open_in(
    dir: &Path,
    temporary: bool,
    repo: &Repository,
    listed: &[Id],
) -> std::result::Result<ChunkIndex, CacheError> {
    std::fs::create_dir_all(dir).map_err(CacheError::io(dir))?;
    let _lock = DirLock::acquire(dir)?;
    let old = match load_current(dir, &repo.config.id) {
        Ok(old) => old,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "local chunk index not trusted; rebuilding it");
            None
        }
    };
    let manifest = match old {
        Some(o) if up_to_date(&o.manifest, listed) => o.manifest,
        old => match build::rebuild(dir, repo, old, listed).await {
            Err(CacheError::Damaged(why)) => {
                tracing::warn!(dir = %dir.display(), problem = %why, "local chunk index damaged; rebuilding it from the store");
                build::rebuild(dir, repo, None, listed).await?
            }
            r => r?,
        },
    };
    let base = open_segment(dir, &manifest, Part::Base)?;
    let delta = open_segment(dir, &manifest, Part::Delta)?;
    let mut by_pack: Vec<u32> = (0..manifest.packs.len() as u32).collect();
    by_pack.sort_unstable_by_key(|&i| manifest.packs[i as usize].id);
    Ok(ChunkIndex {
        manifest,
        base,
        delta,
        by_pack,
        dir: dir.to_path_buf(),
        temporary,
        damaged: AtomicBool::new(false),
        oversized: AtomicBool::new(false),
    })
}

fn up_to_date(m: &Manifest, listed: &[Id]) -> bool {
    let merged: HashSet<&Id> = m.files.iter().collect();
    merged.len() == listed.len() && listed.iter().all(|f| merged.contains(f))
}

/// The current generation, if its manifest and chunk file agree. `Ok(None)`:
/// there is none yet.
fn load_current(dir: &Path, repo: &Id) -> std::result::Result<Option<build::Old>, CacheError> {
    let path = dir.join("manifest");
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CacheError::io(&path)(e)),
    };
    let manifest =
        Manifest::decode(&data, repo).map_err(|e| CacheError::Damaged(format!("manifest: {e}")))?;
    let base = open_segment(dir, &manifest, Part::Base)?;
    let delta = open_segment(dir, &manifest, Part::Delta)?;
    Ok(Some(build::Old {
        manifest,
        base,
        delta,
    }))
}

/// Opens the base or delta file of the manifest, if it has one, and checks
/// its header and length.
fn open_segment(
    dir: &Path,
    m: &Manifest,
    part: Part,
) -> std::result::Result<Option<File>, CacheError> {
    let seg = m.segment(part);
    if !seg.exists() {
        return Ok(None);
    }
    let path = dir.join(part.file_name(seg.generation));
    let damaged = |why: &str| CacheError::Damaged(format!("{}: {why}", path.display()));
    let f = File::open(&path).map_err(|e| damaged(&e.to_string()))?;
    let mut header = [0u8; CHUNKS_HEADER as usize];
    f.read_exact_at(&mut header, 0)
        .map_err(|e| damaged(&e.to_string()))?;
    if &header[..8] != part.magic() || header[8..] != seg.generation.to_le_bytes() {
        return Err(damaged("header does not match the manifest"));
    }
    let want = seg
        .records
        .checked_mul(RECORD as u64)
        .and_then(|n| n.checked_add(CHUNKS_HEADER));
    let len = f.metadata().map_err(|e| damaged(&e.to_string()))?.len();
    if want != Some(len) {
        return Err(damaged("length does not match the manifest"));
    }
    Ok(Some(f))
}

/// An exclusive advisory lock on the cache directory while it is updated;
/// a second backup of the same repository uses a temporary index instead of
/// waiting or racing.
struct DirLock {
    _held: File,
}

impl DirLock {
    fn acquire(dir: &Path) -> std::result::Result<DirLock, CacheError> {
        use std::os::fd::AsRawFd;
        let path = dir.join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(CacheError::io(&path))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            return Err(CacheError::Busy);
        }
        Ok(DirLock { _held: f })
    }
}
