//! Prune and check memory is bounded per pack, not per chunk (issue 11
//! item 3: ≤ 40 bytes of RSS a chunk). A counting allocator measures the
//! peak heap of a keyless `check`, of `check --deep` and of a `prune` on a
//! repository, then on one with four times the chunks in packs of the same
//! size: what the extra chunks cost is the per-chunk memory. (The in-memory
//! map of every index entry that check used to build costs ~100 bytes a
//! chunk and fails this; so did `--deep`'s `MasterIndex` plus its set of
//! every verified blob.) `bench/index.sh` measures the same at 5 M chunks
//! as process RSS.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cadang_core::backend::{Backend, FileKind, LocalBackend};
use cadang_core::certify::TrustAnchors;
use cadang_core::check::{self, CheckOptions, ReadData};
use cadang_core::config::ChunkerParams;
use cadang_core::index::{IndexFile, IndexPack};
use cadang_core::keys::Credentials;
use cadang_core::pack::{BlobKind, PackBuilder};
use cadang_core::prune;
use cadang_core::snapshot::{Snapshot, SnapshotBody, SnapshotMeta, SnapshotStats};
use cadang_core::tree::FileName;
use cadang_core::tree::{Extent, Node, NodeKind, Tree};
use cadang_core::{Id, Repository};

struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            let now = NOW.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(l.size(), Ordering::Relaxed);
        System.dealloc(p, l)
    }
}

#[global_allocator]
static A: Counting = Counting;

/// The counter is global: the tests of this file take turns, or one test's
/// allocations would show in another's peak.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Peak heap above the starting level while `f` runs.
async fn peak_of<T>(f: impl std::future::Future<Output = T>) -> (T, usize) {
    let base = NOW.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f.await;
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

const PER_PACK: usize = 2048;
const PACKS_PER_FILE: usize = 4;

/// A repository of `files` index files of four real packs of 64-byte
/// chunks; one snapshot per file lists three of its packs, so prune
/// deletes a quarter of the packs and rewrites every index file. The
/// snapshots' trees are not written (only `--deep` opens trees).
async fn repository(dir: &Path, files: usize) -> (Repository, Credentials) {
    build(dir, files, false).await
}

/// The same with real trees: each index file also lists a tree pack, whose
/// root tree holds a directory `data` with one file per referenced pack,
/// the file's extents being that pack's chunks; the snapshot lists the
/// tree pack too. So `check --deep` walks two trees a snapshot and looks up
/// every referenced chunk.
async fn repository_with_trees(dir: &Path, files: usize) -> (Repository, Credentials) {
    build(dir, files, true).await
}

async fn build(dir: &Path, files: usize, trees: bool) -> (Repository, Credentials) {
    std::env::set_var("CADANG_SCRYPT_LOG_N", "4");
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.to_path_buf()));
    let params = ChunkerParams {
        min_size: 64,
        avg_size: 256,
        max_size: 1024,
        ..ChunkerParams::default()
    };
    let init = Repository::init(backend.clone(), "PD", "agent", "pass", params)
        .await
        .unwrap();
    let c = init.credentials;
    for n in 0..files {
        let mut packs = Vec::new();
        for _ in 0..PACKS_PER_FILE {
            packs.push(real_pack(&*backend, &c).await);
        }
        let mut listed: Vec<Id> = packs[..3].iter().map(|p| p.id).collect();
        let mut root = Id::random();
        if trees {
            let (tree_pack, id) = tree_pack(&*backend, &c, &packs[..3]).await;
            listed.push(tree_pack.id);
            packs.push(tree_pack);
            root = id;
        }
        let (id, data) = IndexFile::new(packs).encode();
        backend
            .write_new(FileKind::Index, &id.to_hex(), data)
            .await
            .unwrap();
        snapshot(&*backend, &c, n, listed, root).await;
    }
    (init.repo, c)
}

