//! The writer thread's file handling on its own: files created on their
//! first chunk, metadata set through the same descriptor after the last,
//! the open-file limit, and files swapped while they were closed.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cadang_core::index::BlobLocation;
use cadang_core::pack::{BlobKind, Compression};
use cadang_core::Id;

use super::files::{Piece, Writer};
use super::plan::{Chunk, Dir, File, Meta, Place, Plan};
use super::testutil::MTIME;

fn meta(mode: u32) -> Meta {
    Meta {
        mode,
        // SAFETY: getuid/getgid cannot fail.
        uid: unsafe { libc::getuid() },
        gid: unsafe { libc::getgid() },
        mtime_ns: MTIME,
    }
}

/// A plan of `lens.len()` files `f0`, `f1`… directly in `target`, and a
/// chunk of `chunk_len` bytes for each `(file, offset)` in `places`.
fn plan(target: &Path, lens: &[u64], places: &[(u32, u64)], chunk_len: u32) -> Plan {
    let mut p = Plan::default();
    p.dirs.push(Dir {
        path: target.to_path_buf(),
        parent: 0,
        depth: 0,
        meta: Meta::default(),
    });
    p.dir_ok = vec![true];
    for (i, &len) in lens.iter().enumerate() {
        p.files.push(File {
            path: target.join(format!("f{i}")),
            parent: 0,
            len,
            meta: meta(0o640),
        });
    }
    for (n, &(file, offset)) in places.iter().enumerate() {
        p.chunks.push(Chunk {
            id: Id::of_bytes(&n.to_le_bytes()),
            loc: BlobLocation {
                pack: Id::of_bytes(b"pack"),
                kind: BlobKind::Data,
                offset: 0,
                length: chunk_len,
                raw_length: chunk_len,
                compression: Compression::None,
            },
            places: vec![Place { file, offset }],
        });
    }
    p
}

fn piece(file: u32, offset: u64, data: &[u8]) -> Piece {
    Piece {
        data: Some(data.to_vec()),
        places: vec![Place { file, offset }],
    }
}

fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

fn file(target: &Path, i: usize) -> PathBuf {
    target.join(format!("f{i}"))
}

#[test]
fn files_beyond_the_open_limit_are_closed_and_reopened_only_if_still_the_same_inode() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("t");
    fs::create_dir(&target).unwrap();
    let outside = tmp.path().join("outside");
    fs::write(&outside, b"jangan").unwrap();
    // Five files of two 4-byte chunks each; at most two open at once.
    let places: Vec<(u32, u64)> = (0..5).flat_map(|f| [(f, 0), (f, 4)]).collect();
    let mut p = plan(&target, &[8; 5], &places, 4);
    let mut w = Writer::new(&mut p);
    w.max_open = 2;
    for f in 0..5 {
        w.take(piece(f, 0, b"awal"));
    }
    // While closed early: f0 is swapped for another file (renamed over it,
    // so it cannot get the freed inode number), f1 for a symlink to a file
    // outside the target.
    fs::write(tmp.path().join("other"), b"lain").unwrap();
    fs::rename(tmp.path().join("other"), file(&target, 0)).unwrap();
    fs::remove_file(file(&target, 1)).unwrap();
    std::os::unix::fs::symlink(&outside, file(&target, 1)).unwrap();
    for f in 0..5 {
        w.take(piece(f, 4, b"ahir"));
    }
    w.finish_all();

    assert_eq!(
        fs::read(&outside).unwrap(),
        b"jangan",
        "wrote through a symlink"
    );
    assert_eq!(fs::read(file(&target, 0)).unwrap(), b"lain");
    let mut damaged = w.damaged.clone();
    damaged.sort_unstable();
    assert_eq!(damaged, vec![0, 1], "{:#?}", w.errors);
    assert_eq!(w.errors.len(), 2, "{:#?}", w.errors);
    assert!(
        w.errors[0].contains("f0") && w.errors[0].contains("replaced by something else"),
        "{}",
        w.errors[0]
    );
    assert!(w.errors[1].contains("f1"), "{}", w.errors[1]);
    for i in 2..5 {
        let path = file(&target, i);
        assert_eq!(fs::read(&path).unwrap(), b"awalahir", "f{i}");
        let m = fs::metadata(&path).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640, "f{i}: mode");
        assert_eq!(mtime_ns(&m), MTIME, "f{i}: mtime");
    }
    assert_eq!(w.bytes, 5 * 4 + 3 * 4);
}

#[test]
fn files_without_content_or_with_lost_chunks_get_their_length_and_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().to_path_buf();
    const MIB: u64 = 1 << 20;
    // f0: no chunks, 8 MiB of hole; f1: chunk at 0 written, its last chunk
    // lost; f2: its only chunk lost; f3: a chunk then a trailing hole.
    let mut p = plan(
        &target,
        &[8 * MIB, 8, 4, 4 * MIB],
        &[(1, 0), (1, 4), (2, 0), (3, 0)],
        4,
    );
    let mut w = Writer::new(&mut p);
    w.take(piece(1, 0, b"awal"));
    for f in [1, 2] {
        w.take(Piece {
            data: None,
            places: vec![Place {
                file: f,
                offset: if f == 1 { 4 } else { 0 },
            }],
        });
    }
    w.take(piece(3, 0, b"isi!"));
    w.finish_all();
    assert!(w.errors.is_empty(), "{:#?}", w.errors);

    for (i, len) in [(0, 8 * MIB), (1, 8), (2, 4), (3, 4 * MIB)] {
        let m = fs::metadata(file(&target, i)).unwrap();
        assert_eq!(m.len(), len, "f{i}: length");
        assert_eq!(m.mode() & 0o7777, 0o640, "f{i}: mode");
        assert_eq!(mtime_ns(&m), MTIME, "f{i}: mtime");
        assert!(m.blocks() * 512 <= 64 * 1024, "f{i}: holes were written");
    }
    assert_eq!(&fs::read(file(&target, 1)).unwrap(), b"awal\0\0\0\0");
    assert_eq!(&fs::read(file(&target, 3)).unwrap()[..4], b"isi!");
    assert!(w.slots.iter().all(|s| s.created));
}
