//! Deduplication: shared data is stored once, across hosts and across
//! versions of a file.

mod common;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use cadang_core::chunker::Chunker;
use cadang_core::config::RepoConfig;
use cadang_core::index::IndexFile;
use cadang_core::keys::Credentials;
use cadang_core::pack::BlobKind;
use cadang_core::Id;
use common::*;
use serde_json::Value;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// `cadang backup --json` with any credential file and cache.
fn backup_with(repo: &Path, creds: &Path, cache: &Path, paths: &[&Path], extra: &[&str]) -> Value {
    let mut args = vec![
        "backup",
        "--repo",
        s(repo),
        "--credentials",
        s(creds),
        "--cache-dir",
        s(cache),
        "--json",
    ];
    args.extend_from_slice(extra);
    args.extend(paths.iter().map(|p| s(p)));
    serde_json::from_str(&ok(&args)).expect("backup --json prints JSON")
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key:?} in {v}"))
}

/// Every blob the repository's index files name, with its kind.
fn index_blobs(repo: &Path) -> HashMap<Id, BlobKind> {
    let mut out = HashMap::new();
    for e in fs::read_dir(repo.join("index")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.starts_with('.') {
            continue;
        }
        let file =
            IndexFile::parse(&name, &fs::read(e.path()).unwrap()).expect("index file parses");
        for p in file.packs {
            for b in p.blobs {
                out.insert(b.id, b.kind);
            }
        }
    }
    out
}

/// Blobs of `kind` in `after` and not in `before`.
fn new_blobs(
    before: &HashMap<Id, BlobKind>,
    after: &HashMap<Id, BlobKind>,
    kind: BlobKind,
) -> HashSet<Id> {
    after
        .iter()
        .filter(|(id, k)| **k == kind && !before.contains_key(id))
        .map(|(id, _)| *id)
        .collect()
}

#[test]
fn two_hosts_share_chunks() {
    let t = TestRepo::new();
    let creds_b = t.path("host-b.credentials");
    ok(&[
        "repo",
        "add-agent",
        "--repo",
        s(&t.repo),
        "--agent-name",
        "host-b",
        "--agent-credentials",
        s(&creds_b),
    ]);
    let cb = Credentials::from_json(&fs::read(&creds_b).unwrap()).unwrap();
    assert_eq!(cb.agent_name, "host-b");

    // Host A: 20 MiB of noise in five files.
    let a = t.path("host-a-data");
    fs::create_dir_all(a.join("sub")).unwrap();
    let files: Vec<Vec<u8>> = (0..5).map(|i| noise(4 * MIB as usize, 100 + i)).collect();
    for (i, f) in files.iter().enumerate() {
        fs::write(a.join(format!("file-{i}.bin")), f).unwrap();
    }
    fs::write(a.join("sub/notes.txt"), b"catatan host a").unwrap();

    // Host B: copies of four of them (some renamed or moved) and 2 MiB new.
    let b = t.path("host-b-data");
    fs::create_dir_all(b.join("moved")).unwrap();
    fs::write(b.join("file-0.bin"), &files[0]).unwrap();
    fs::write(b.join("renamed-1.bin"), &files[1]).unwrap();
    fs::write(b.join("moved/file-2.bin"), &files[2]).unwrap();
    fs::write(b.join("file-3.bin"), &files[3]).unwrap();
    fs::write(b.join("new.bin"), noise(2 * MIB as usize, 999)).unwrap();

    let sa = t.backup(&[&a], &["--host", "host-a"]);
    assert!(
        num(&sa, "added_bytes") >= 20 * MIB,
        "host-a stored its 20 MiB: {sa}"
    );
    let size_before = t.size();
    let index_before = index_blobs(&t.repo);

    let sb = backup_with(
        &t.repo,
        &creds_b,
        &t.path("cache-b"),
        &[&b],
        &["--host", "host-b"],
    );
    let added = num(&sb, "added_bytes");
    assert_eq!(num(&sb, "bytes"), 18 * MIB, "{sb}");
    assert!(
        (2 * MIB..2_600_000).contains(&added),
        "host-b should add only its 2 MiB of new data (+ trees), added {added}: {sb}"
    );
    let growth = t.size() - size_before;
    assert!(
        (2 * MIB..2_700_000).contains(&growth),
        "the repository grew by {growth} bytes for 2 MiB of new data"
    );
    let new_data = new_blobs(&index_before, &index_blobs(&t.repo), BlobKind::Data);
    // new.bin is 2 MiB: at least one chunk, at most 2 MiB / 512 KiB min.
    assert!(
        (1..=4).contains(&new_data.len()),
        "{} new data chunks",
        new_data.len()
    );

    // Both hosts' snapshots are there, signed under their own names.
    let list: Value = serde_json::from_str(&ok(&[
        "snapshots",
        "--repo",
        s(&t.repo),
        "--credentials",
        s(&t.creds),
        "--json",
    ]))
    .unwrap();
    let hosts: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts.len(), 2);
    assert!(
        hosts.contains(&"host-a".into()) && hosts.contains(&"host-b".into()),
        "{hosts:?}"
    );

    // Each restores exactly its own data.
    for (summary, src, other) in [(&sa, &a, &b), (&sb, &b, &a)] {
        let id = summary["snapshot"].as_str().unwrap();
        let target = t.path(&format!("restore-{}", &id[..8]));
        t.restore(id, &target);
        assert_eq!(tree_listing(&restored(&target, src)), tree_listing(src));
        assert!(
            !restored(&target, other).exists(),
            "snapshot {id} restored the other host's data"
        );
    }
}

