//! The side table: what each file looked like at the last measured backup
//! of a source, so tonight's backup can tell new, changed, deleted, renamed
//! and "became random" apart without reading unchanged files.
//!
//! It stays on the agent and holds no names: a file is keyed by a hash of
//! its path, and its stem (path without the last extension) is kept only as
//! a hash too, to pair `a.docx` with `a.docx.locked`. Like the file cache it
//! is an optimisation of the measurement, never of the backup: a lost or
//! damaged table only means the next backup counts as a first one.

use std::io::Write;
use std::path::Path;

use super::entropy::FileClass;
use crate::cache::FileStamp;

const MAGIC: &[u8; 8] = b"CDSIG01\n";
const RECORD: usize = 16 + 8 + 8 + 8 + 8 + 8 + 8 + 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub path: [u8; 16],
    pub stem: u64,
    pub stamp: FileStamp,
    pub class: FileClass,
}

/// Hash of a path (or stem) for the table.
pub fn path_key(path: &[u8]) -> [u8; 16] {
    let h = blake3::hash(path);
    let mut k = [0u8; 16];
    k.copy_from_slice(&h.as_bytes()[..16]);
    k
}

pub fn stem_key(path: &[u8]) -> u64 {
    let h = blake3::hash(path);
    u64::from_le_bytes(h.as_bytes()[16..24].try_into().expect("8 bytes"))
}

/// Records sorted by path key: a lookup is a binary search, and a million
/// files cost ~65 MB rather than a hash map's double.
#[derive(Default)]
pub struct Table {
    pub records: Vec<Record>,
}

impl Table {
    pub fn from_records(mut records: Vec<Record>) -> Table {
        records.sort_by_key(|a| a.path);
        records.dedup_by(|a, b| a.path == b.path);
        Table { records }
    }

    pub fn find(&self, path: &[u8; 16]) -> Option<usize> {
        self.records.binary_search_by(|r| r.path.cmp(path)).ok()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.records.len() * RECORD + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.records.len() as u64).to_le_bytes());
        for r in &self.records {
            out.extend_from_slice(&r.path);
            out.extend_from_slice(&r.stem.to_le_bytes());
            out.extend_from_slice(&r.stamp.size.to_le_bytes());
            out.extend_from_slice(&r.stamp.mtime_ns.to_le_bytes());
            out.extend_from_slice(&r.stamp.ctime_ns.to_le_bytes());
            out.extend_from_slice(&r.stamp.inode.to_le_bytes());
            out.extend_from_slice(&r.stamp.device.to_le_bytes());
            out.push(r.class.to_byte());
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// `None` when the bytes are not a whole, undamaged table.
    pub fn decode(data: &[u8]) -> Option<Table> {
        if data.len() < MAGIC.len() + 8 + 32 || &data[..8] != MAGIC {
            return None;
        }
        let (body, sum) = data.split_at(data.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return None;
        }
        let n = u64::from_le_bytes(body[8..16].try_into().ok()?) as usize;
        let rest = &body[16..];
        if rest.len() != n.checked_mul(RECORD)? {
            return None;
        }
        let records = rest.chunks_exact(RECORD).map(decode_record).collect();
        Some(Table::from_records(records))
    }

    pub fn load(path: &Path) -> Option<Table> {
        let data = std::fs::read(path).ok()?;
        let t = Table::decode(&data);
        if t.is_none() {
            tracing::warn!(table = %path.display(), "ransomware signal table unreadable; this backup is measured as a first one");
        }
        t
    }

    /// Writes atomically (temporary file, fsync, rename): a crash leaves
    /// the old table or the new one.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&self.encode())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("record length checked"))
}

fn decode_record(b: &[u8]) -> Record {
    let mut path = [0u8; 16];
    path.copy_from_slice(&b[..16]);
    Record {
        path,
        stem: u64_at(b, 16),
        stamp: FileStamp {
            size: u64_at(b, 24),
            mtime_ns: u64_at(b, 32) as i64,
            ctime_ns: u64_at(b, 40) as i64,
            inode: u64_at(b, 48),
            device: u64_at(b, 56),
        },
        class: FileClass::from_byte(b[64]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::entropy::Block;

    fn rec(name: &str, size: u64) -> Record {
        Record {
            path: path_key(name.as_bytes()),
            stem: stem_key(name.as_bytes()),
            stamp: FileStamp {
                size,
                mtime_ns: -5,
                ctime_ns: 7,
                inode: 9,
                device: 1,
            },
            class: FileClass {
                head: Block::Structured,
                mid: Block::Random,
            },
        }
    }

    #[test]
    fn table_round_trips_and_refuses_damage() {
        let t = Table::from_records(vec![rec("/b", 2), rec("/a", 1)]);
        let bytes = t.encode();
        let back = Table::decode(&bytes).unwrap();
        assert_eq!(back.records, t.records);
        assert!(back.find(&path_key(b"/a")).is_some());
        assert!(back.find(&path_key(b"/c")).is_none());
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(Table::decode(&bad).is_none());
        assert!(Table::decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(Table::decode(b"").is_none());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/t.tbl");
        t.save(&p).unwrap();
        assert_eq!(Table::load(&p).unwrap().records, t.records);
    }
}
