//! Bringing the local chunk index up to date: forget the index files that
//! left the store, read only the ones not merged yet, and merge with
//! bounded memory (sorted runs of at most `RUN_RECORDS` records, then one
//! k-way merge) into a new delta — or, when the delta would pass
//! 1/`DELTA_SHARE` of the base or an index file left the store, into a new
//! base with an empty delta.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::format::{Manifest, PackEntry, Record, RECORD};
use super::CacheError;
use crate::backend::{BackendError, FileKind};
use crate::id::Id;
use crate::index::IndexFile;
use crate::repository::Repository;

/// Records sorted in memory before they go to a run file (10 MiB).
const RUN_RECORDS: usize = 256 * 1024;
pub(super) const NONE: u32 = u32::MAX;
/// The delta may hold up to 1/DELTA_SHARE as many records as the base: a
/// start then rewrites at most ~6 % of the records, and a lookup reads two
/// buckets, the delta's small.
pub(super) const DELTA_SHARE: u64 = 16;

/// The generation being replaced, if one was trusted.
pub(super) struct Old {
    pub manifest: Manifest,
    pub base: Option<File>,
    pub delta: Option<File>,
}

/// What the next generation rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Plan {
    /// Old delta + new records into a new delta; the base stays.
    Delta,
    /// Old base + old delta + new records into a new base.
    Full,
}

/// Numbering of the new generation and how old numbers map onto it.
pub(super) struct Tables {
    pub files: Vec<Id>,
    pub packs: Vec<PackEntry>,
    pub file_map: Vec<u32>,
    pub pack_map: Vec<u32>,
}

/// Builds the next generation in `dir` and returns its manifest (already
/// written). `listed` is the store's `index/` listing.
pub(super) async fn rebuild(
    dir: &Path,
    repo: &Repository,
    old: Option<Old>,
    listed: &[Id],
) -> Result<Manifest, CacheError> {
    let mut tables = keep_listed(old.as_ref().map(|o| &o.manifest), listed);
    let nothing_gone = old
        .as_ref()
        .is_some_and(|o| o.manifest.files.len() == tables.files.len());
    let known: HashSet<Id> = old
        .as_ref()
        .map(|o| o.manifest.files.iter().copied().collect())
        .unwrap_or_default();
    let mut runs = Runs::new(dir);
    for id in listed.iter().filter(|id| !known.contains(id)) {
        read_new_file(repo, *id, &mut tables, &mut runs).await?;
    }
    let plan = match &old {
        Some(o) if nothing_gone && delta_fits(&o.manifest, runs.count()) => Plan::Delta,
        _ => Plan::Full,
    };
    let dir = dir.to_path_buf();
    let repo_id = repo.config.id;
    tokio::task::spawn_blocking(move || {
        super::merge::merge_and_write(&dir, repo_id, plan, old, tables, runs)
    })
    .await
    .map_err(|e| CacheError::Damaged(format!("index merge task failed: {e}")))?
}

/// Whether the delta, with `new` more records, stays within its share of
/// the base.
fn delta_fits(m: &Manifest, new: u64) -> bool {
    m.delta
        .records
        .checked_add(new)
        .and_then(|d| d.checked_mul(DELTA_SHARE))
        .is_some_and(|d| d <= m.base.records)
}

/// Keeps the old generation's files and packs that the store still lists,
/// renumbered densely in their old order (so old records stay sorted).
fn keep_listed(old: Option<&Manifest>, listed: &[Id]) -> Tables {
    let mut t = Tables {
        files: Vec::new(),
        packs: Vec::new(),
        file_map: Vec::new(),
        pack_map: Vec::new(),
    };
    let Some(old) = old else { return t };
    let live: HashSet<&Id> = listed.iter().collect();
    for f in &old.files {
        if live.contains(f) {
            t.file_map.push(t.files.len() as u32);
            t.files.push(*f);
        } else {
            t.file_map.push(NONE);
        }
    }
    for p in &old.packs {
        match t.file_map[p.file as usize] {
            NONE => t.pack_map.push(NONE),
            file => {
                t.pack_map.push(t.packs.len() as u32);
                t.packs.push(PackEntry { file, ..*p });
            }
        }
    }
    t
}

/// Reads one index file the cache has not seen. A file that vanished since
/// the listing is skipped; an unreadable one is remembered as seen (files
/// are immutable, it will not get better) and its chunks look missing, which
/// only makes a backup store them again — what `load_index` does too.
async fn read_new_file(
    repo: &Repository,
    id: Id,
    t: &mut Tables,
    runs: &mut Runs,
) -> Result<(), CacheError> {
    let name = id.to_hex();
    let data = match repo.backend().read(FileKind::Index, &name).await {
        Ok(d) => d,
        Err(BackendError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(CacheError::Store(e.into())),
    };
    let file_no = number(t.files.len())?;
    t.files.push(id);
    let parsed = match IndexFile::parse(&name, &data) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(index = %name, error = %e, "index file unreadable; its chunks will be stored again");
            return Ok(());
        }
    };
    drop(data);
    for p in parsed.packs {
        let pack = number(t.packs.len())?;
        t.packs.push(PackEntry {
            id: p.id,
            size: p.size,
            file: file_no,
        });
        for b in p.blobs {
            runs.push(Record {
                id: b.id.0,
                file: file_no,
                pack,
            })?;
        }
    }
    Ok(())
}

fn number(n: usize) -> Result<u32, CacheError> {
    u32::try_from(n)
        .ok()
        .filter(|n| *n != NONE)
        .ok_or_else(|| CacheError::Damaged("more than 4 billion index files or packs".into()))
}

/// Sorted runs of new records, spilled to files in the cache directory.
pub(super) struct Runs {
    dir: PathBuf,
    buf: Vec<Record>,
    files: Vec<PathBuf>,
    count: u64,
}

impl Runs {
    fn new(dir: &Path) -> Runs {
        Runs {
            dir: dir.to_path_buf(),
            buf: Vec::new(),
            files: Vec::new(),
            count: 0,
        }
    }

    fn push(&mut self, r: Record) -> Result<(), CacheError> {
        self.buf.push(r);
        self.count += 1;
        if self.buf.len() >= RUN_RECORDS {
            self.spill()?;
        }
        Ok(())
    }

    /// Records pushed (before duplicates are dropped).
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    pub(super) fn files(&self) -> &[PathBuf] {
        &self.files
    }

    pub(super) fn spill(&mut self) -> Result<(), CacheError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.buf.sort_unstable();
        let path = self.dir.join(format!("run-{}.tmp", self.files.len()));
        let mut w = BufWriter::new(File::create(&path).map_err(CacheError::io(&path))?);
        let mut b = [0u8; RECORD];
        for r in self.buf.drain(..) {
            r.encode(&mut b);
            w.write_all(&b).map_err(CacheError::io(&path))?;
        }
        w.flush().map_err(CacheError::io(&path))?;
        self.files.push(path);
        Ok(())
    }
}

impl Drop for Runs {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}
