//! Bringing the local chunk index up to date: forget the index files that
//! left the store, read only the ones not merged yet, and merge everything
//! into the next generation's sorted chunk file with bounded memory (sorted
//! runs of at most `RUN_RECORDS` records, then one k-way merge).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::format::{
    Bucket, Manifest, PackEntry, Record, BUCKETS, CHUNKS_HEADER, CHUNKS_MAGIC, RECORD,
};
use super::CacheError;
use crate::backend::{BackendError, FileKind};
use crate::id::Id;
use crate::index::IndexFile;
use crate::repository::Repository;

/// Records sorted in memory before they go to a run file (10 MiB).
const RUN_RECORDS: usize = 256 * 1024;
const NONE: u32 = u32::MAX;

/// The generation being replaced, if one was trusted.
pub(super) struct Old {
    pub manifest: Manifest,
    pub chunks: File,
}

/// Numbering of the new generation and how old numbers map onto it.
struct Tables {
    files: Vec<Id>,
    packs: Vec<PackEntry>,
    file_map: Vec<u32>,
    pack_map: Vec<u32>,
}

/// Builds the next generation in `dir` and returns its manifest (already
/// written). `listed` is the store's `index/` listing.
pub(super) async fn rebuild(
    dir: &Path,
    repo: &Repository,
    old: Option<Old>,
    listed: &[Id],
) -> Result<Manifest, CacheError> {
    let mut tables = keep_listed(old.as_ref().map(|o| &o.manifest), listed);
    let known: HashSet<Id> = old
        .as_ref()
        .map(|o| o.manifest.files.iter().copied().collect())
        .unwrap_or_default();
    let mut runs = Runs::new(dir);
    for id in listed.iter().filter(|id| !known.contains(id)) {
        read_new_file(repo, *id, &mut tables, &mut runs).await?;
    }
    let generation = old.as_ref().map_or(1, |o| o.manifest.generation + 1);
    let dir = dir.to_path_buf();
    let repo_id = repo.config.id;
    tokio::task::spawn_blocking(move || {
        merge_and_write(&dir, repo_id, generation, old, tables, runs)
    })
    .await
    .map_err(|e| CacheError::Damaged(format!("index merge task failed: {e}")))?
}

/// Keeps the old generation's files and packs that the store still lists,
/// renumbered densely in their old order (so old records stay sorted).
fn keep_listed(old: Option<&Manifest>, listed: &[Id]) -> Tables {
    let mut t = Tables {
        files: Vec::new(),
        packs: Vec::new(),
        file_map: Vec::new(),
        pack_map: Vec::new(),
    };
    let Some(old) = old else { return t };
    let live: HashSet<&Id> = listed.iter().collect();
    for f in &old.files {
        if live.contains(f) {
            t.file_map.push(t.files.len() as u32);
            t.files.push(*f);
        } else {
            t.file_map.push(NONE);
        }
    }
    for p in &old.packs {
        match t.file_map[p.file as usize] {
            NONE => t.pack_map.push(NONE),
            file => {
                t.pack_map.push(t.packs.len() as u32);
                t.packs.push(PackEntry { file, ..*p });
            }
        }
    }
    t
}

/// Reads one index file the cache has not seen. A file that vanished since
/// the listing is skipped; an unreadable one is remembered as seen (files
/// are immutable, it will not get better) and its chunks look missing, which
/// only makes a backup store them again — what `load_index` does too.
async fn read_new_file(
    repo: &Repository,
    id: Id,
    t: &mut Tables,
    runs: &mut Runs,
) -> Result<(), CacheError> {
    let name = id.to_hex();
    let data = match repo.backend().read(FileKind::Index, &name).await {
        Ok(d) => d,
        Err(BackendError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(CacheError::Store(e.into())),
    };
    let file_no = number(t.files.len())?;
    t.files.push(id);
    let parsed = match IndexFile::parse(&name, &data) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(index = %name, error = %e, "index file unreadable; its chunks will be stored again");
            return Ok(());
        }
    };
    drop(data);
    for p in parsed.packs {
        let pack = number(t.packs.len())?;
        t.packs.push(PackEntry {
            id: p.id,
            size: p.size,
            file: file_no,
        });
        for b in p.blobs {
            runs.push(Record {
                id: b.id.0,
                file: file_no,
                pack,
            })?;
        }
    }
    Ok(())
}

