//! The counting against real files: one measured pass, changes, a second.

use std::path::{Path, PathBuf};

use super::*;

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

fn text(n: usize, seed: u64) -> Vec<u8> {
    let words = [
        "data", "penduduk", "laporan", "anggaran", "dinas", "2026", "kab",
    ];
    let mut out = Vec::new();
    let mut i = seed as usize;
    while out.len() < n {
        out.extend_from_slice(words[i % words.len()].as_bytes());
        out.push(b' ');
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    out.truncate(n);
    out
}

/// Walks `root` like the backup does (regular files only) through an observer.
fn measure(root: &Path, state: &Path) -> BackupSignals {
    let opts = SignalOptions {
        state_dir: Some(state.to_path_buf()),
        ..Default::default()
    };
    let obs = Observer::start(&opts, None, &Id::of_bytes(b"repo"), &[root.to_path_buf()]).unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                files.push(p);
            }
        }
    }
    files.sort();
    for p in files {
        obs.file(&p, &FileStamp::of(&std::fs::symlink_metadata(&p).unwrap()));
    }
    let (s, save) = obs.finish();
    save_table(save);
    s
}

#[test]
fn a_first_pass_has_no_parent_and_an_unchanged_second_pass_counts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    for i in 0..10 {
        std::fs::write(root.join(format!("f{i}.txt")), text(9000, i)).unwrap();
    }
    let state = dir.path().join("state");
    let first = measure(&root, &state);
    assert!(!first.has_parent);
    assert_eq!(first.files_total, 10);
    let second = measure(&root, &state);
    assert!(second.has_parent);
    assert_eq!(second.files_before, 10);
    assert_eq!(
        (second.files_new, second.files_changed, second.files_deleted),
        (0, 0, 0)
    );
    assert_eq!(second.entropy_transitions, 0);
}

#[test]
fn encryption_in_place_with_new_extension_and_notes_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    for i in 0..20 {
        let d = if i % 2 == 0 { "" } else { "sub/" };
        std::fs::write(root.join(format!("{d}f{i}.docx")), text(12000, i)).unwrap();
    }
    let state = dir.path().join("state");
    measure(&root, &state);

    // f0..f5: written encrypted as `.locked` beside, original deleted.
    for i in 0..6 {
        let d = if i % 2 == 0 { "" } else { "sub/" };
        std::fs::write(root.join(format!("{d}f{i}.docx.locked")), noise(12000, i)).unwrap();
        std::fs::remove_file(root.join(format!("{d}f{i}.docx"))).unwrap();
    }
    // f6, f7: first 4 KiB encrypted in place, names kept.
    for i in 6..8 {
        let d = if i % 2 == 0 { "" } else { "sub/" };
        let p = root.join(format!("{d}f{i}.docx"));
        let mut data = std::fs::read(&p).unwrap();
        data[..4096].copy_from_slice(&noise(4096, 100 + i));
        std::fs::write(&p, data).unwrap();
    }
    // f8: renamed, untouched.
    std::fs::rename(root.join("f8.docx"), root.join("f8-final.docx")).unwrap();
    // f10: ordinary edit; f12: deleted; a new ordinary file.
    std::fs::write(root.join("f10.docx"), text(13000, 77)).unwrap();
    std::fs::remove_file(root.join("f12.docx")).unwrap();
    std::fs::write(root.join("baru.txt"), text(5000, 3)).unwrap();
    std::fs::write(root.join("HOW_TO_DECRYPT.txt"), b"pay").unwrap();
    std::fs::write(root.join("sub/HOW_TO_DECRYPT.txt"), b"pay").unwrap();

    let s = measure(&root, &state);
    assert_eq!(s.files_before, 20);
    assert_eq!(s.entropy_transitions, 8, "{s:#?}");
    assert_eq!(s.extension_changed, 6, "{s:#?}");
    assert_eq!(s.known_extension_files, 6, "{s:#?}");
    assert_eq!(s.files_changed, 6 + 2 + 1, "{s:#?}");
    assert_eq!(s.files_renamed, 1, "{s:#?}");
    assert_eq!(s.files_deleted, 1, "{s:#?}");
    assert_eq!(s.files_new, 1 + 2, "{s:#?}");
    assert_eq!((s.ransom_notes, s.ransom_note_dirs), (2, 2), "{s:#?}");
    assert!((s.shares.entropy_transitions - 0.4).abs() < 1e-9);
}

#[test]
fn new_data_counts_only_observed_chunks_and_flags_stored_as_is() {
    let n = NewData::default();
    n.stored(1000, 0, 400); // compressed to 400
    n.stored(1000, 400, 1400); // stored as is
    n.stored(1000, 1400, 0); // flushed: not observed
    assert_eq!(n.bytes.load(Ordering::Relaxed), 2000);
    assert_eq!(n.incompressible.load(Ordering::Relaxed), 1000);
}

#[test]
fn turned_off_measures_nothing() {
    let opts = SignalOptions {
        enabled: false,
        ..Default::default()
    };
    assert!(Observer::start(&opts, Some(Path::new("/tmp")), &Id::of_bytes(b"r"), &[]).is_none());
}
