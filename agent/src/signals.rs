//! Ransomware early-warning signals measured during a backup (issue 10).
//!
//! What is counted, per backup of one source, is described field by field
//! in [`cadang_proto::signals::BackupSignals`]. In short: files new /
//! changed / deleted / renamed, bytes changed, the share of new data zstd
//! could not shrink, changed files whose sampled blocks (first 4 KiB, 4 KiB
//! at half the file) turned from structured to random, files whose
//! extension changed, and matches against the lists of known ransomware
//! extensions and ransom-note names ([`Lists`]).
//!
//! Nothing here leaves the agent but counts. The previous state is a side
//! table in the agent's cache directory ([`table`]), written only after the
//! snapshot is committed, so a failed backup is compared again next time.
//!
//! Cost: unchanged files (same size, mtime, ctime, inode) are not read at
//! all; each new or changed file costs two 4 KiB reads, which the backup
//! reads anyway.

mod entropy;
mod lists;
mod observe;
mod table;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cadang_core::Id;
use cadang_proto::signals::BackupSignals;

pub use entropy::{shannon, HIGH_ENTROPY};
pub use lists::Lists;

use crate::cache::FileStamp;

#[derive(Debug, thiserror::Error)]
pub enum SignalsError {
    #[error("cannot read the ransomware list {path}: {reason}; fix the path in the agent's configuration or remove it to use the built-in list")]
    List { path: String, reason: String },
    #[error("the ransomware list {origin} has an invalid pattern on line {line}: {reason}; correct or delete that line (one extension like .locked, or a glob, per line)")]
    Pattern {
        origin: String,
        line: usize,
        reason: String,
    },
}

/// How a backup measures its signals (see [`crate::backup::backup_with_signals`]).
#[derive(Clone, Debug)]
pub struct SignalOptions {
    /// Off: no measurement and no side table (the summary's `signals` is `None`).
    pub enabled: bool,
    pub lists: Arc<Lists>,
    /// Where the side table lives; `None`: `<cache_dir>/signals`, and no
    /// measurement of files at all when the backup has no cache directory
    /// (new-data compressibility is still counted).
    pub state_dir: Option<PathBuf>,
}

impl Default for SignalOptions {
    fn default() -> SignalOptions {
        SignalOptions {
            enabled: true,
            lists: Arc::new(Lists::builtin()),
            state_dir: None,
        }
    }
}

/// Counters the backup workers update for every new chunk they store.
#[derive(Default, Debug)]
pub struct NewData {
    bytes: AtomicU64,
    incompressible: AtomicU64,
}

impl NewData {
    /// `before`/`after`: the pack's plain length around storing a chunk of
    /// `raw` bytes. The pack keeps a chunk uncompressed exactly when zstd
    /// did not shrink it, so stored == raw means "did not compress". A chunk
    /// that made the pack flush (length back to 0) is not observed.
    pub(crate) fn stored(&self, raw: usize, before: u64, after: u64) {
        if after < before {
            return;
        }
        self.bytes.fetch_add(raw as u64, Ordering::Relaxed);
        if after - before >= raw as u64 {
            self.incompressible.fetch_add(raw as u64, Ordering::Relaxed);
        }
    }
}

/// The measurement of one backup: created before the walk, fed by the
/// walker, finished after the walk, its table saved after the commit.
pub(crate) struct Observer {
    counter: Option<observe::Counter>,
    table_path: Option<PathBuf>,
    pub(crate) new_data: Arc<NewData>,
}

/// The side table for one repository and one set of source paths: two
/// sources backed up into one repository must not overwrite each other.
fn table_path(dir: &Path, repo: &Id, sources: &[PathBuf]) -> PathBuf {
    let mut sorted: Vec<&[u8]> = sources
        .iter()
        .map(|p| std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
        .collect();
    sorted.sort();
    let mut h = blake3::Hasher::new();
    for s in sorted {
        h.update(s);
        h.update(b"\0");
    }
    let sources_hash = &h.finalize().to_hex()[..16];
    dir.join(format!("{}-{sources_hash}.tbl", repo.to_hex()))
}

impl Observer {
    pub(crate) fn start(
        opts: &SignalOptions,
        cache_dir: Option<&Path>,
        repo: &Id,
        sources: &[PathBuf],
    ) -> Option<Observer> {
        if !opts.enabled {
            return None;
        }
        let dir = opts
            .state_dir
            .clone()
            .or_else(|| cache_dir.map(|c| c.join("signals")));
        let table_path = dir.map(|d| table_path(&d, repo, sources));
        let counter = table_path.as_ref().map(|p| {
            let prev = table::Table::load(p);
            observe::Counter::new(prev, opts.lists.clone())
        });
        Some(Observer {
            counter,
            table_path,
            new_data: Arc::new(NewData::default()),
        })
    }

    /// The walker calls this for every regular file it backs up.
    pub(crate) fn file(&self, path: &Path, stamp: &FileStamp) {
        if let Some(c) = &self.counter {
            c.file(path, stamp);
        }
    }

    /// The signals, and what to save once the snapshot is committed.
    pub(crate) fn finish(self) -> (BackupSignals, Option<(PathBuf, table::Table)>) {
        let (mut s, table) = match self.counter {
            Some(c) => {
                let (s, t) = c.finish();
                (s, Some(t))
            }
            None => (BackupSignals::default(), None),
        };
        s.new_data_bytes = self.new_data.bytes.load(Ordering::Relaxed);
        s.new_data_incompressible_bytes = self.new_data.incompressible.load(Ordering::Relaxed);
        let save = self.table_path.zip(table);
        (s.finish(), save)
    }
}

/// Saves the side table after the snapshot is committed; a failure only
/// costs the next backup its comparison, so it is logged, not fatal.
pub(crate) fn save_table(save: Option<(PathBuf, table::Table)>) {
    if let Some((path, t)) = save {
        if let Err(e) = t.save(&path) {
            tracing::warn!(table = %path.display(), error = %e, "cannot save the ransomware signal table; the next backup is measured as a first one");
        }
    }
}

#[cfg(test)]
mod tests;
