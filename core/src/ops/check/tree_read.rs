//! Reading trees for the deep walk the way a restore reads them (the whole
//! pack, checked against its name, decrypted off the async threads, the
//! blob sliced out with the index's entry and checked against its id), but
//! keeping only the few most recently used tree packs decrypted. A
//! restore's reader keeps every tree pack it opened, which is fine for one
//! snapshot; across every snapshot of a large repository the trees add up
//! to tens of bytes a chunk (each chunk reference is ~67 bytes of JSON).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::keys::{DataIdentity, RepoSecret};
use crate::pack::{self, BlobEntry};
use crate::repository::Repository;
use crate::tree::Tree;

/// Decrypted tree packs kept: a snapshot's trees mostly sit in the few
/// packs its backup wrote, so this spares re-reading them tree by tree.
const CACHED_PACKS: usize = 4;

/// The data identity and the repository secret, checked against the
/// repository, for everything `--deep` decrypts.
pub(super) struct Keys {
    pub identity: DataIdentity,
    pub secret: RepoSecret,
}

impl Keys {
    pub async fn new(repo: &Repository, identity: &DataIdentity) -> Result<Keys> {
        repo.check_identity(identity)?;
        let secret = repo.secret(identity).await?;
        Ok(Keys {
            identity: identity.clone(),
            secret,
        })
    }
}

pub(super) struct TreeReader<'a> {
    repo: &'a Repository,
    keys: &'a Keys,
    /// Most recently used last.
    cache: Vec<(Id, Arc<Vec<u8>>)>,
}

impl<'a> TreeReader<'a> {
    pub fn new(repo: &'a Repository, keys: &'a Keys) -> Self {
        TreeReader {
            repo,
            keys,
            cache: Vec::with_capacity(CACHED_PACKS),
        }
    }

    /// The tree `entry` describes, read from `pack`.
    pub async fn load(&mut self, pack: &Id, entry: &BlobEntry) -> Result<Tree> {
        let plain = self.pack_plain(pack).await?;
        let raw = pack::decode_blob(
            pack::blob_slice(&plain, entry)?,
            entry,
            Some(&self.keys.secret),
        )?;
        Tree::decode(&raw)
    }

    async fn pack_plain(&mut self, pack: &Id) -> Result<Arc<Vec<u8>>> {
        if let Some(at) = self.cache.iter().position(|(p, _)| p == pack) {
            let hit = self.cache.remove(at);
            let plain = hit.1.clone();
            self.cache.push(hit);
            return Ok(plain);
        }
        let stored = self.repo.read_pack(pack).await?;
        let identity = self.keys.identity.clone();
        let plain = tokio::task::spawn_blocking(move || pack::decrypt_pack(&stored, &identity))
            .await
            .map_err(|e| Error::task(&format!("decrypting pack {pack}"), e))??;
        let plain = Arc::new(plain);
        if self.cache.len() >= CACHED_PACKS {
            self.cache.remove(0);
        }
        self.cache.push((*pack, plain.clone()));
        Ok(plain)
    }
}
