//! Helpers shared by the engine tests: policy sets built in code, and real
//! directory repositories with snapshots written through core's session API.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use cadang_controller::engine::StoreTarget;
use cadang_core::backend::LocalBackend;
use cadang_core::config::ChunkerParams;
use cadang_core::keys::Credentials;
use cadang_core::pack::BlobKind;
use cadang_core::session::BackupSession;
use cadang_core::snapshot::{Snapshot, SnapshotBody, SnapshotMeta, SnapshotStats};
use cadang_core::tree::{Extent, FileName, Node, NodeKind, Tree};
use cadang_core::Repository;
use cadang_policies::model::*;
use cadang_policies::retention::KeepPolicy;
use cadang_policies::schedule::Schedule;
use chrono::{DateTime, Utc};

pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("test instant")
}

// ----- policies -----

pub fn schedule(expr: &str, zone: &str) -> Schedule {
    Schedule::parse(expr, zone).expect("test schedule")
}

/// A PD with one host `srv-<pd>` and one source `data` backed up at
/// `backup_cron`; verification and retention weekly on Sunday, no windows.
pub fn pd(code: &str, zone: &str, backup_cron: &str) -> PdPolicy {
    PdPolicy {
        code: code.to_string(),
        name: format!("Dinas {code}"),
        group: DataGroup::Lainnya,
        wali_data: WaliData {
            name: "Wali".into(),
            nip: "198001012006041001".into(),
        },
        hosts: vec![HostPolicy {
            name: format!("srv-{}", code.to_lowercase()),
            sources: vec![SourcePolicy {
                name: "data".into(),
                kind: SourceKind::Paths(vec!["/srv/data".into()]),
                schedule: schedule(backup_cron, zone),
                excludes: vec![],
                tags: vec![],
                anomaly: Default::default(),
            }],
        }],
        retention: KeepPolicy {
            daily: 7,
            ..Default::default()
        },
        onsite_store: "onsite".into(),
        dr_store: "dr".into(),
        rpo: Duration::from_secs(26 * 3600),
        replication: Replication {
            windows: vec![],
            bandwidth_limit: None,
            delay: Duration::ZERO,
        },
        object_lock_days: 0,
        verification: Verification {
            schedule: schedule("0 3 * * 0", zone),
            read_share_percent: 5,
        },
        retention_schedule: schedule("0 4 * * 0", zone),
        drill: None,
        anomaly: Default::default(),
    }
}

pub fn policy_set(zone: &str, pds: Vec<PdPolicy>) -> PolicySet {
    let stores = [("onsite", Site::OnSite), ("dr", Site::Dr)]
        .into_iter()
        .map(|(name, site)| {
            (
                name.to_string(),
                StoreRef {
                    name: name.to_string(),
                    site,
                },
            )
        })
        .collect();
    PolicySet {
        regency: Regency {
            name: "Kabupaten Uji".into(),
            zone: zone.to_string(),
            stores,
        },
        pds: pds
            .into_iter()
            .map(|p| (p.code.clone(), p))
            .collect::<BTreeMap<_, _>>(),
        fingerprint: "test".into(),
    }
}

// ----- repositories -----

pub fn fast_kdf() {
    static FAST_KDF: Once = Once::new();
    // Set once, before any repository is created in this test binary.
    FAST_KDF.call_once(|| std::env::set_var("CADANG_SCRYPT_LOG_N", "10"));
}

pub fn target(name: &str, root: &Path) -> StoreTarget {
    StoreTarget {
        name: name.to_string(),
        url: root.to_string_lossy().into_owned(),
        credentials: None,
    }
}

/// A PD's repository inside a store directory, and what a backup needs.
pub struct TestRepo {
    pub repo: Arc<Repository>,
    pub credentials: Vec<u8>,
    pub path: PathBuf,
}

pub async fn init_repo(store_root: &Path, pd: &str) -> TestRepo {
    fast_kdf();
    let path = store_root.join(pd);
    let backend = Arc::new(LocalBackend::new(path.clone()));
    let init = Repository::init(backend, pd, "agent", "pw", ChunkerParams::default())
        .await
        .expect("repository init");
    TestRepo {
        repo: Arc::new(init.repo),
        credentials: init.credentials.to_json(),
        path,
    }
}

fn node(name: &str, kind: NodeKind) -> Node {
    Node {
        name: FileName(name.as_bytes().to_vec()),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime_ns: 1_609_459_200_000_000_000,
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

/// Deterministic incompressible bytes, so every snapshot adds a pack.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
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

impl TestRepo {
    /// A snapshot of host `host`, path `path`, holding one file `content`:
    /// one data pack and one tree pack.
    pub async fn backup(&self, host: &str, path: &str, content: Vec<u8>) -> Snapshot {
        let credentials = Credentials::from_json(&self.credentials).expect("credentials");
        let chunk_id = credentials.repo_secret.chunk_id(&content);
        let file = Node {
            size: content.len() as u64,
            content: vec![Extent::Chunk(chunk_id)],
            ..node("file", NodeKind::File)
        };
        let tree = Tree { nodes: vec![file] }.encode();
        let tree_id = credentials.repo_secret.chunk_id(&tree);
        let session = Arc::new(
            BackupSession::start(self.repo.clone(), credentials)
                .await
                .expect("session"),
        );
        let worker = session.clone();
        tokio::task::spawn_blocking(move || {
            for (kind, id, bytes) in [
                (BlobKind::Data, chunk_id, content),
                (BlobKind::Tree, tree_id, tree),
            ] {
                let mut pack = worker.new_pack(kind).expect("pack");
                if worker.claim(id) {
                    worker.store(&mut pack, id, &bytes).expect("store");
                }
                worker.flush(&mut pack).expect("flush");
            }
        })
        .await
        .expect("blob writer");
        let session = Arc::try_unwrap(session).ok().expect("one session handle");
        let body = SnapshotBody {
            paths: vec![FileName(path.as_bytes().to_vec())],
            tree: tree_id,
            stdin_command: None,
            excludes: vec![],
        };
        let meta = SnapshotMeta {
            host: host.into(),
            tags: vec![],
            agent: "agent".into(),
        };
        session
            .commit(meta, body, SnapshotStats::default())
            .await
            .expect("commit")
            .1
    }

    /// Files in a folder of the repository (`packs` is two levels deep).
    pub fn files(&self, folder: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![self.path.join(folder)];
        while let Some(d) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }
}

/// Snapshots a directory store holds for `pd` (opened afresh).
pub async fn snapshot_count(store_root: &Path, pd: &str) -> usize {
    let backend = Arc::new(LocalBackend::new(store_root.join(pd)));
    let repo = Repository::open(backend).await.expect("open repository");
    repo.snapshots().await.expect("snapshots").0.len()
}