fn number(n: usize) -> Result<u32, CacheError> {
    u32::try_from(n)
        .ok()
        .filter(|n| *n != NONE)
        .ok_or_else(|| CacheError::Damaged("more than 4 billion index files or packs".into()))
}

/// Sorted runs of new records, spilled to files in the cache directory.
pub(super) struct Runs {
    dir: PathBuf,
    buf: Vec<Record>,
    files: Vec<PathBuf>,
}

impl Runs {
    fn new(dir: &Path) -> Runs {
        Runs {
            dir: dir.to_path_buf(),
            buf: Vec::new(),
            files: Vec::new(),
        }
    }

    fn push(&mut self, r: Record) -> Result<(), CacheError> {
        self.buf.push(r);
        if self.buf.len() >= RUN_RECORDS {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<(), CacheError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.buf.sort_unstable();
        let path = self.dir.join(format!("run-{}.tmp", self.files.len()));
        let mut w = BufWriter::new(File::create(&path).map_err(CacheError::io(&path))?);
        let mut b = [0u8; RECORD];
        for r in self.buf.drain(..) {
            r.encode(&mut b);
            w.write_all(&b).map_err(CacheError::io(&path))?;
        }
        w.flush().map_err(CacheError::io(&path))?;
        self.files.push(path);
        Ok(())
    }
}

impl Drop for Runs {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

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

fn merge_and_write(
    dir: &Path,
    repo: Id,
    generation: u64,
    old: Option<Old>,
    tables: Tables,
    mut runs: Runs,
) -> Result<Manifest, CacheError> {
    runs.spill()?;
    let mut streams = Vec::new();
    if let Some(o) = old {
        let mut reader = BufReader::with_capacity(64 * 1024, o.chunks);
        let mut header = [0u8; CHUNKS_HEADER as usize];
        reader
            .read_exact(&mut header)
            .map_err(|e| CacheError::Damaged(format!("chunk file header: {e}")))?;
        streams.push(Stream {
            reader,
            left: o.manifest.records,
            check: Some(BucketCheck {
                buckets: o.manifest.buckets.clone(),
                bucket: 0,
                read: 0,
                hasher: blake3::Hasher::new(),
            }),
            remap: Some((tables.file_map, tables.pack_map)),
        });
    }
    for f in &runs.files {
        let len = std::fs::metadata(f).map_err(CacheError::io(f))?.len();
        streams.push(open_stream(f, len / RECORD as u64)?);
    }
    let name = format!("chunks-{generation}");
    let tmp = dir.join(format!("{name}.tmp"));
    let (records, buckets) = write_merged(&tmp, generation, &mut streams)?;
    let manifest = Manifest {
        repo,
        generation,
        records,
        files: tables.files,
        packs: tables.packs,
        buckets,
    };
    publish(dir, &tmp, &name, &manifest)?;
    Ok(manifest)
}

/// K-way merge of sorted streams into the chunk file, dropping exact
/// duplicates and computing the bucket table on the way.
fn write_merged(
    path: &Path,
    generation: u64,
    streams: &mut [Stream],
) -> Result<(u64, Vec<Bucket>), CacheError> {
    let mut w = BufWriter::with_capacity(
        256 * 1024,
        File::create(path).map_err(CacheError::io(path))?,
    );
    let io = CacheError::io(path);
    w.write_all(CHUNKS_MAGIC).map_err(&io)?;
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

/// Makes the new generation current: chunk file first, manifest last (a
/// crash in between leaves the old manifest, whose chunk file still exists,
/// or a new manifest whose file is complete). Old generations are removed.
fn publish(dir: &Path, tmp: &Path, name: &str, m: &Manifest) -> Result<(), CacheError> {
    let chunks = dir.join(name);
    std::fs::rename(tmp, &chunks).map_err(CacheError::io(&chunks))?;
    let mpath = dir.join("manifest");
    let mtmp = dir.join("manifest.tmp");
    std::fs::write(&mtmp, m.encode()).map_err(CacheError::io(&mtmp))?;
    std::fs::rename(&mtmp, &mpath).map_err(CacheError::io(&mpath))?;
    let entries = std::fs::read_dir(dir).map_err(CacheError::io(dir))?;
    for e in entries.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        if n.starts_with("chunks-") && n != name {
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