/// A tree pack holding a root tree (one directory, `data`) and the
/// directory's tree (one file per pack of `files`, covering its chunks).
/// Returns the pack and the root tree's id.
async fn tree_pack(backend: &dyn Backend, c: &Credentials, files: &[IndexPack]) -> (IndexPack, Id) {
    let node = |name: String, kind| Node {
        name: FileName::from(name.as_bytes()),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime_ns: 0,
        size: 0,
        links: 0,
        device: 0,
        inode: 0,
        rdev: 0,
        sparse: false,
        content: Vec::new(),
        subtree: None,
        target: None,
    };
    let dir = Tree {
        nodes: files
            .iter()
            .enumerate()
            .map(|(i, p)| Node {
                size: (p.blobs.len() * 64) as u64,
                content: p.blobs.iter().map(|b| Extent::Chunk(b.id)).collect(),
                ..node(format!("file-{i}.bin"), NodeKind::File)
            })
            .collect(),
    }
    .encode();
    let dir_id = c.repo_secret.chunk_id(&dir);
    let root = Tree {
        nodes: vec![Node {
            subtree: Some(dir_id),
            ..node("data".into(), NodeKind::Dir)
        }],
    }
    .encode();
    let root_id = c.repo_secret.chunk_id(&root);
    let mut b = PackBuilder::new(BlobKind::Tree, c.recipient().unwrap(), 1).unwrap();
    b.add(dir_id, &dir).unwrap();
    b.add(root_id, &root).unwrap();
    (seal(backend, &mut b).await, root_id)
}

async fn real_pack(backend: &dyn Backend, c: &Credentials) -> IndexPack {
    let mut b = PackBuilder::new(BlobKind::Data, c.recipient().unwrap(), 1).unwrap();
    let mut chunk = [0u8; 64];
    for _ in 0..PER_PACK {
        for part in chunk.chunks_mut(32) {
            part.copy_from_slice(&Id::random().0);
        }
        b.add(c.repo_secret.chunk_id(&chunk), &chunk).unwrap();
    }
    seal(backend, &mut b).await
}

/// Seals `b` and writes the pack, as a backup would.
async fn seal(backend: &dyn Backend, b: &mut PackBuilder) -> IndexPack {
    let sealed = b.seal().unwrap().unwrap();
    let size = sealed.data.len() as u64;
    backend
        .write_new(FileKind::Packs, &sealed.id.to_hex(), sealed.data)
        .await
        .unwrap();
    IndexPack {
        id: sealed.id,
        size,
        blobs: sealed.blobs,
    }
}

async fn snapshot(backend: &dyn Backend, c: &Credentials, n: usize, packs: Vec<Id>, tree: Id) {
    let meta = SnapshotMeta {
        host: format!("host-{n}"),
        tags: Vec::new(),
        agent: c.agent_name.clone(),
    };
    let body = SnapshotBody {
        paths: vec![FileName::from(&b"/data"[..])],
        tree,
        stdin_command: None,
        excludes: Vec::new(),
    };
    let (id, data) = Snapshot::create(
        c.repo_id,
        chrono::Local::now().fixed_offset(),
        packs,
        SnapshotStats::default(),
        &meta,
        &body,
        &c.repo_secret,
        &c.recipient().unwrap(),
        &c.agent_key().unwrap(),
    )
    .unwrap();
    backend
        .write_new(FileKind::Snapshots, &id.to_hex(), data)
        .await
        .unwrap();
}

fn trust(c: &Credentials) -> TrustAnchors {
    let mut t = TrustAnchors::default();
    t.add_hex(c.custodian_key.as_deref().unwrap()).unwrap();
    t
}

/// Keyless structure check: its peak heap and its report.
async fn check_peak(
    repo: &Repository,
    c: &Credentials,
    read: ReadData,
) -> (check::CheckReport, usize) {
    let opts = CheckOptions {
        read,
        deep: None,
        trust: trust(c),
    };
    let (r, peak) = peak_of(check::check_with(repo, opts)).await;
    (r.unwrap(), peak)
}

