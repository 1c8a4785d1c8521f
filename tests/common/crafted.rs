//! Crafted snapshots for the damage tests: a tree written straight through
//! core's session API, bypassing the backup walker, so a test can store
//! what a walker never would.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use cadang_core::backend::LocalBackend;
use cadang_core::keys::Credentials;
use cadang_core::pack::BlobKind;
use cadang_core::session::BackupSession;
use cadang_core::snapshot::{SnapshotBody, SnapshotMeta, SnapshotStats};
use cadang_core::tree::{FileName, Node, Tree};
use cadang_core::Repository;

/// Stores a root tree holding `nodes` (and nothing else) and commits a
/// snapshot of it with the agent credentials; returns the snapshot id.
pub fn commit_tree(repo: &Path, creds: &Path, nodes: Vec<Node>) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let repo = Arc::new(
            Repository::open(Arc::new(LocalBackend::new(repo.to_path_buf())))
                .await
                .unwrap(),
        );
        let creds = Credentials::from_json(&fs::read(creds).unwrap()).unwrap();
        let tree = Tree { nodes }.encode();
        let root = creds.repo_secret.chunk_id(&tree);
        let session = Arc::new(BackupSession::start(repo, creds).await.unwrap());
        let worker = session.clone();
        tokio::task::spawn_blocking(move || {
            let mut pack = worker.new_pack(BlobKind::Tree).unwrap();
            if worker.claim(root) {
                worker.store(&mut pack, root, &tree).unwrap();
            }
            worker.flush(&mut pack).unwrap();
        })
        .await
        .unwrap();
        let session = Arc::try_unwrap(session).ok().expect("one handle");
        let meta = SnapshotMeta {
            host: "crafted".into(),
            tags: vec![],
            agent: "crafted".into(),
        };
        let body = SnapshotBody {
            paths: vec![FileName(b"/".to_vec())],
            tree: root,
            stdin_command: None,
            excludes: vec![],
        };
        let (id, _) = session
            .commit(meta, body, SnapshotStats::default())
            .await
            .unwrap();
        id.to_hex()
    })
}