/// Chunk ids of `data` as the repository's chunker cuts it.
fn chunk_ids(repo: &Path, creds: &Credentials, data: &[u8]) -> Vec<(Id, usize)> {
    let config = RepoConfig::from_json(&fs::read(repo.join("config")).unwrap()).unwrap();
    let mut out = Vec::new();
    Chunker::new(config.chunker, creds.repo_secret.gear_seed)
        .chunk(data, |c| {
            out.push((creds.repo_secret.chunk_id(c), c.len()));
            Ok::<(), ()>(())
        })
        .unwrap();
    out
}

fn insert_in_middle(second_run: &[&str]) {
    let t = TestRepo::new();
    let creds = Credentials::from_json(&fs::read(&t.creds).unwrap()).unwrap();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let old = noise(40_000_000, 21);
    fs::write(src.join("big.bin"), &old).unwrap();
    let first = t.backup(&[&src], &[]);
    assert!(num(&first, "added_bytes") >= 40_000_000, "{first}");
    let before = index_blobs(&t.repo);

    let inserted = 100 * KIB;
    let mut new = old.clone();
    new.splice(20_000_000..20_000_000, noise(inserted as usize, 22));
    fs::write(src.join("big.bin"), &new).unwrap();
    let second = t.backup(&[&src], second_run);
    let after = index_blobs(&t.repo);
    let added = num(&second, "added_bytes");
    let new_data = new_blobs(&before, &after, BlobKind::Data);
    let new_trees = new_blobs(&before, &after, BlobKind::Tree);

    // What content-defined chunking predicts: only the chunks around the
    // insertion differ.
    let old_ids: HashSet<Id> = chunk_ids(&t.repo, &creds, &old)
        .into_iter()
        .map(|c| c.0)
        .collect();
    let predicted: Vec<(Id, usize)> = chunk_ids(&t.repo, &creds, &new)
        .into_iter()
        .filter(|c| !old_ids.contains(&c.0))
        .collect();
    let predicted_ids: HashSet<Id> = predicted.iter().map(|c| c.0).collect();
    let predicted_bytes: u64 = predicted.iter().map(|c| c.1 as u64).sum();

    assert_eq!(
        new_data, predicted_ids,
        "the backup stored other chunks than the changed ones ({second})"
    );
    assert!(
        added >= predicted_bytes && added < predicted_bytes + 64 * KIB,
        "added {added} bytes for {predicted_bytes} bytes of changed chunks: {second}"
    );
    assert_eq!(
        num(&second, "new_chunks"),
        (new_data.len() + new_trees.len()) as u64,
        "{second}"
    );
    // Roughly the inserted bytes plus a few chunks (avg 1 MiB, max 8 MiB).
    // The exact cut points depend on the repository's random gear seed:
    // over 2000 seeds at most 6 chunks and 8.14 MB changed, 3% of seeds
    // exceed 4 MiB, so the bound is one max-size chunk, not four average ones.
    assert!(
        (1..=8).contains(&new_data.len()),
        "{} new data chunks: {second}",
        new_data.len()
    );
    assert!(
        added >= inserted && added < inserted + 9 * MIB,
        "added {added}: {second}"
    );
    assert_eq!(num(&second, "bytes"), new.len() as u64);

    let target = t.path("target");
    t.restore("latest", &target);
    assert!(
        fs::read(restored(&target, &src).join("big.bin")).unwrap() == new,
        "restored file differs"
    );
}

#[test]
fn insertion_in_a_large_file_adds_few_chunks() {
    insert_in_middle(&[]);
}

#[test]
fn insertion_in_a_large_file_adds_few_chunks_without_cache() {
    insert_in_middle(&["--no-cache"]);
}

#[test]
fn unchanged_rebackup_adds_nothing() {
    let t = TestRepo::new();
    let src = t.path("src");
    fs::create_dir_all(src.join("docs")).unwrap();
    fs::write(src.join("a.bin"), noise(1_500_000, 31)).unwrap();
    fs::write(src.join("docs/b.bin"), noise(700_000, 32)).unwrap();
    fs::write(src.join("docs/c.txt"), b"surat edaran").unwrap();
    fs::write(src.join("empty.txt"), b"").unwrap();
    // Created now so that the backups do not change the temporary
    // directory's mtime (an ancestor of the source, recorded in the root tree).
    fs::create_dir(&t.cache).unwrap();

    let first = t.backup(&[&src], &[]);
    assert!(num(&first, "added_bytes") >= 2_200_000, "{first}");
    let mut before = index_blobs(&t.repo);

    for extra in [&[][..], &["--no-cache"][..]] {
        let again = t.backup(&[&src], extra);
        let after = index_blobs(&t.repo);
        let new_data = new_blobs(&before, &after, BlobKind::Data);
        let new_trees = new_blobs(&before, &after, BlobKind::Tree);
        assert_eq!(
            new_data.len(),
            0,
            "unchanged files stored again ({extra:?}): {again}"
        );
        assert!(
            num(&again, "added_bytes") < 4 * KIB,
            "re-backup {extra:?} added: {again}"
        );
        assert_eq!(num(&again, "new_chunks"), new_trees.len() as u64, "{again}");
        // The trees of the source are unchanged; only the root tree may be
        // new, because it records /tmp's mtime, which other processes change.
        assert!(
            new_trees.len() <= 1,
            "{} new trees ({extra:?}): {again}",
            new_trees.len()
        );
        assert_eq!(num(&again, "files"), 4);
        assert_eq!(num(&again, "bytes"), 2_200_012);
        before = after;
    }
}
