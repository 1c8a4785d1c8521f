//! The agent's file cache (sled): path → (size, mtime, ctime, inode, device)
//! and the file's chunk list, so an unchanged file is neither read nor
//! chunked again.
//!
//! The cache is only an optimisation. Every entry is re-checked against the
//! file's current status and every chunk against the repository's index
//! before use; a lost, stale or corrupt cache costs time, never correctness.
//! sled is beta and may lose recent writes on a crash, which is acceptable
//! here and nowhere else.

use std::path::Path;

use cadang_core::tree::Extent;
use cadang_core::Id;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub device: u64,
}

impl FileStamp {
    pub fn of(m: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            size: m.size(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            inode: m.ino(),
            device: m.dev(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    stamp: FileStamp,
    content: Vec<Extent>,
}

pub struct FileCache {
    db: sled::Db,
    tree: sled::Tree,
}

impl FileCache {
    /// Opens the cache for one repository. Returns `None` (with a warning)
    /// when it cannot be opened, e.g. another backup is using it.
    pub fn open(dir: &Path, repo: &Id) -> Option<FileCache> {
        let path = dir.join("files.sled");
        let opened = std::fs::create_dir_all(dir)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                // sled keeps up to 1 GiB of pages in memory by default; the
                // cache is read once per file per backup, so a small page
                // cache costs nothing and keeps the agent's memory bounded.
                sled::Config::new()
                    .path(&path)
                    .cache_capacity(8 * 1024 * 1024)
                    .open()
                    .map_err(|e| e.to_string())
            })
            .and_then(|db| {
                db.open_tree(repo.to_hex())
                    .map(|t| (db, t))
                    .map_err(|e| e.to_string())
            });
        match opened {
            Ok((db, tree)) => Some(FileCache { db, tree }),
            Err(e) => {
                tracing::warn!(cache = %path.display(), error = %e, "file cache unavailable; every file will be read");
                None
            }
        }
    }

    pub fn get(&self, path: &[u8], stamp: &FileStamp) -> Option<Vec<Extent>> {
        let raw = self.tree.get(path).ok()??;
        let e: Entry = serde_json::from_slice(&raw).ok()?;
        (e.stamp == *stamp).then_some(e.content)
    }

    pub fn put(&self, path: &[u8], stamp: &FileStamp, content: &[Extent]) {
        let e = Entry {
            stamp: *stamp,
            content: content.to_vec(),
        };
        if let Err(err) = self
            .tree
            .insert(path, serde_json::to_vec(&e).expect("serialisable"))
        {
            tracing::debug!(error = %err, "file cache write failed");
        }
    }

    pub fn flush(&self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!(error = %e, "file cache flush failed");
        }
    }
}

/// Chunk ids of a content list (holes have none).
pub fn chunk_ids(content: &[Extent]) -> Vec<Id> {
    content
        .iter()
        .filter_map(|e| match e {
            Extent::Chunk(id) => Some(*id),
            Extent::Hole(_) => None,
        })
        .collect()
}
