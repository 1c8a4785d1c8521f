//! The k-way merge that writes a generation's segment file (a new base or a
//! new delta): the old segments' records (checked against their bucket
//! checksums as they are read, remapped to the new numbering) and the new
//! sorted runs, into one sorted file with its bucket table; then the switch
//! to it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::build::{Old, Plan, Runs, Tables, NONE};
use super::format::{Bucket, Manifest, Part, Record, Segment, BUCKETS, CHUNKS_HEADER, RECORD};
use super::CacheError;
use crate::id::Id;

/// A sorted stream of records from a file. The old generation's stream is
/// checked bucket by bucket against its manifest, so damage is never carried
/// into a new generation under fresh checksums.
struct Stream {
    reader: BufReader<File>,
    left: u64,
    check: Option<BucketCheck>,
    remap: Option<(Vec<u32>, Vec<u32>)>,
}

struct BucketCheck {
    buckets: Vec<Bucket>,
    bucket: usize,
    read: u64,
    hasher: blake3::Hasher,
}

impl BucketCheck {
    /// Closes every bucket that ends at or before record number `upto`.
    fn close_until(&mut self, upto: u64, total: u64) -> Result<(), CacheError> {
        while self.bucket < BUCKETS {
            let end = self.buckets.get(self.bucket + 1).map_or(total, |b| b.start);
            if end > upto {
                break;
            }
            let sum = self.hasher.finalize();
            let sum = u64::from_le_bytes(sum.as_bytes()[..8].try_into().expect("8 bytes"));
            if sum != self.buckets[self.bucket].checksum {
                return Err(CacheError::Damaged(format!(
                    "bucket {} of the chunk file does not match its checksum",
                    self.bucket
                )));
            }
            self.hasher = blake3::Hasher::new();
            self.bucket += 1;
        }
        Ok(())
    }
}

impl Stream {
    fn next(&mut self) -> Result<Option<Record>, CacheError> {
        loop {
            if self.left == 0 {
                return Ok(None);
            }
            let mut b = [0u8; RECORD];
            self.reader
                .read_exact(&mut b)
                .map_err(|e| CacheError::Damaged(format!("chunk file is short: {e}")))?;
            self.left -= 1;
            if let Some(c) = &mut self.check {
                let total = c.read + self.left + 1;
                c.close_until(c.read, total)?;
                c.hasher.update(&b);
                c.read += 1;
                if self.left == 0 {
                    c.close_until(total, total)?;
                }
            }
            let mut r = Record::decode(&b);
            if let Some((files, packs)) = &self.remap {
                let file = files.get(r.file as usize).copied().unwrap_or(NONE);
                let pack = packs.get(r.pack as usize).copied().unwrap_or(NONE);
                if file == NONE || pack == NONE {
                    continue;
                }
                r = Record { file, pack, ..r };
            }
            return Ok(Some(r));
        }
    }
}

fn open_stream(path: &Path, records: u64) -> Result<Stream, CacheError> {
    let f = File::open(path).map_err(CacheError::io(path))?;
    Ok(Stream {
        reader: BufReader::with_capacity(64 * 1024, f),
        left: records,
        check: None,
        remap: None,
    })
}

/// A checked, remapped stream over one old segment file.
fn segment_stream(
    file: File,
    seg: &Segment,
    remap: (Vec<u32>, Vec<u32>),
) -> Result<Stream, CacheError> {
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut header = [0u8; CHUNKS_HEADER as usize];
    reader
        .read_exact(&mut header)
        .map_err(|e| CacheError::Damaged(format!("chunk file header: {e}")))?;
    Ok(Stream {
        reader,
        left: seg.records,
        check: Some(BucketCheck {
            buckets: seg.buckets.clone(),
            bucket: 0,
            read: 0,
            hasher: blake3::Hasher::new(),
        }),
        remap: Some(remap),
    })
}

/// The old segments a plan merges: the delta always, the base for a full
/// rewrite. Also returns the base kept as it is, for a delta plan.
fn old_streams(
    old: Option<Old>,
    plan: Plan,
    tables: &Tables,
) -> Result<(Vec<Stream>, Option<Segment>), CacheError> {
    let mut streams = Vec::new();
    let Some(o) = old else {
        return Ok((streams, None));
    };
    let remap = || (tables.file_map.clone(), tables.pack_map.clone());
    if let (Some(f), Plan::Full) = (o.base, plan) {
        streams.push(segment_stream(f, &o.manifest.base, remap())?);
    }
    if let Some(f) = o.delta {
        streams.push(segment_stream(f, &o.manifest.delta, remap())?);
    }
    let kept = (plan == Plan::Delta).then_some(o.manifest.base);
    Ok((streams, kept))
}

pub(super) fn merge_and_write(
    dir: &Path,
    repo: Id,
    plan: Plan,
    old: Option<Old>,
    tables: Tables,
    mut runs: Runs,
) -> Result<Manifest, CacheError> {
    runs.spill()?;
    let generation = old.as_ref().map_or(1, |o| o.manifest.generation + 1);
    let (mut streams, kept_base) = old_streams(old, plan, &tables)?;
    for f in runs.files() {
        let len = std::fs::metadata(f).map_err(CacheError::io(f))?.len();
        streams.push(open_stream(f, len / RECORD as u64)?);
    }
    let part = match plan {
        Plan::Full => Part::Base,
        Plan::Delta => Part::Delta,
    };
    let name = part.file_name(generation);
    let tmp = dir.join(format!("{name}.tmp"));
    let (records, buckets) = write_merged(&tmp, part, generation, &mut streams)?;
    let written = Segment {
        generation,
        records,
        buckets,
    };
    let (base, delta) = match kept_base {
        Some(base) => (base, written),
        None => (written, Segment::empty()),
    };
    let manifest = Manifest {
        repo,
        generation,
        files: tables.files,
        packs: tables.packs,
        base,
        delta,
    };
    publish(dir, &tmp, &name, &manifest)?;
    Ok(manifest)
}

