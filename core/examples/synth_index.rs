//! Bench-only: fills a local repository with valid index files for
//! synthetic packs, so a repository with millions of indexed chunks exists
//! in seconds instead of a multi-terabyte backup (bench/index.sh).
//!
//!   synth_index STORE_DIR CHUNKS [CHUNKS_PER_PACK] [PACKS_PER_INDEX_FILE]
//!               [CREDENTIALS REFERENCED_PERCENT]
//!
//! Without CREDENTIALS each pack is a sparse placeholder file of its indexed
//! size (random chunk ids): only the local chunk index can be measured on
//! it. With an agent credential file the packs are real: 64-byte random
//! chunks, ids keyed with the repository secret, encrypted to the PD's
//! recipient, with real trailers, named by their hash — so `check` (keyless,
//! `--read-data`, `--deep`) verifies them like any pack. Then snapshots,
//! signed by the agent, list REFERENCED_PERCENT of the packs (one snapshot
//! per index file, listing that share of its packs, like one backup each);
//! the other packs are garbage for `prune` to remove. Each snapshot has
//! real trees, as a backup writes them: a tree pack (in the same index
//! file, listed by the snapshot) holding a root tree with one directory,
//! `data`, whose tree has one file per referenced pack, the file's extents
//! being that pack's chunks in order. So `check --deep` decrypts every
//! chunk, walks two trees a snapshot and looks up every referenced chunk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cadang_core::backend::{Backend, FileKind, LocalBackend};
use cadang_core::index::{IndexFile, IndexPack};
use cadang_core::keys::Credentials;
use cadang_core::pack::{BlobEntry, BlobKind, Compression, PackBuilder};
use cadang_core::snapshot::{Snapshot, SnapshotBody, SnapshotMeta, SnapshotStats};
use cadang_core::tree::{Extent, FileName, Node, NodeKind, Tree};
use cadang_core::Id;

/// Chunk length of real synthetic packs (the smallest `repo init` allows).
const REAL_LEN: usize = 64;

struct Plan {
    store: PathBuf,
    chunks: u64,
    per_pack: u64,
    per_file: u64,
    real: Option<(Credentials, u64)>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: synth_index STORE_DIR CHUNKS [CHUNKS_PER_PACK] [PACKS_PER_INDEX_FILE] [CREDENTIALS REFERENCED_PERCENT]");
        std::process::exit(2);
    }
    let fail = |m: String| -> ! {
        eprintln!("synth_index: {m}");
        std::process::exit(2)
    };
    let number = |i: usize, default: u64| -> u64 {
        args.get(i).map_or(default, |a| {
            a.parse()
                .unwrap_or_else(|_| fail(format!("{a:?} is not a number")))
        })
    };
    let real = args.get(5).map(|path| {
        let data = std::fs::read(path).unwrap_or_else(|e| fail(format!("{path}: {e}")));
        let c = Credentials::from_json(&data).unwrap_or_else(|e| fail(format!("{path}: {e}")));
        (c, number(6, 75).min(100))
    });
    let plan = Plan {
        store: PathBuf::from(&args[1]),
        chunks: number(2, 0),
        per_pack: number(3, 16_384).max(1),
        per_file: number(4, 4).max(1),
        real,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    if let Err(e) = rt.block_on(generate(&plan)) {
        eprintln!("synth_index: {e}");
        std::process::exit(1);
    }
}

async fn generate(plan: &Plan) -> Result<(), String> {
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(plan.store.clone()));
    let (mut made, mut files, mut snapshots, mut referenced) = (0u64, 0u64, 0u64, 0u64);
    while made < plan.chunks {
        let mut packs = Vec::new();
        for _ in 0..plan.per_file {
            if made >= plan.chunks {
                break;
            }
            let n = plan.per_pack.min(plan.chunks - made);
            let pack = match &plan.real {
                Some((c, _)) => real_pack(&*backend, c, n).await?,
                None => placeholder_pack(&plan.store, n)?,
            };
            packs.push(pack);
            made += n;
        }
        // Each index file's packs were written by one "backup", whose
        // snapshot keeps the first REFERENCED_PERCENT of them: prune then
        // rewrites every index file (its worst case), not just deletes.
        let snapshot = match &plan.real {
            Some((c, percent)) => {
                let keep = (packs.len() as u64 * percent).div_ceil(100) as usize;
                backup_trees(&*backend, c, &mut packs, keep).await?
            }
            None => None,
        };
        let (id, data) = IndexFile::new(packs).encode();
        backend
            .write_new(FileKind::Index, &id.to_hex(), data)
            .await
            .map_err(|e| e.to_string())?;
        files += 1;
        if let (Some((c, _)), Some((listed, root))) = (&plan.real, snapshot) {
            // The tree pack is listed too; it is not counted as referenced.
            referenced += listed.len() as u64 - 1;
            write_snapshot(&*backend, c, files, listed, root).await?;
            snapshots += 1;
        }
    }
    println!(
        "{made} chunks in {files} index files, {snapshots} snapshots listing {referenced} data packs and a tree pack each"
    );
    Ok(())
}

