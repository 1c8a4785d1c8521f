//! Bench-only: fills a local repository's `index/` with valid index files
//! for synthetic packs, so a repository with millions of indexed chunks
//! exists in seconds instead of a multi-terabyte backup (bench/index.sh).
//!
//!   synth_index STORE_DIR CHUNKS [CHUNKS_PER_PACK] [PACKS_PER_INDEX_FILE]
//!
//! Chunk ids are random (as keyed BLAKE3 ids are). Each pack also gets a
//! sparse placeholder file of its indexed size under `packs/`, so listings
//! look like a real repository's; the placeholders hold no data, so only
//! keyless, index-level operations make sense on the result (backup
//! deduplication, prune planning), never restore or `check --read-data`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cadang_core::backend::{Backend, FileKind, LocalBackend};
use cadang_core::index::{IndexFile, IndexPack};
use cadang_core::pack::{BlobEntry, BlobKind, Compression};
use cadang_core::Id;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: synth_index STORE_DIR CHUNKS [CHUNKS_PER_PACK] [PACKS_PER_INDEX_FILE]");
        std::process::exit(2);
    }
    let number = |i: usize, default: u64| -> u64 {
        args.get(i).map_or(default, |a| {
            a.parse().unwrap_or_else(|_| {
                eprintln!("{a:?} is not a number");
                std::process::exit(2)
            })
        })
    };
    let store = PathBuf::from(&args[1]);
    let (chunks, per_pack, per_file) = (number(2, 0), number(3, 16_384), number(4, 4));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    if let Err(e) = rt.block_on(generate(&store, chunks, per_pack.max(1), per_file.max(1))) {
        eprintln!("synth_index: {e}");
        std::process::exit(1);
    }
}

async fn generate(store: &Path, chunks: u64, per_pack: u64, per_file: u64) -> Result<(), String> {
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(store.to_path_buf()));
    let (mut made, mut files) = (0u64, 0u64);
    while made < chunks {
        let mut packs = Vec::new();
        for _ in 0..per_file {
            if made >= chunks {
                break;
            }
            let n = per_pack.min(chunks - made);
            packs.push(synthetic_pack(store, n)?);
            made += n;
        }
        let (id, data) = IndexFile::new(packs).encode();
        backend
            .write_new(FileKind::Index, &id.to_hex(), data)
            .await
            .map_err(|e| e.to_string())?;
        files += 1;
    }
    println!("{made} chunks in {files} index files");
    Ok(())
}

fn synthetic_pack(store: &Path, blobs: u64) -> Result<IndexPack, String> {
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
