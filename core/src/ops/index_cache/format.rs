//! On-disk layout of the local chunk index (a cache, never a source of truth).
//!
//! ```text
//! manifest        MAGIC, repository id, generation, file and pack counts,
//!                 base (generation u64, records u64),
//!                 delta (generation u64, records u64),
//!                 index files merged (32 B each),
//!                 pack entries (pack id 32 B, size u64, file number u32),
//!                 base bucket table (BUCKETS x (first record u64, checksum u64)),
//!                 delta bucket table (the same),
//!                 BLAKE3 of everything before it (32 B)
//! chunks-<gen>    the base: CHUNKS_MAGIC, its generation u64, then records
//!                 sorted by (chunk id, file number, pack number), RECORD
//!                 bytes each: chunk id 32 B, file number u32, pack number u32 (LE)
//! delta-<gen>     the delta: DELTA_MAGIC, its generation u64, records as above
//! ```
//! Base and delta are two sorted segments of one set of records (no record
//! is in both). A new index file goes to the delta, which is small, so a
//! backup start rewrites only the delta; the base is rewritten (base and
//! delta merged, delta emptied) when the delta passes 1/16 of it or an index
//! file left the store. File and pack numbers only ever grow between base
//! rewrites, so the base's records stay valid while the delta changes.
//! The bucket of a record is the first two bytes of its chunk id (keyed
//! BLAKE3, so uniform). A lookup reads one bucket with one `pread` and checks
//! it against the bucket's checksum from the manifest, so a damaged cache is
//! noticed where it is read, without hashing the whole file at every start.

use crate::id::Id;

pub const MAGIC: &[u8; 8] = b"CDGIDXM2";
pub const CHUNKS_MAGIC: &[u8; 8] = b"CDGIDXC1";
pub const DELTA_MAGIC: &[u8; 8] = b"CDGIDXD1";
pub const CHUNKS_HEADER: u64 = 16;
pub const RECORD: usize = 40;
pub const BUCKETS: usize = 1 << 16;
const PACK_ENTRY: usize = 44;

/// One (chunk, index file, pack) fact: index file `file` lists chunk `id` in
/// pack entry `pack`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    pub id: [u8; 32],
    pub file: u32,
    pub pack: u32,
}

impl Record {
    pub fn encode(&self, out: &mut [u8]) {
        out[..32].copy_from_slice(&self.id);
        out[32..36].copy_from_slice(&self.file.to_le_bytes());
        out[36..40].copy_from_slice(&self.pack.to_le_bytes());
    }

    pub fn decode(b: &[u8]) -> Record {
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[..32]);
        Record {
            id,
            file: u32::from_le_bytes(b[32..36].try_into().expect("4 bytes")),
            pack: u32::from_le_bytes(b[36..40].try_into().expect("4 bytes")),
        }
    }

    pub fn bucket(&self) -> usize {
        bucket_of(&self.id)
    }
}

pub fn bucket_of(id: &[u8; 32]) -> usize {
    (usize::from(id[0]) << 8) | usize::from(id[1])
}

/// A pack as one index file lists it. The same pack may appear once per
/// index file that lists it (prune rewrites index files; two backups may
/// index the same recovered pack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub id: Id,
    pub size: u64,
    pub file: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub start: u64,
    pub checksum: u64,
}

/// One sorted file of records (the base or the delta) and its bucket table.
/// Generation 0 with no records: there is no file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub generation: u64,
    pub records: u64,
    pub buckets: Vec<Bucket>,
}

/// Which of the two segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Base,
    Delta,
}

impl Part {
    pub fn magic(self) -> &'static [u8; 8] {
        match self {
            Part::Base => CHUNKS_MAGIC,
            Part::Delta => DELTA_MAGIC,
        }
    }

    pub fn file_name(self, generation: u64) -> String {
        match self {
            Part::Base => format!("chunks-{generation}"),
            Part::Delta => format!("delta-{generation}"),
        }
    }
}

impl Segment {
    pub fn empty() -> Segment {
        Segment {
            generation: 0,
            records: 0,
            buckets: vec![Bucket::default(); BUCKETS],
        }
    }

    pub fn exists(&self) -> bool {
        self.generation != 0
    }