fn placeholder_pack(store: &Path, blobs: u64) -> Result<IndexPack, String> {
    const LEN: u32 = 300;
    let entries: Vec<BlobEntry> = (0..blobs)
        .map(|i| BlobEntry {
            id: Id::random(),
            kind: BlobKind::Data,
            offset: i * u64::from(LEN),
            length: LEN,
            raw_length: LEN,
            compression: Compression::None,
        })
        .collect();
    let id = Id::random();
    let size = blobs * u64::from(LEN) + 512;
    let name = id.to_hex();
    let dir = store.join("packs").join(&name[..2]);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let f = std::fs::File::create(dir.join(&name)).map_err(|e| e.to_string())?;
    f.set_len(size).map_err(|e| e.to_string())?;
    Ok(IndexPack {
        id,
        size,
        blobs: entries,
    })
}

/// A real pack of `blobs` random chunks, written to the store.
async fn real_pack(
    backend: &dyn Backend,
    c: &Credentials,
    blobs: u64,
) -> Result<IndexPack, String> {
    let recipient = c.recipient().map_err(|e| e.to_string())?;
    let mut b = PackBuilder::new(BlobKind::Data, recipient, 1).map_err(|e| e.to_string())?;
    let mut chunk = [0u8; REAL_LEN];
    for _ in 0..blobs {
        for part in chunk.chunks_mut(32) {
            part.copy_from_slice(&Id::random().0);
        }
        b.add(c.repo_secret.chunk_id(&chunk), &chunk)
            .map_err(|e| e.to_string())?;
    }
    seal(backend, &mut b).await
}

/// Seals a pack and writes it to the store under its hash.
async fn seal(backend: &dyn Backend, b: &mut PackBuilder) -> Result<IndexPack, String> {
    let sealed = b
        .seal()
        .map_err(|e| e.to_string())?
        .ok_or("an empty pack")?;
    let size = sealed.data.len() as u64;
    backend
        .write_new(FileKind::Packs, &sealed.id.to_hex(), sealed.data)
        .await
        .map_err(|e| e.to_string())?;
    Ok(IndexPack {
        id: sealed.id,
        size,
        blobs: sealed.blobs,
    })
}

/// The trees of one synthetic backup of the first `keep` of `packs`: one
/// file per pack covering its chunks, in a directory `data` under the root.
/// Their tree pack is written and appended to `packs` (so the same index
/// file lists it). Returns the packs the snapshot lists and its root tree.
async fn backup_trees(
    backend: &dyn Backend,
    c: &Credentials,
    packs: &mut Vec<IndexPack>,
    keep: usize,
) -> Result<Option<(Vec<Id>, Id)>, String> {
    if keep == 0 {
        return Ok(None);
    }
    let files: Vec<Node> = packs[..keep]
        .iter()
        .enumerate()
        .map(|(i, p)| Node {
            size: p.blobs.iter().map(|b| u64::from(b.raw_length)).sum(),
            content: p.blobs.iter().map(|b| Extent::Chunk(b.id)).collect(),
            ..node(format!("file-{i}.bin"), NodeKind::File)
        })
        .collect();
    let dir = Tree { nodes: files }.encode();
    let dir_id = c.repo_secret.chunk_id(&dir);
    let root = Tree {
        nodes: vec![Node {
            subtree: Some(dir_id),
            ..node("data".into(), NodeKind::Dir)
        }],
    }
    .encode();
    let root_id = c.repo_secret.chunk_id(&root);
    let recipient = c.recipient().map_err(|e| e.to_string())?;
    let mut b = PackBuilder::new(BlobKind::Tree, recipient, 1).map_err(|e| e.to_string())?;
    b.add(dir_id, &dir).map_err(|e| e.to_string())?;
    b.add(root_id, &root).map_err(|e| e.to_string())?;
    let tree_pack = seal(backend, &mut b).await?;
    let mut listed: Vec<Id> = packs[..keep].iter().map(|p| p.id).collect();
    listed.push(tree_pack.id);
    packs.push(tree_pack);
    Ok(Some((listed, root_id)))
}

/// A tree entry with the metadata the walk does not look at zeroed.
fn node(name: String, kind: NodeKind) -> Node {
    Node {
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
    }
}

async fn write_snapshot(
    backend: &dyn Backend,
    c: &Credentials,
    n: u64,
    packs: Vec<Id>,
    tree: Id,
) -> Result<(), String> {
    let meta = SnapshotMeta {
        host: format!("synth-{n}"),
        tags: vec!["synthetic".into()],
        agent: c.agent_name.clone(),
    };
    let body = SnapshotBody {
        paths: vec![FileName::from(format!("/synthetic/{n}").as_bytes())],
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
        &c.recipient().map_err(|e| e.to_string())?,
        &c.agent_key().map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    backend
        .write_new(FileKind::Snapshots, &id.to_hex(), data)
        .await
        .map_err(|e| e.to_string())
}
