//! Hostile lengths: index entries, pack trailers, index files and tree
//! fields with huge or out-of-range numbers give a clear error (exit 1 or
//! 3, never a signal or a panic), and nothing is allocated by a number read
//! from the store before it is checked. Every command here runs under an
//! address-space limit (`ulimit -v`), so a multi-GiB allocation aborts the
//! process and fails the test.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use cadang_core::index::{IndexFile, IndexPack};
use cadang_core::keys::Credentials;
use cadang_core::pack::{self, BlobEntry, BlobKind, Compression, PackTrailer};
use cadang_core::tree::{Extent, FileName, Node, NodeKind};
use cadang_core::Id;
use common::crafted::commit_tree;
use common::*;

/// Address space allowed to each command: a clean restore fits easily, a
/// 4 GiB (or even 512 MiB) buffer does not.
const LIMIT_MIB: u64 = 400;

/// `cadang args` under `ulimit -v LIMIT_MIB`.
fn limited(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {}; exec \"$0\" \"$@\"",
            LIMIT_MIB * 1024
        ))
        .arg(bin())
        .args(args)
        .env("CADANG_PASSPHRASE", PASSPHRASE)
        .env("CADANG_SCRYPT_LOG_N", "10")
        .stdin(Stdio::null())
        .output()
        .expect("sh runs")
}

/// The command ended by itself with `code`, said `needle`, and did not panic.
fn assert_clear(what: &str, out: &Output, codes: &[i32], needle: &str) {
    assert_clear_any(what, out, codes, &[needle]);
}

/// Like `assert_clear`, naming at least one of `needles`.
fn assert_clear_any(what: &str, out: &Output, codes: &[i32], needles: &[&str]) {
    let all = text(out);
    assert!(
        out.status.code().is_some_and(|c| codes.contains(&c)),
        "{what}: must exit with one of {codes:?} (not be killed)\n{all}"
    );
    assert!(!all.contains("panicked"), "{what}: panicked\n{all}");
    assert!(
        !all.contains("memory allocation"),
        "{what}: allocation failed\n{all}"
    );
    assert!(
        needles.iter().any(|n| all.contains(n)),
        "{what}: must say one of {needles:?}\n{all}"
    );
}

struct Fixture {
    t: TestRepo,
    snap: String,
    /// The id (hex) of big.bin's chunk, the blob the index edits change.
    big_blob: String,
}

fn fixture() -> Fixture {
    let t = TestRepo::new();
    let src = t.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big.bin"), noise(300 * 1024, 3)).unwrap();
    fs::write(src.join("small.txt"), b"laporan realisasi anggaran").unwrap();
    let snap = t.backup(&[&src], &[])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let creds = Credentials::from_json(&fs::read(&t.creds).unwrap()).unwrap();
    let big_blob = creds.repo_secret.chunk_id(&noise(300 * 1024, 3)).to_hex();
    Fixture { t, snap, big_blob }
}

impl Fixture {
    fn restore(&self) -> Output {
        let target = self.t.path("target");
        let _ = fs::remove_dir_all(&target);
        limited(&[
            "restore",
            "--repo",
            s(&self.t.repo),
            &self.snap,
            "--target",
            s(&target),
        ])
    }

    fn check(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "check",
            "--repo",
            s(&self.t.repo),
            "--cache-dir",
            s(&self.t.cache),
        ];
        args.extend_from_slice(extra);
        limited(&args)
    }
}

fn index_paths(t: &TestRepo) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(t.repo.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    v.sort();
    v
}

/// Applies `edit` to the pack holding the largest data blob in its index
/// file; returns a function that puts the original file back.
fn edit_index(t: &TestRepo, edit: &dyn Fn(&mut IndexPack)) -> (String, impl FnOnce()) {
    for path in index_paths(t) {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let original = fs::read(&path).unwrap();
        let mut f = IndexFile::parse(&name, &original).unwrap();
        let Some(p) = f
            .packs
            .iter_mut()
            .find(|p| p.blobs.iter().any(|b| b.kind == BlobKind::Data))
        else {
            continue;
        };
        let pack = p.id.to_hex();
        edit(p);
        let (id, data) = f.encode();
        fs::remove_file(&path).unwrap();
        let new = t.repo.join("index").join(id.to_hex());
        fs::write(&new, data).unwrap();
        return (pack, move || {
            fs::remove_file(&new).unwrap();
            fs::write(&path, original).unwrap();
        });
    }
    panic!("no index file holds a data pack");
}