/// K-way merge of sorted streams into the chunk file, dropping exact
/// duplicates and computing the bucket table on the way.
fn write_merged(
    path: &Path,
    part: Part,
    generation: u64,
    streams: &mut [Stream],
) -> Result<(u64, Vec<Bucket>), CacheError> {
    let mut w = BufWriter::with_capacity(
        256 * 1024,
        File::create(path).map_err(CacheError::io(path))?,
    );
    let io = CacheError::io(path);
    w.write_all(part.magic()).map_err(&io)?;
    w.write_all(&generation.to_le_bytes()).map_err(&io)?;
    let mut heap = BinaryHeap::new();
    for (i, s) in streams.iter_mut().enumerate() {
        if let Some(r) = s.next()? {
            heap.push(Reverse((r, i)));
        }
    }
    let mut table = BucketTable::new();
    let mut last: Option<Record> = None;
    let mut b = [0u8; RECORD];
    while let Some(Reverse((r, i))) = heap.pop() {
        if let Some(n) = streams[i].next()? {
            heap.push(Reverse((n, i)));
        }
        if last == Some(r) {
            continue;
        }
        last = Some(r);
        r.encode(&mut b);
        table.add(r.bucket(), &b);
        w.write_all(&b).map_err(&io)?;
    }
    w.flush().map_err(&io)?;
    Ok(table.finish())
}

struct BucketTable {
    buckets: Vec<Bucket>,
    current: usize,
    hasher: blake3::Hasher,
    count: u64,
}

impl BucketTable {
    fn new() -> BucketTable {
        BucketTable {
            buckets: vec![Bucket::default(); BUCKETS],
            current: 0,
            hasher: blake3::Hasher::new(),
            count: 0,
        }
    }

    fn advance_to(&mut self, bucket: usize) {
        while self.current < bucket {
            let sum = self.hasher.finalize();
            self.buckets[self.current].checksum =
                u64::from_le_bytes(sum.as_bytes()[..8].try_into().expect("8 bytes"));
            self.hasher = blake3::Hasher::new();
            self.current += 1;
            self.buckets[self.current].start = self.count;
        }
    }

    fn add(&mut self, bucket: usize, bytes: &[u8]) {
        self.advance_to(bucket);
        self.hasher.update(bytes);
        self.count += 1;
    }

    fn finish(mut self) -> (u64, Vec<Bucket>) {
        self.advance_to(BUCKETS - 1);
        self.buckets[BUCKETS - 1].checksum = bucket_checksum_of(self.hasher);
        (self.count, self.buckets)
    }
}

fn bucket_checksum_of(h: blake3::Hasher) -> u64 {
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Makes the new generation current: segment file first, manifest last (a
/// crash in between leaves the old manifest, whose files still exist, or a
/// new manifest whose files are complete). Files the new manifest does not
/// name are removed after it is in place.
fn publish(dir: &Path, tmp: &Path, name: &str, m: &Manifest) -> Result<(), CacheError> {
    let chunks = dir.join(name);
    std::fs::rename(tmp, &chunks).map_err(CacheError::io(&chunks))?;
    let mpath = dir.join("manifest");
    let mtmp = dir.join("manifest.tmp");
    std::fs::write(&mtmp, m.encode()).map_err(CacheError::io(&mtmp))?;
    std::fs::rename(&mtmp, &mpath).map_err(CacheError::io(&mpath))?;
    let current = [
        Part::Base.file_name(m.base.generation),
        Part::Delta.file_name(m.delta.generation),
    ];
    let entries = std::fs::read_dir(dir).map_err(CacheError::io(dir))?;
    for e in entries.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        let segment = n.starts_with("chunks-") || n.starts_with("delta-");
        if segment && n != name && !current.iter().any(|c| *c == n) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::format::bucket_checksum;
    use super::*;

    #[test]
    fn bucket_table_checksums_match_what_lookups_verify() {
        let mut t = BucketTable::new();
        let recs: Vec<Record> = [[0u8, 0], [0, 0], [0, 5], [255, 255]]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut id = [i as u8; 32];
                id[0] = p[0];
                id[1] = p[1];
                Record {
                    id,
                    file: 0,
                    pack: 0,
                }
            })
            .collect();
        let mut bytes = Vec::new();
        for r in &recs {
            let mut b = [0u8; RECORD];
            r.encode(&mut b);
            t.add(r.bucket(), &b);
            bytes.push(b);
        }
        let (n, buckets) = t.finish();
        assert_eq!(n, 4);
        assert_eq!(buckets[0].start, 0);
        assert_eq!(buckets[1].start, 2);
        assert_eq!(buckets[6].start, 3);
        assert_eq!(buckets[BUCKETS - 1].start, 3);
        assert_eq!(buckets[0].checksum, bucket_checksum(&bytes[..2].concat()));
        assert_eq!(buckets[5].checksum, bucket_checksum(&bytes[2]));
        assert_eq!(buckets[1].checksum, bucket_checksum(&[]));
        assert_eq!(buckets[BUCKETS - 1].checksum, bucket_checksum(&bytes[3]));
    }
}