    /// Records of bucket `b`: `[start, end)`.
    pub fn bucket_range(&self, b: usize) -> (u64, u64) {
        let start = self.buckets[b].start;
        let end = self.buckets.get(b + 1).map_or(self.records, |n| n.start);
        (start, end)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let ordered = self.buckets.windows(2).all(|w| w[0].start <= w[1].start);
        let last = self.buckets.last().map_or(0, |b| b.start);
        if !ordered || last > self.records {
            return Err(ManifestError::Inconsistent("bucket table out of order"));
        }
        if !self.exists() && self.records != 0 {
            return Err(ManifestError::Inconsistent("records without a file"));
        }
        Ok(())
    }
}

/// Everything of the cache that lives in memory: O(index files + packs),
/// about 2 MiB plus 48 bytes per pack, independent of the number of chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub repo: Id,
    /// Bumped at every write; names the next segment file written.
    pub generation: u64,
    pub files: Vec<Id>,
    pub packs: Vec<PackEntry>,
    pub base: Segment,
    pub delta: Segment,
}

pub fn bucket_checksum(bytes: &[u8]) -> u64 {
    let h = blake3::hash(bytes);
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Why a manifest was not trusted (the cache is rebuilt; never fatal).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("it is not a cadang chunk index manifest (wrong magic or version)")]
    Magic,
    #[error("it is truncated or has trailing bytes")]
    Length,
    #[error("its checksum does not match (damaged or partly written)")]
    Checksum,
    #[error("it belongs to repository {found}, not {expected}")]
    Repository { expected: Id, found: Id },
    #[error("it is inconsistent: {0}")]
    Inconsistent(&'static str),
}

impl Manifest {
    #[cfg(test)]
    pub fn empty(repo: Id) -> Manifest {
        Manifest {
            repo,
            generation: 0,
            files: Vec::new(),
            packs: Vec::new(),
            base: Segment::empty(),
            delta: Segment::empty(),
        }
    }

    /// All records, base and delta.
    pub fn records(&self) -> u64 {
        self.base.records + self.delta.records
    }

