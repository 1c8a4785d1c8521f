//! What the chunk-index tests (`index_cache.rs`, `index_cache_delta.rs`)
//! share: a keyless repository, deterministic ids, and index files put
//! straight into the store.

use std::path::Path;
use std::sync::Arc;

use cadang_core::backend::{Backend, FileKind, LocalBackend};
use cadang_core::config::{ChunkerParams, RepoConfig};
use cadang_core::index::IndexFile;
use cadang_core::pack::{BlobEntry, BlobKind, Compression};
use cadang_core::{Id, Repository};

/// A keyless repository: the chunk index needs only `config` and `index/`.
pub async fn repo(dir: &Path) -> Repository {
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.join("store")));
    backend.create().await.unwrap();
    let config = RepoConfig::new("PD", "age1unused".into(), ChunkerParams::default());
    backend
        .write_new(FileKind::Config, "config", config.to_json())
        .await
        .unwrap();
    Repository::open(backend).await.unwrap()
}

/// Deterministic ids (xorshift), so a failure replays.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn id(&mut self) -> Id {
        let mut b = [0u8; 32];
        for c in b.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        Id(b)
    }
}

/// The `i`-th 100-byte uncompressed data blob of a pack.
pub fn blob(id: Id, i: u64) -> BlobEntry {
    BlobEntry {
        id,
        kind: BlobKind::Data,
        offset: i * 100,
        length: 100,
        raw_length: 100,
        compression: Compression::None,
    }
}

/// Writes `f` to the store under its hash, as a backup would.
pub async fn put(repo: &Repository, f: &IndexFile) -> Id {
    let (id, data) = f.encode();
    repo.backend()
        .write_new(FileKind::Index, &id.to_hex(), data)
        .await
        .unwrap();
    id
}
