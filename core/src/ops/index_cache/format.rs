//! On-disk layout of the local chunk index (a cache, never a source of truth).
//!
//! ```text
//! manifest        MAGIC, repository id, generation, counts,
//!                 index files merged (32 B each),
//!                 pack entries (pack id 32 B, size u64, file number u32),
//!                 bucket table (BUCKETS x (first record u64, checksum u64)),
//!                 BLAKE3 of everything before it (32 B)
//! chunks-<gen>    CHUNKS_MAGIC, generation u64, then records sorted by
//!                 (chunk id, file number, pack number), RECORD bytes each:
//!                 chunk id 32 B, file number u32, pack number u32 (LE)
//! ```
//! The bucket of a record is the first two bytes of its chunk id (keyed
//! BLAKE3, so uniform). A lookup reads one bucket with one `pread` and checks
//! it against the bucket's checksum from the manifest, so a damaged cache is
//! noticed where it is read, without hashing the whole file at every start.

use crate::id::Id;

pub const MAGIC: &[u8; 8] = b"CDGIDXM1";
pub const CHUNKS_MAGIC: &[u8; 8] = b"CDGIDXC1";
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

/// Everything of the cache that lives in memory: O(index files + packs),
/// about 1 MiB plus 48 bytes per pack, independent of the number of chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub repo: Id,
    pub generation: u64,
    pub records: u64,
    pub files: Vec<Id>,
    pub packs: Vec<PackEntry>,
    pub buckets: Vec<Bucket>,
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
            records: 0,
            files: Vec::new(),
            packs: Vec::new(),
            buckets: vec![Bucket::default(); BUCKETS],
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            80 + self.files.len() * 32 + self.packs.len() * PACK_ENTRY + BUCKETS * 16 + 32,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.repo.0);
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.records.to_le_bytes());
        out.extend_from_slice(&(self.files.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.packs.len() as u64).to_le_bytes());
        for f in &self.files {
            out.extend_from_slice(&f.0);
        }
        for p in &self.packs {
            out.extend_from_slice(&p.id.0);
            out.extend_from_slice(&p.size.to_le_bytes());
            out.extend_from_slice(&p.file.to_le_bytes());
        }
        for b in &self.buckets {
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
        const FIXED: usize = 8 + 32 + 8 * 4;
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
        let records = r.u64()?;
        let n_files = r.u64()?;
        let n_packs = r.u64()?;
        let need = n_files
            .checked_mul(32)
            .and_then(|a| n_packs.checked_mul(PACK_ENTRY as u64).map(|b| (a, b)))
            .and_then(|(a, b)| a.checked_add(b))
            .and_then(|a| a.checked_add((BUCKETS * 16) as u64))
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
        let buckets = (0..BUCKETS)
            .map(|_| {
                Ok(Bucket {
                    start: r.u64()?,
                    checksum: r.u64()?,
                })
            })
            .collect::<Result<Vec<_>, ManifestError>>()?;
        let m = Manifest {
            repo: found,
            generation,
            records,
            files,
            packs,
            buckets,
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
        let ordered = self.buckets.windows(2).all(|w| w[0].start <= w[1].start);
        let last = self.buckets.last().map_or(0, |b| b.start);
        if !ordered || last > self.records {
            return Err(ManifestError::Inconsistent("bucket table out of order"));
        }
        Ok(())
    }

    /// Records of bucket `b`: `[start, end)`.
    pub fn bucket_range(&self, b: usize) -> (u64, u64) {
        let start = self.buckets[b].start;
        let end = self.buckets.get(b + 1).map_or(self.records, |n| n.start);
        (start, end)
    }

    pub fn chunks_name(&self) -> String {
        format!("chunks-{}", self.generation)
    }
}

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
        m.generation = 3;
        m.records = 5;
        m.files = vec![Id([1; 32]), Id([2; 32])];
        m.packs = vec![PackEntry {
            id: Id([9; 32]),
            size: 1234,
            file: 1,
        }];
        m.buckets[10].start = 2;
        for b in &mut m.buckets[11..] {
            b.start = 5;
        }
        m
    }

    #[test]
    fn manifest_round_trips() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode(), &m.repo).unwrap(), m);
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
