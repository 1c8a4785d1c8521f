//! Does a block of a file look random? Shannon entropy of the bytes plus a
//! check for well-known file signatures.
//!
//! Encrypted data has ~8 bits of entropy per byte and no structure. So do
//! compressed formats (JPEG, ZIP-based office files), which is why a block
//! that starts with a known signature counts as *structured* whatever its
//! entropy: ransomware that encrypts only the first kilobytes destroys that
//! signature, an ordinary edit of a spreadsheet keeps it.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Bytes sampled per block: the first block, and one at half the file.
pub const BLOCK: usize = 4096;
/// Above this many bits per byte a block without signature counts as random.
pub const HIGH_ENTROPY: f64 = 7.5;
/// Shorter samples cannot show 7.5 bits/byte reliably (the maximum for n
/// bytes is log2 n, and random 1 KiB already scores ~7.8).
const MIN_SAMPLE: usize = 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Block {
    /// Not measured (too small, unreadable, or never looked at).
    #[default]
    Unknown = 0,
    Structured = 1,
    Random = 2,
}

impl Block {
    fn from_bits(b: u8) -> Block {
        match b & 3 {
            1 => Block::Structured,
            2 => Block::Random,
            _ => Block::Unknown,
        }
    }
}

/// What the sampled blocks of one file looked like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileClass {
    pub head: Block,
    pub mid: Block,
}

impl FileClass {
    pub fn to_byte(self) -> u8 {
        self.head as u8 | (self.mid as u8) << 2
    }

    pub fn from_byte(b: u8) -> FileClass {
        FileClass {
            head: Block::from_bits(b),
            mid: Block::from_bits(b >> 2),
        }
    }

    pub fn known(self) -> bool {
        self.head != Block::Unknown || self.mid != Block::Unknown
    }

    /// True when a block that looked structured in `before` looks random now.
    pub fn became_random(before: FileClass, now: FileClass) -> bool {
        let turned = |a: Block, b: Block| a == Block::Structured && b == Block::Random;
        turned(before.head, now.head) || turned(before.mid, now.mid)
    }
}

/// Shannon entropy in bits per byte.
pub fn shannon(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Signatures of common formats a PD server holds (office, PDF, images,
/// archives, executables, database files and dumps).
const SIGNATURES: &[(usize, &[u8])] = &[
    (0, b"%PDF"),
    (0, b"\xFF\xD8\xFF"),
    (0, b"\x89PNG"),
    (0, b"GIF8"),
    (0, b"II*\0"),
    (0, b"MM\0*"),
    (0, b"PK\x03\x04"),
    (0, b"\xD0\xCF\x11\xE0"),
    (0, b"\x1F\x8B"),
    (0, b"BZh"),
    (0, b"\xFD7zXZ"),
    (0, b"\x28\xB5\x2F\xFD"),
    (0, b"7z\xBC\xAF"),
    (0, b"Rar!"),
    (0, b"\x7FELF"),
    (0, b"MZ"),
    (0, b"PGDMP"),
    (0, b"SQLite format 3"),
    (0, b"RIFF"),
    (0, b"OggS"),
    (0, b"ID3"),
    (4, b"ftyp"),
];

fn has_signature(head: &[u8]) -> bool {
    SIGNATURES
        .iter()
        .any(|(at, sig)| head.len() >= at + sig.len() && &head[*at..at + sig.len()] == *sig)
}

/// Classifies one sampled block; `first` blocks are also checked for a
/// signature.
pub fn classify(block: &[u8], first: bool) -> Block {
    if block.len() < MIN_SAMPLE {
        return Block::Unknown;
    }
    if first && has_signature(block) {
        return Block::Structured;
    }
    if shannon(block) > HIGH_ENTROPY {
        Block::Random
    } else {
        Block::Structured
    }
}

/// Samples a file: its first block and, for files of more than two blocks,
/// the block at half its size. Never follows a symlink; a file that cannot
/// be opened is `Unknown` (the backup itself reports it).
pub fn sample(path: &Path, size: u64) -> FileClass {
    let Ok(f) = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOATIME)
        .open(path)
        .or_else(|_| {
            File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
        })
    else {
        return FileClass::default();
    };
    let head = read_block(&f, 0).map_or(Block::Unknown, |b| classify(&b, true));
    let mid = if size > 2 * BLOCK as u64 {
        let at = (size / 2) & !(BLOCK as u64 - 1);
        read_block(&f, at).map_or(Block::Unknown, |b| classify(&b, false))
    } else {
        head
    };
    FileClass { head, mid }
}

fn read_block(f: &File, at: u64) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; BLOCK];
    let mut got = 0;
    while got < BLOCK {
        match f.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    buf.truncate(got);
    Some(buf)
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn random_bytes_are_random_text_and_signed_formats_are_not() {
        assert_eq!(classify(&noise(4096, 3), true), Block::Random);
        assert_eq!(classify(&noise(1024, 3), true), Block::Random);
        let text = "Laporan realisasi anggaran dinas kesehatan tahun 2026. "
            .repeat(80)
            .into_bytes();
        assert!(shannon(&text) < 5.0);
        assert_eq!(classify(&text[..4096], true), Block::Structured);
        let mut jpeg = b"\xFF\xD8\xFF\xE0\0\x10JFIF".to_vec();
        jpeg.extend(noise(4096, 9));
        assert_eq!(classify(&jpeg[..4096], true), Block::Structured);
        // The same bytes in the middle of a file carry no signature.
        assert_eq!(classify(&jpeg[..4096], false), Block::Random);
        assert_eq!(classify(b"tiny", true), Block::Unknown);
    }

    #[test]
    fn class_byte_round_trips_and_transitions_need_a_structured_before() {
        let c = FileClass {
            head: Block::Random,
            mid: Block::Structured,
        };
        assert_eq!(FileClass::from_byte(c.to_byte()), c);
        let before = FileClass {
            head: Block::Structured,
            mid: Block::Random,
        };
        assert!(FileClass::became_random(before, c));
        assert!(!FileClass::became_random(c, c));
        assert!(!FileClass::became_random(FileClass::default(), c));
    }

    #[test]
    fn sample_reads_head_and_middle_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut data = "baris data penduduk\n".repeat(2000).into_bytes();
        std::fs::write(&p, &data).unwrap();
        let before = sample(&p, data.len() as u64);
        assert_eq!(before.head, Block::Structured);
        assert_eq!(before.mid, Block::Structured);
        data[..4096].copy_from_slice(&noise(4096, 5));
        std::fs::write(&p, &data).unwrap();
        let after = sample(&p, data.len() as u64);
        assert_eq!(after.head, Block::Random);
        assert_eq!(after.mid, Block::Structured);
        assert!(FileClass::became_random(before, after));
        assert_eq!(
            sample(&dir.path().join("missing"), 10),
            FileClass::default()
        );
    }
}
