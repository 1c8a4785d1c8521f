//! Backups through the local chunk index (`cadang_core::index_cache`): a
//! host deduplicates against another host's backup with its own, empty
//! cache, and a chunk whose index file and pack were pruned is stored again
//! rather than referenced from a warm cache.

use std::sync::Arc;

use cadang_agent::{backup, BackupOptions, Progress, Source};
use cadang_core::backend::{FileKind, LocalBackend};
use cadang_core::check::{check, ReadData};
use cadang_core::config::ChunkerParams;
use cadang_core::Repository;

fn opts(host: &str, cache: std::path::PathBuf) -> BackupOptions {
    BackupOptions {
        host: host.into(),
        agent: "test".into(),
        tags: vec![],
        excludes: vec![],
        cache_dir: Some(cache),
        workers: 2,
    }
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_dedupe_across_hosts_and_store_pruned_chunks_again() {
    std::env::set_var("CADANG_SCRYPT_LOG_N", "10");
    let tmp = tempfile::tempdir().unwrap();
    // Caches apart from the source's parent: creating one changes that
    // directory's mtime, and so its tree.
    let caches = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("data.bin"), noise(3_000_000, 3)).unwrap();
    let backend = Arc::new(LocalBackend::new(tmp.path().join("repo")));
    let init = Repository::init(backend, "PD", "test", "pw", ChunkerParams::default())
        .await
        .unwrap();
    let repo = Arc::new(init.repo);
    let creds = || cadang_core::keys::Credentials::from_json(&init.credentials.to_json()).unwrap();
    let run = |host: &'static str, cache: &str| {
        let (repo, src, cache) = (repo.clone(), src.clone(), caches.path().join(cache));
        let c = creds();
        async move {
            backup(
                repo,
                c,
                Source::Paths(vec![src]),
                opts(host, cache),
                Arc::new(Progress::default()),
            )
            .await
            .unwrap()
        }
    };

    let a = run("srv-a", "cache-a").await;
    assert!(a.stats.new_chunks > 0);
    // Host B has never backed up: its empty cache is built from index/.
    let b = run("srv-b", "cache-b").await;
    assert_eq!(b.stats.new_chunks, 0, "host B stores nothing host A stored");
    let kept = caches
        .path()
        .join("cache-b/chunk-index")
        .join(repo.config.id.to_hex())
        .join("manifest");
    assert!(kept.exists(), "the chunk index is kept in the cache dir");

    // What forget + prune would leave: no snapshots, index files or packs.
    for kind in [FileKind::Snapshots, FileKind::Index, FileKind::Packs] {
        for f in repo.backend().list(kind).await.unwrap() {
            repo.backend().delete(kind, &f.name).await.unwrap();
        }
    }
    // B's warm chunk index and file cache both still name the old chunks;
    // the chunk index forgets them with their index files, so they are
    // stored again and the snapshot is complete.
    let again = run("srv-b", "cache-b").await;
    assert!(again.stats.new_chunks > 0, "pruned chunks are stored again");
    let identity = repo.unlock("pw").await.unwrap();
    let report = check(&repo, ReadData::All, Some(&identity)).await.unwrap();
    assert!(report.ok(), "{:?}", report.errors);
}
