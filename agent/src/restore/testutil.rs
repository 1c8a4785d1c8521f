//! Test helpers: a repository in a temporary directory and snapshots
//! crafted node by node with the core library (so tests can also build the
//! hostile trees no backup would write).

use std::path::PathBuf;
use std::sync::{Arc, Once};

use cadang_core::backend::LocalBackend;
use cadang_core::config::ChunkerParams;
use cadang_core::keys::{Credentials, DataIdentity};
use cadang_core::pack::BlobKind;
use cadang_core::repository::BlobReader;
use cadang_core::session::BackupSession;
use cadang_core::snapshot::{Snapshot, SnapshotBody, SnapshotMeta, SnapshotStats};
use cadang_core::tree::{Extent, FileName, Node, NodeKind, Tree};
use cadang_core::{Id, Repository};

/// 2021-01-01T00:00:00.123456789Z
pub(crate) const MTIME: i64 = 1_609_459_200_123_456_789;

pub(crate) fn node(name: &[u8], kind: NodeKind, mode: u32) -> Node {
    Node {
        name: FileName(name.to_vec()),
        kind,
        mode,
        // SAFETY: getuid/getgid cannot fail.
        uid: unsafe { libc::getuid() },
        gid: unsafe { libc::getgid() },
        user: None,
        group: None,
        mtime_ns: MTIME,
        size: 0,
        links: 0,
        device: 0,
        inode: 0,
        rdev: 0,
        sparse: false,
        content: Vec::new(),
        subtree: None,
        target: None,
    }
}

/// An empty regular file node.
pub(crate) fn file(name: &[u8], mode: u32) -> Node {
    node(name, NodeKind::File, mode)
}

pub(crate) fn dir(name: &[u8], subtree: Id, mode: u32) -> Node {
    Node {
        subtree: Some(subtree),
        ..node(name, NodeKind::Dir, mode)
    }
}

pub(crate) fn symlink(name: &[u8], target: &[u8]) -> Node {
    Node {
        target: Some(FileName(target.to_vec())),
        ..node(name, NodeKind::Symlink, 0o777)
    }
}

/// Deterministic incompressible bytes.
pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A repository plus the blobs of the snapshot being crafted.
pub(crate) struct Craft {
    pub dir: tempfile::TempDir,
    pub repo: Arc<Repository>,
    pub identity: DataIdentity,
    credentials: Vec<u8>,
    data: Vec<(Id, Vec<u8>)>,
    trees: Vec<(Id, Vec<u8>)>,
    /// Data blobs per pack, so that files span several packs.
    pub data_per_pack: usize,
    /// File content is cut into chunks of this size.
    pub chunk_size: usize,
}

impl Craft {
    pub(crate) async fn new() -> Craft {
        static FAST_KDF: Once = Once::new();
        // Set once, before any test reads the environment.
        FAST_KDF.call_once(|| std::env::set_var("CADANG_SCRYPT_LOG_N", "10"));
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let init = Repository::init(backend, "PD", "agent", "pw", ChunkerParams::default())
            .await
            .unwrap();
        let identity = init.repo.unlock("pw").await.unwrap();
        Craft {
            dir,
            repo: Arc::new(init.repo),
            identity,
            credentials: init.credentials.to_json(),
            data: Vec::new(),
            trees: Vec::new(),
            data_per_pack: 2,
            chunk_size: 64 * 1024,
        }
    }

    /// A path in the temporary directory (beside the repository).
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn credentials(&self) -> Credentials {
        Credentials::from_json(&self.credentials).unwrap()
    }

    /// Stores `bytes` as one chunk.
    pub(crate) fn chunk(&mut self, bytes: &[u8]) -> Extent {
        let id = self.credentials().repo_secret.chunk_id(bytes);
        self.data.push((id, bytes.to_vec()));
        Extent::Chunk(id)
    }

    /// A regular file holding `content`, cut into `chunk_size` chunks.
    pub(crate) fn file(&mut self, name: &[u8], content: &[u8], mode: u32) -> Node {
        let content_ext = content
            .chunks(self.chunk_size)
            .map(|c| self.chunk(c))
            .collect();
        Node {
            content: content_ext,
            size: content.len() as u64,
            ..file(name, mode)
        }
    }

    pub(crate) fn tree(&mut self, nodes: Vec<Node>) -> Id {
        let bytes = Tree { nodes }.encode();
        let id = self.credentials().repo_secret.chunk_id(&bytes);
        self.trees.push((id, bytes));
        id
    }

    /// Stores the blobs so far and commits a snapshot whose root tree (the
    /// tree of `/`) holds `root`.
    pub(crate) async fn commit(&mut self, root: Vec<Node>, paths: &[&str]) -> Snapshot {
        let root = self.tree(root);
        let session = Arc::new(
            BackupSession::start(self.repo.clone(), self.credentials())
                .await
                .unwrap(),
        );
        let worker = session.clone();
        let data = std::mem::take(&mut self.data);
        let trees = std::mem::take(&mut self.trees);
        let per_pack = self.data_per_pack.max(1);
        tokio::task::spawn_blocking(move || {
            for blobs in data.chunks(per_pack) {
                let mut pack = worker.new_pack(BlobKind::Data).unwrap();
                for (id, bytes) in blobs {
                    if worker.claim(*id) {
                        worker.store(&mut pack, *id, bytes).unwrap();
                    }
                }
                worker.flush(&mut pack).unwrap();
            }
            let mut pack = worker.new_pack(BlobKind::Tree).unwrap();
            for (id, bytes) in trees {
                if worker.claim(id) {
                    worker.store(&mut pack, id, &bytes).unwrap();
                }
            }
            worker.flush(&mut pack).unwrap();
        })
        .await
        .unwrap();
        let session = Arc::try_unwrap(session).ok().expect("one session handle");
        let body = SnapshotBody {
            paths: paths
                .iter()
                .map(|p| FileName(p.as_bytes().to_vec()))
                .collect(),
            tree: root,
            stdin_command: None,
            excludes: vec![],
        };
        let meta = SnapshotMeta {
            host: "test".into(),
            tags: vec![],
            agent: "agent".into(),
        };
        session
            .commit(meta, body, SnapshotStats::default())
            .await
            .unwrap()
            .1
    }

    pub(crate) async fn reader(&self) -> BlobReader<'_> {
        BlobReader::new(&self.repo, &self.identity).await.unwrap()
    }

    /// Where the local backend keeps a pack.
    pub(crate) fn pack_file(&self, pack: &Id) -> PathBuf {
        let hex = pack.to_hex();
        self.path("repo").join("packs").join(&hex[..2]).join(&hex)
    }
}