    pub fn segment(&self, part: Part) -> &Segment {
        match part {
            Part::Base => &self.base,
            Part::Delta => &self.delta,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            FIXED + self.files.len() * 32 + self.packs.len() * PACK_ENTRY + BUCKETS * 32 + 32,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.repo.0);
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&(self.files.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.packs.len() as u64).to_le_bytes());
        for seg in [&self.base, &self.delta] {
            out.extend_from_slice(&seg.generation.to_le_bytes());
            out.extend_from_slice(&seg.records.to_le_bytes());
        }
        for f in &self.files {
            out.extend_from_slice(&f.0);
        }
        for p in &self.packs {
            out.extend_from_slice(&p.id.0);
            out.extend_from_slice(&p.size.to_le_bytes());
            out.extend_from_slice(&p.file.to_le_bytes());
        }
        for b in self.base.buckets.iter().chain(&self.delta.buckets) {
            out.extend_from_slice(&b.start.to_le_bytes());
            out.extend_from_slice(&b.checksum.to_le_bytes());
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// Parses and validates a manifest: every count is checked against the
    /// bytes actually there before anything is allocated from it.
    pub fn decode(data: &[u8], repo: &Id) -> Result<Manifest, ManifestError> {
        if data.len() < FIXED + 32 {
            return Err(ManifestError::Length);
        }
        if &data[..8] != MAGIC {
            return Err(ManifestError::Magic);
        }
        let (body, sum) = data.split_at(data.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err(ManifestError::Checksum);
        }
        let mut r = Reader { data: body, at: 8 };
        let found = Id(r.array()?);
        if found != *repo {
            return Err(ManifestError::Repository {
                expected: *repo,
                found,
            });
        }
        let generation = r.u64()?;
        let n_files = r.u64()?;
        let n_packs = r.u64()?;
        let (base_gen, base_records) = (r.u64()?, r.u64()?);
        let (delta_gen, delta_records) = (r.u64()?, r.u64()?);
        let need = n_files
            .checked_mul(32)
            .and_then(|a| n_packs.checked_mul(PACK_ENTRY as u64).map(|b| (a, b)))
            .and_then(|(a, b)| a.checked_add(b))
            .and_then(|a| a.checked_add((BUCKETS * 32) as u64))
            .ok_or(ManifestError::Length)?;
        if need != (body.len() - r.at) as u64 {
            return Err(ManifestError::Length);
        }
        let files = (0..n_files)
            .map(|_| r.array().map(Id))
            .collect::<Result<Vec<_>, _>>()?;
        let packs = (0..n_packs)
            .map(|_| {
                Ok(PackEntry {
                    id: Id(r.array()?),
                    size: r.u64()?,
                    file: r.u32()?,
                })
            })
            .collect::<Result<Vec<_>, ManifestError>>()?;
        let base = Segment {
            generation: base_gen,
            records: base_records,
            buckets: r.buckets()?,
        };
        let delta = Segment {
            generation: delta_gen,
            records: delta_records,
            buckets: r.buckets()?,
        };
        let m = Manifest {
            repo: found,
            generation,
            files,
            packs,
            base,
            delta,
        };
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        if self
            .packs
            .iter()
            .any(|p| p.file as usize >= self.files.len())
        {
            return Err(ManifestError::Inconsistent(
                "a pack names an unknown index file",
            ));
        }
        self.base.validate()?;
        self.delta.validate()?;
        if self.base.generation > self.generation || self.delta.generation > self.generation {
            return Err(ManifestError::Inconsistent(
                "segment from a later generation",
            ));
        }
        if self.base.records.checked_add(self.delta.records).is_none() {
            return Err(ManifestError::Inconsistent("record counts overflow"));
        }
        Ok(())
    }
}

/// Fixed part of a manifest: magic, repository id, six u64 numbers.
const FIXED: usize = 8 + 32 + 8 * 7;

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ManifestError> {
        let end = self.at.checked_add(n).ok_or(ManifestError::Length)?;
        let s = self.data.get(self.at..end).ok_or(ManifestError::Length)?;
        self.at = end;
        Ok(s)
    }
    fn array(&mut self) -> Result<[u8; 32], ManifestError> {
        Ok(self.take(32)?.try_into().expect("32 bytes"))
    }
    fn u64(&mut self) -> Result<u64, ManifestError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn buckets(&mut self) -> Result<Vec<Bucket>, ManifestError> {
        (0..BUCKETS)
            .map(|_| {
                Ok(Bucket {
                    start: self.u64()?,
                    checksum: self.u64()?,
                })
            })
            .collect()
    }
    fn u32(&mut self) -> Result<u32, ManifestError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let mut m = Manifest::empty(Id([7; 32]));
        m.generation = 4;
        m.base.generation = 3;
        m.base.records = 5;
        m.delta.generation = 4;
        m.delta.records = 1;
        m.files = vec![Id([1; 32]), Id([2; 32])];
        m.packs = vec![PackEntry {
            id: Id([9; 32]),
            size: 1234,
            file: 1,
        }];
        m.base.buckets[10].start = 2;
        for b in &mut m.base.buckets[11..] {
            b.start = 5;
        }
        m.delta.buckets[7].checksum = 99;
        m
    }

    #[test]
    fn manifest_round_trips() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode(), &m.repo).unwrap(), m);
    }

    #[test]
    fn inconsistent_segments_are_refused() {
        let mut m = sample();
        m.delta.generation = 0;
        assert!(matches!(
            Manifest::decode(&m.encode(), &m.repo),
            Err(ManifestError::Inconsistent(_))
        ));
        let mut m = sample();
        m.delta.buckets[3].start = 2;
        assert!(matches!(
            Manifest::decode(&m.encode(), &m.repo),
            Err(ManifestError::Inconsistent(_))
        ));
    }

    #[test]
    fn damaged_truncated_or_foreign_manifests_are_refused() {
        let m = sample();
        let data = m.encode();
        let mut flipped = data.clone();
        flipped[60] ^= 1;
        assert!(matches!(
            Manifest::decode(&flipped, &m.repo),
            Err(ManifestError::Checksum)
        ));
        assert!(Manifest::decode(&data[..data.len() - 1], &m.repo).is_err());
        assert!(matches!(
            Manifest::decode(&data, &Id([8; 32])),
            Err(ManifestError::Repository { .. })
        ));
        assert!(matches!(
            Manifest::decode(&data[..20], &m.repo),
            Err(ManifestError::Length)
        ));
    }

    #[test]
    fn records_round_trip_and_sort_by_id_first() {
        let r = Record {
            id: [3; 32],
            file: 7,
            pack: 9,
        };
        let mut b = [0u8; RECORD];
        r.encode(&mut b);
        assert_eq!(Record::decode(&b), r);
        let lower = Record {
            id: [2; 32],
            file: 99,
            pack: 99,
        };
        assert!(lower < r);
    }
}
