//! The local chunk index (`cadang_core::index_cache`) against the store's
//! index files: it answers like the in-memory `MasterIndex`, follows index
//! files that appear and disappear, and never trusts a damaged cache.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use cadang_core::backend::FileKind;
use cadang_core::index::{IndexFile, IndexPack};
use cadang_core::index_cache::ChunkIndex;
use cadang_core::Id;

mod support;
use support::{blob, put, repo, Rng};

fn index_file(packs: Vec<(Id, Vec<Id>)>) -> IndexFile {
    IndexFile::new(
        packs
            .into_iter()
            .map(|(id, blobs)| IndexPack {
                id,
                size: 1000 + blobs.len() as u64,
                blobs: blobs
                    .into_iter()
                    .enumerate()
                    .map(|(i, b)| blob(b, i as u64))
                    .collect(),
            })
            .collect(),
    )
}

type Truth = HashMap<Id, HashSet<Id>>;

fn add_truth(truth: &mut Truth, f: &IndexFile) {
    for p in &f.packs {
        for b in &p.blobs {
            truth.entry(b.id).or_default().insert(p.id);
        }
    }
}

fn assert_matches(ix: &ChunkIndex, truth: &Truth, absent: &[Id]) {
    let none = HashSet::new();
    for (chunk, packs) in truth {
        let pack = ix.pack_of(chunk, &none);
        assert!(
            pack.is_some_and(|p| packs.contains(&p)),
            "chunk {chunk:?} should be in one of {packs:?}, cache says {pack:?}"
        );
    }
    for a in absent {
        assert_eq!(ix.pack_of(a, &none), None, "{a:?} is in no index file");
    }
}

/// Random index files with chunks shared between files and between packs.
fn random_files(rng: &mut Rng, files: usize, packs: usize, blobs: usize) -> Vec<IndexFile> {
    let mut shared = Vec::new();
    (0..files)
        .map(|_| {
            index_file(
                (0..packs)
                    .map(|_| {
                        let ids = (0..blobs)
                            .map(|_| {
                                if !shared.is_empty() && rng.next().is_multiple_of(10) {
                                    shared[(rng.next() as usize) % shared.len()]
                                } else {
                                    let id = rng.id();
                                    shared.push(id);
                                    id
                                }
                            })
                            .collect();
                        (rng.id(), ids)
                    })
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn answers_like_the_master_index_on_random_sets() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path()).await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut truth = Truth::new();
    // 300,000 records: more than one sorted run, so the k-way merge is used.
    for f in random_files(&mut rng, 30, 4, 2_500) {
        add_truth(&mut truth, &f);
        put(&repo, &f).await;
    }
    let absent: Vec<Id> = (0..2_000).map(|_| rng.id()).collect();
    let ix = ChunkIndex::open(&repo, Some(&tmp.path().join("cache")))
        .await
        .unwrap();
    assert_eq!(ix.index_files(), 30);
    assert_matches(&ix, &truth, &absent);

    let (master, bad) = repo.load_index().await.unwrap();
    assert!(bad.is_empty());
    for (chunk, _) in master.blobs() {
        assert!(ix.contains(chunk));
    }
    for (pack, size) in master.packs() {
        assert_eq!(ix.pack_size(pack), Some(*size));
    }
    assert_eq!(ix.pack_size(&rng.id()), None);
    for a in &absent {
        assert_eq!(master.contains(a), ix.contains(a));
    }
}

#[tokio::test]
async fn excluded_packs_are_not_deduplicated_against() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path()).await;
    let (chunk, marked, other) = (Id([1; 32]), Id([2; 32]), Id([3; 32]));
    put(&repo, &index_file(vec![(marked, vec![chunk])])).await;
    let ix = ChunkIndex::open(&repo, None).await.unwrap();
    let excluded: HashSet<Id> = [marked].into();
    assert_eq!(ix.pack_of(&chunk, &excluded), None);

    put(&repo, &index_file(vec![(other, vec![chunk])])).await;
    let ix = ChunkIndex::open(&repo, None).await.unwrap();
    assert_eq!(ix.pack_of(&chunk, &excluded), Some(other));
}