fn largest_data_blob(p: &mut IndexPack) -> &mut BlobEntry {
    p.blobs
        .iter_mut()
        .filter(|b| b.kind == BlobKind::Data)
        .max_by_key(|b| b.length)
        .unwrap()
}

#[test]
fn clean_repository_restores_and_checks_under_the_memory_limit() {
    let f = fixture();
    assert_eq!(f.restore().status.code(), Some(0), "{}", text(&f.restore()));
    let out = f.check(&["--deep"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Each crafted index field: restore fails cleanly, check names the pack.
#[test]
fn huge_index_entry_fields_give_a_clear_error() {
    let f = fixture();
    type Edit = Box<dyn Fn(&mut IndexPack)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "length 4 GiB",
            Box::new(|p| {
                let b = largest_data_blob(p);
                b.length = u32::MAX;
                b.raw_length = u32::MAX;
            }),
        ),
        (
            "raw length 4 GiB, zstd",
            Box::new(|p| {
                let b = largest_data_blob(p);
                b.raw_length = u32::MAX;
                b.compression = Compression::Zstd;
            }),
        ),
        (
            "offset near 2^64",
            Box::new(|p| largest_data_blob(p).offset = u64::MAX - 100),
        ),
        ("pack size 2^50", Box::new(|p| p.size = 1 << 50)),
    ];
    for (what, edit) in cases {
        let (pack, undo) = edit_index(&f.t, &*edit);
        let out = f.restore();
        assert_clear_any(
            &format!("restore, {what}"),
            &out,
            &[1, 3],
            &[&pack, &f.big_blob],
        );
        let out = f.check(&[]);
        assert_clear(&format!("check, {what}"), &out, &[3], &pack);
        let out = f.check(&["--read-data"]);
        assert_clear(&format!("check --read-data, {what}"), &out, &[3], &pack);
        undo();
    }
    assert_eq!(
        f.restore().status.code(),
        Some(0),
        "the fixture is whole again"
    );
}

/// Writes a pack made of `age` and a trailer of `blobs` under its own hash
/// (an unindexed pack, as a killed backup leaves); `tail_len` overrides the
/// trailer length field. Returns the pack name.
fn plant_pack(t: &TestRepo, age: &[u8], trailer: &PackTrailer, tail_len: Option<u32>) -> String {
    let mut data = age.to_vec();
    let enc = trailer.encode();
    data.extend_from_slice(&enc);
    data.extend_from_slice(&tail_len.unwrap_or(enc.len() as u32).to_le_bytes());
    data.extend_from_slice(pack::MAGIC);
    let name = Id::of_bytes(&data).to_hex();
    let dir = t.repo.join("packs").join(&name[..2]);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&name), data).unwrap();
    name
}

/// The age part and trailer of the fixture's largest pack.
fn real_pack(t: &TestRepo) -> (Vec<u8>, PackTrailer) {
    let mut best: Option<PathBuf> = None;
    for d in fs::read_dir(t.repo.join("packs")).unwrap() {
        for p in fs::read_dir(d.unwrap().path()).unwrap() {
            let p = p.unwrap().path();
            if best
                .as_ref()
                .is_none_or(|b| fs::metadata(b).unwrap().len() < fs::metadata(&p).unwrap().len())
            {
                best = Some(p);
            }
        }
    }
    let data = fs::read(best.unwrap()).unwrap();
    let t = pack::parse_trailer(&data).unwrap();
    (data[..t.age_length as usize].to_vec(), t)
}