const SMALL: usize = 4;
const LARGE: usize = 16;
/// Chunks the large repository has beyond the small one.
const EXTRA: usize = (LARGE - SMALL) * PACKS_PER_FILE * PER_PACK;

fn per_chunk(small: usize, large: usize) -> f64 {
    large.saturating_sub(small) as f64 / EXTRA as f64
}

#[tokio::test]
async fn keyless_check_memory_does_not_grow_per_chunk() {
    let _turn = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let (small, cs) = repository(&tmp.path().join("small"), SMALL).await;
    let (large, cl) = repository(&tmp.path().join("large"), LARGE).await;
    for read in [false, true] {
        let mode = || if read { ReadData::All } else { ReadData::None };
        let (rs, ps) = check_peak(&small, &cs, mode()).await;
        let (rl, pl) = check_peak(&large, &cl, mode()).await;
        assert!(rs.ok() && rl.ok(), "{:?} {:?}", rs.errors, rl.errors);
        assert_eq!(rl.trailers_checked, LARGE * PACKS_PER_FILE);
        assert_eq!(rl.unreferenced_packs, LARGE);
        let b = per_chunk(ps, pl);
        assert!(
            b <= 40.0,
            "check (read data: {read}) costs {b:.1} B a chunk (peak {ps} -> {pl} B)"
        );
    }
}

#[tokio::test]
async fn prune_memory_does_not_grow_per_chunk() {
    let _turn = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let (small, _) = repository(&tmp.path().join("small"), SMALL).await;
    let (large, cl) = repository(&tmp.path().join("large"), LARGE).await;
    let (rs, ps) = peak_of(prune::prune(&small)).await;
    let (rl, pl) = peak_of(prune::prune(&large)).await;
    let (rs, rl) = (rs.unwrap(), rl.unwrap());
    assert_eq!((rs.deleted_packs, rs.rewritten_index_files), (SMALL, SMALL));
    assert_eq!((rl.deleted_packs, rl.rewritten_index_files), (LARGE, LARGE));
    let b = per_chunk(ps, pl);
    assert!(
        b <= 40.0,
        "prune costs {b:.1} B a chunk (peak {ps} -> {pl} B)"
    );
    // What prune left is a sound repository: every snapshot's packs indexed.
    let (after, _) = check_peak(&large, &cl, ReadData::None).await;
    assert!(after.ok(), "{:?}", after.errors);
    assert_eq!(after.unreferenced_packs, 0);
    assert_eq!(after.packs, LARGE * 3);
}

#[tokio::test]
async fn deep_check_memory_does_not_grow_per_chunk() {
    let _turn = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let (small, cs) = repository_with_trees(&tmp.path().join("small"), SMALL).await;
    let (large, cl) = repository_with_trees(&tmp.path().join("large"), LARGE).await;
    let mut peaks = Vec::new();
    for (repo, c, files) in [(&small, &cs, SMALL), (&large, &cl, LARGE)] {
        let identity = repo.unlock("pass").await.unwrap();
        let opts = CheckOptions {
            read: ReadData::None,
            deep: Some(&identity),
            trust: trust(c),
        };
        let (r, peak) = peak_of(check::check_with(repo, opts)).await;
        let r = r.unwrap();
        assert!(r.ok(), "{:?}", r.errors);
        // Every pack read, every blob (chunks and both trees of each
        // snapshot) decrypted, every snapshot walked.
        assert_eq!(r.packs_read, files * (PACKS_PER_FILE + 1));
        assert_eq!(r.blobs_verified, files * (PACKS_PER_FILE * PER_PACK + 2));
        assert_eq!(r.trees_checked, files * 2);
        assert_eq!(r.unreferenced_packs, files);
        peaks.push(peak);
    }
    let b = per_chunk(peaks[0], peaks[1]);
    eprintln!(
        "check --deep: {b:.1} B a chunk (peak {} -> {} B)",
        peaks[0], peaks[1]
    );
    assert!(
        b <= 40.0,
        "check --deep costs {b:.1} B a chunk (peak {} -> {} B)",
        peaks[0],
        peaks[1]
    );
}
