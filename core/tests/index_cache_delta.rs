//! The delta of the local chunk index: new index files go to a small
//! sorted delta beside the base, so a backup start rewrites only the delta;
//! the base is rewritten when the delta passes 1/16 of it or an index file
//! leaves the store; a damaged delta is never trusted.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use cadang_core::backend::FileKind;
use cadang_core::index::{IndexFile, IndexPack};
use cadang_core::index_cache::ChunkIndex;
use cadang_core::{Id, Repository};

mod support;
use support::{blob, put, repo, Rng};

/// One index file of one pack with `blobs` new chunks.
fn index_file(rng: &mut Rng, blobs: u64) -> IndexFile {
    let entries = (0..blobs).map(|i| blob(rng.id(), i)).collect();
    IndexFile::new(vec![IndexPack {
        id: rng.id(),
        size: 100 * blobs + 50,
        blobs: entries,
    }])
}

type Truth = HashMap<Id, Id>;

fn add_truth(truth: &mut Truth, f: &IndexFile) {
    for p in &f.packs {
        for b in &p.blobs {
            truth.insert(b.id, p.id);
        }
    }
}

fn assert_matches(ix: &ChunkIndex, truth: &Truth, absent: &[Id]) {
    let none = HashSet::new();
    for (chunk, pack) in truth {
        assert_eq!(ix.pack_of(chunk, &none), Some(*pack), "chunk {chunk:?}");
    }
    for a in absent {
        assert_eq!(ix.pack_of(a, &none), None, "{a:?} is in no index file");
    }
}

/// The cache's segment file whose name starts with `prefix`.
fn segment(ix: &ChunkIndex, prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir(ix.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(prefix) && !n.ends_with(".tmp")
        })
}

/// A base of 1,600 records: its delta may hold up to 100.
async fn with_base(tmp: &Path, rng: &mut Rng, truth: &mut Truth) -> (Repository, PathBuf, Id) {
    let repo = repo(tmp).await;
    let base = index_file(rng, 1600);
    add_truth(truth, &base);
    let name = put(&repo, &base).await;
    let cache = tmp.join("cache");
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert_eq!((ix.records(), ix.delta_records()), (1600, 0));
    (repo, cache, name)
}

#[tokio::test]
async fn a_small_new_index_file_goes_to_the_delta_and_the_base_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed);
    let mut truth = Truth::new();
    let (repo, cache, _) = with_base(tmp.path(), &mut rng, &mut truth).await;
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    let base = segment(&ix, "chunks-").unwrap();
    let base_bytes = std::fs::read(&base).unwrap();
    drop(ix);

    for round in 1..=3u64 {
        let f = index_file(&mut rng, 30);
        add_truth(&mut truth, &f);
        put(&repo, &f).await;
        let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
        assert_eq!(ix.delta_records(), 30 * round, "round {round}");
        assert_eq!(ix.records(), 1600 + 30 * round);
        assert_eq!(
            segment(&ix, "chunks-"),
            Some(base.clone()),
            "base not rewritten"
        );
        assert_eq!(std::fs::read(&base).unwrap(), base_bytes);
        assert!(segment(&ix, "delta-").is_some());
        assert_matches(&ix, &truth, &[rng.id()]);
    }
}

#[tokio::test]
async fn a_delta_past_a_sixteenth_of_the_base_is_merged_into_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(0xbead);
    let mut truth = Truth::new();
    let (repo, cache, _) = with_base(tmp.path(), &mut rng, &mut truth).await;
    let first = index_file(&mut rng, 90);
    add_truth(&mut truth, &first);
    put(&repo, &first).await;
    assert_eq!(
        ChunkIndex::open(&repo, Some(&cache))
            .await
            .unwrap()
            .delta_records(),
        90
    );
    // 90 + 20 > 1600 / 16: base and delta become one new base.
    let second = index_file(&mut rng, 20);
    add_truth(&mut truth, &second);
    put(&repo, &second).await;
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert_eq!((ix.records(), ix.delta_records()), (1710, 0));
    assert_eq!(segment(&ix, "delta-"), None, "the old delta is removed");
    assert_matches(&ix, &truth, &[rng.id()]);
}

#[tokio::test]
async fn a_removed_index_file_rewrites_the_base_and_is_forgotten() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(0xfeed);
    let mut truth = Truth::new();
    let (repo, cache, base_name) = with_base(tmp.path(), &mut rng, &mut truth).await;
    let small = index_file(&mut rng, 10);
    put(&repo, &small).await;
    assert_eq!(
        ChunkIndex::open(&repo, Some(&cache))
            .await
            .unwrap()
            .delta_records(),
        10
    );
    // Prune replaced the base's index file by one without it, and the
    // delta's file is gone too.
    let gone: Vec<Id> = truth.keys().copied().take(5).collect();
    let replacement = index_file(&mut rng, 40);
    let mut new_truth = Truth::new();
    add_truth(&mut new_truth, &replacement);
    put(&repo, &replacement).await;
    for name in [base_name, small.encode().0] {
        repo.backend()
            .delete(FileKind::Index, &name.to_hex())
            .await
            .unwrap();
    }
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert_eq!((ix.records(), ix.delta_records()), (40, 0));
    assert_eq!(ix.index_files(), 1);
    let small_ids: Vec<Id> = small.packs[0].blobs.iter().map(|b| b.id).collect();
    assert_matches(&ix, &new_truth, &[gone, small_ids].concat());
}

#[tokio::test]
async fn a_damaged_delta_is_never_trusted_and_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(0xd1ce);
    let mut truth = Truth::new();
    let (repo, cache, _) = with_base(tmp.path(), &mut rng, &mut truth).await;
    let f = index_file(&mut rng, 50);
    add_truth(&mut truth, &f);
    put(&repo, &f).await;
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    let delta = segment(&ix, "delta-").unwrap();
    drop(ix);

    // Forge the delta's first record into a chunk no index file lists.
    let mut bytes = std::fs::read(&delta).unwrap();
    let forged = Id({
        let mut b = [0xAB; 32];
        b[..2].copy_from_slice(&bytes[16..18]);
        b
    });
    bytes[16..48].copy_from_slice(&forged.0);
    std::fs::write(&delta, &bytes).unwrap();
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert!(
        !ix.contains(&forged),
        "a damaged delta bucket answers 'not stored'"
    );
    drop(ix);
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert_matches(&ix, &truth, &[forged]);
    drop(ix);

    // A truncated delta: not trusted on open, rebuilt from the store; and
    // damage met while merging a new file into the delta is not carried on.
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    let delta = segment(&ix, "delta-");
    drop(ix);
    if let Some(delta) = delta {
        let len = std::fs::metadata(&delta).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&delta)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
    }
    let more = index_file(&mut rng, 5);
    add_truth(&mut truth, &more);
    put(&repo, &more).await;
    let ix = ChunkIndex::open(&repo, Some(&cache)).await.unwrap();
    assert_matches(&ix, &truth, &[forged]);
}