#[test]
fn crafted_trailer_lengths_are_refused_by_backup_and_check() {
    let f = fixture();
    let (age, real) = real_pack(&f.t);
    let mut huge_blob = PackTrailer {
        version: 1,
        age_length: real.age_length,
        blobs: real.blobs.clone(),
    };
    huge_blob.blobs[0].length = u32::MAX;
    huge_blob.blobs[0].raw_length = u32::MAX;
    let overflowing = PackTrailer {
        version: 1,
        age_length: u64::MAX - 8,
        blobs: real.blobs.clone(),
    };
    let planted = [
        (
            "blob length 4 GiB",
            plant_pack(&f.t, &age, &huge_blob, None),
        ),
        (
            "age length near 2^64",
            plant_pack(&f.t, &age, &overflowing, None),
        ),
        (
            "trailer length 4 GiB",
            plant_pack(&f.t, &age, &real, Some(u32::MAX - 20)),
        ),
    ];
    // A backup indexes unindexed packs from their trailers: crafted ones are
    // left alone, the backup succeeds.
    let src = f.t.path("src");
    let mut args = f.t.backup_args(&[&src], &[]);
    args.push("--tag");
    args.push("after-planting");
    let out = limited(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "backup beside crafted packs\n{}",
        text(&out)
    );
    for p in index_paths(&f.t) {
        let name = p.file_name().unwrap().to_str().unwrap();
        let idx = IndexFile::parse(name, &fs::read(&p).unwrap()).unwrap();
        for (what, pack) in &planted {
            assert!(
                !idx.packs.iter().any(|x| &x.id.to_hex() == pack),
                "the backup indexed the crafted pack ({what})"
            );
        }
    }
    let out = f.check(&["--read-data"]);
    for (what, pack) in &planted {
        assert_clear(&format!("check --read-data, {what}"), &out, &[3], pack);
    }
}

/// An index file that inflates to ~150 MiB from a few hundred KiB: refused
/// for what it is, before it is inflated.
#[test]
fn index_file_inflating_far_beyond_its_size_is_refused() {
    let f = fixture();
    let entry = BlobEntry {
        id: Id([7; 32]),
        kind: BlobKind::Data,
        offset: 0,
        length: 1,
        raw_length: 1,
        compression: Compression::None,
    };
    let bomb = IndexFile::new(vec![IndexPack {
        id: Id([8; 32]),
        size: 100,
        blobs: vec![entry; 1_200_000],
    }]);
    let (id, data) = bomb.encode();
    assert!(data.len() < 4 * 1024 * 1024, "{} bytes", data.len());
    fs::write(f.t.repo.join("index").join(id.to_hex()), data).unwrap();
    let out = f.check(&[]);
    assert_clear("check", &out, &[3], &id.to_hex());
    assert_clear("check", &out, &[3], "inflates");
    // Restore loads every index too; the bomb is set aside, the data restores.
    assert_eq!(f.restore().status.code(), Some(0), "{}", text(&f.restore()));
}

/// Tree fields: holes adding up beyond any file length. Only the deep check
/// sees inside trees; it names the file, and restore does not crash.
#[test]
fn impossible_lengths_in_a_tree_are_named_by_deep_check() {
    let f = fixture();
    let file = Node {
        content: vec![Extent::Hole(u64::MAX / 2), Extent::Hole(u64::MAX / 2 + 10)],
        size: u64::MAX,
        sparse: true,
        ..node(b"raksasa.img")
    };
    let snap = commit_tree(&f.t.repo, &f.t.creds, vec![file]);
    let out = f.check(&["--deep"]);
    assert_clear("check --deep", &out, &[3], "/raksasa.img");
    assert_clear("check --deep", &out, &[3], "impossible length");
    let target = f.t.path("giant");
    let out = limited(&[
        "restore",
        "--repo",
        s(&f.t.repo),
        &snap,
        "--target",
        s(&target),
    ]);
    assert_clear("restore", &out, &[3], "raksasa.img");
}

fn node(name: &[u8]) -> Node {
    Node {
        name: FileName(name.to_vec()),
        kind: NodeKind::File,
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
        content: vec![],
        subtree: None,
        target: None,
    }
}