#[tokio::test]
async fn a_new_index_file_is_merged_and_a_removed_one_forgotten() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path()).await;
    let cache = tmp.path().join("cache");
    let mut rng = Rng(7);
    let files = random_files(&mut rng, 3, 2, 50);
    let names = {
        let mut n = Vec::new();
        for f in &files[..2] {
            n.push(put(&repo, f).await);
        }
        n
    };
    let first = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert_eq!(first.index_files(), 2);
    let before = first.records();
    drop(first);

    // Another host's backup wrote an index file: merged on the next start.
    put(&repo, &files[2]).await;
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert_eq!(ix.index_files(), 3);
    assert!(ix.records() > before);
    let mut truth = Truth::new();
    files.iter().for_each(|f| add_truth(&mut truth, f));
    assert_matches(&ix, &truth, &[rng.id()]);
    drop(ix);

    // Prune replaced the first index file: its chunks are no longer stored
    // unless another file still lists them.
    repo.backend()
        .delete(FileKind::Index, &names[0].to_hex())
        .await
        .unwrap();
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert_eq!(ix.index_files(), 2);
    let mut truth = Truth::new();
    files[1..].iter().for_each(|f| add_truth(&mut truth, f));
    let gone: Vec<Id> = files[0]
        .packs
        .iter()
        .flat_map(|p| p.blobs.iter().map(|b| b.id))
        .filter(|id| !truth.contains_key(id))
        .collect();
    assert!(!gone.is_empty());
    assert_matches(&ix, &truth, &gone);
    for p in &files[0].packs {
        assert_eq!(ix.pack_size(&p.id), None, "pack of a removed index file");
    }
}

fn chunk_file(cache: &Path) -> std::path::PathBuf {
    let dir = std::fs::read_dir(cache.join("chunk-index"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("chunks-") && !n.ends_with(".tmp")
        })
        .unwrap()
}

#[tokio::test]
async fn a_damaged_cache_is_never_trusted_and_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path()).await;
    let cache = tmp.path().join("cache");
    let mut rng = Rng(11);
    let mut truth = Truth::new();
    let files = random_files(&mut rng, 2, 2, 200);
    for f in &files {
        add_truth(&mut truth, f);
        put(&repo, f).await;
    }
    drop(ChunkIndex::open(&repo, Some(&cache)).await.unwrap());

    // Rewrite the first record's id into one no index file lists: a cache
    // that believed its file would now report that chunk as stored.
    let path = chunk_file(&cache);
    let mut bytes = std::fs::read(&path).unwrap();
    let forged = Id({
        let mut b = [0u8; 32];
        b[..2].copy_from_slice(&bytes[16..18]);
        b[2..].copy_from_slice(&[0xAB; 30]);
        b
    });
    bytes[16..48].copy_from_slice(&forged.0);
    std::fs::write(&path, &bytes).unwrap();

    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert!(
        !ix.contains(&forged),
        "a damaged bucket answers 'not stored'"
    );
    drop(ix);
    // The damage was noticed, so the next start rebuilds from the store.
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert!(!ix.contains(&forged));
    assert_matches(&ix, &truth, &[forged]);
    drop(ix);

    // A truncated chunk file or a damaged manifest: rebuilt on open.
    let path = chunk_file(&cache);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert_matches(&ix, &truth, &[forged]);
    drop(ix);
    let manifest = chunk_file(&cache).with_file_name("manifest");
    let mut m = std::fs::read(&manifest).unwrap();
    m[50] ^= 0xFF;
    std::fs::write(&manifest, &m).unwrap();
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert_matches(&ix, &truth, &[forged]);
}

#[tokio::test]
async fn damage_found_while_merging_is_not_carried_into_the_new_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path()).await;
    let cache = tmp.path().join("cache");
    let mut rng = Rng(13);
    let mut truth = Truth::new();
    let files = random_files(&mut rng, 2, 1, 300);
    add_truth(&mut truth, &files[0]);
    put(&repo, &files[0]).await;
    drop(ChunkIndex::open(&repo, Some(&cache)).await.unwrap());

    let path = chunk_file(&cache);
    let mut bytes = std::fs::read(&path).unwrap();
    // The last record keeps its bucket and stays the largest in it, so only
    // the bucket checksum can tell the forgery apart.
    let at = bytes.len() - 40;
    let forged = Id({
        let mut b = [0xFF; 32];
        b[..2].copy_from_slice(&bytes[at..at + 2]);
        b
    });
    bytes[at..at + 32].copy_from_slice(&forged.0);
    std::fs::write(&path, &bytes).unwrap();

    // A new index file forces a merge of the (damaged) old generation.
    add_truth(&mut truth, &files[1]);
    put(&repo, &files[1]).await;
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert!(!ix.contains(&forged));
    assert_matches(&ix, &truth, &[forged]);
}

#[tokio::test]
async fn an_unwritable_cache_dir_falls_back_to_a_temporary_index() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path()).await;
    let mut truth = Truth::new();
    let f = index_file(vec![(Id([4; 32]), vec![Id([5; 32])])]);
    add_truth(&mut truth, &f);
    put(&repo, &f).await;
    let not_a_dir = tmp.path().join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let ix = ChunkIndex::open(&repo, Some(&not_a_dir)).await.unwrap();
    assert_matches(&ix, &truth, &[Id([6; 32])]);
    let temp = ix.dir().to_path_buf();
    assert!(temp.exists());
    drop(ix);
    assert!(!temp.exists(), "the temporary index is removed after use");
}
