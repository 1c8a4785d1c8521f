//! Index files: which pack holds each blob, keyless.
//!
//! An index file is named by the BLAKE3 of its bytes and is never changed;
//! prune replaces index files by writing new ones first and deleting the old
//! ones after. Several index files may name the same blob (two backups that
//! ran at once); any of them is good.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack::{BlobEntry, BlobKind, Compression};

#[derive(Debug, Serialize, Deserialize, Default)]
pub struct IndexFile {
    pub version: u32,
    pub packs: Vec<IndexPack>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: Id,
    /// Stored size of the pack, so structure checks need no pack reads.
    pub size: u64,
    pub blobs: Vec<BlobEntry>,
}

impl IndexFile {
    pub fn new(packs: Vec<IndexPack>) -> IndexFile {
        IndexFile { version: 1, packs }
    }

    pub fn parse(name: &str, data: &[u8]) -> Result<IndexFile> {
        if Id::of_bytes(data).to_hex() != name {
            return Err(Error::Corrupt(format!(
                "index/{name} does not match its hash (truncated or altered)"
            )));
        }
        let f: IndexFile = crate::compact::decode(data, &format!("index/{name}"))?;
        if f.version != 1 {
            return Err(Error::UnsupportedVersion(f.version));
        }
        Ok(f)
    }

    pub fn encode(&self) -> (Id, Vec<u8>) {
        let data = crate::compact::encode(self);
        (Id::of_bytes(&data), data)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: Id,
    pub kind: BlobKind,
    pub offset: u64,
    pub length: u32,
    pub raw_length: u32,
    pub compression: Compression,
}

impl BlobLocation {
    pub fn entry(&self, id: Id) -> BlobEntry {
        BlobEntry {
            id,
            kind: self.kind,
            offset: self.offset,
            length: self.length,
            raw_length: self.raw_length,
            compression: self.compression,
        }
    }
}

/// All index files merged in memory.
#[derive(Default, Debug)]
pub struct MasterIndex {
    blobs: HashMap<Id, BlobLocation>,
    packs: HashMap<Id, u64>,
    pub files: Vec<Id>,
}

impl MasterIndex {
    pub fn add_pack(&mut self, pack: &IndexPack) {
        self.packs.insert(pack.id, pack.size);
        for b in &pack.blobs {
            self.blobs.entry(b.id).or_insert(BlobLocation {
                pack: pack.id,
                kind: b.kind,
                offset: b.offset,
                length: b.length,
                raw_length: b.raw_length,
                compression: b.compression,
            });
        }
    }

    pub fn add_file(&mut self, id: Id, file: &IndexFile) {
        self.files.push(id);
        for p in &file.packs {
            self.add_pack(p);
        }
    }

    /// Drops every blob that lives in one of `packs` (packs marked for
    /// deletion must not be deduplicated against).
    pub fn without_packs(mut self, packs: &HashSet<Id>) -> MasterIndex {
        if !packs.is_empty() {
            self.blobs.retain(|_, l| !packs.contains(&l.pack));
            self.packs.retain(|p, _| !packs.contains(p));
        }
        self
    }

    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn pack_size(&self, pack: &Id) -> Option<u64> {
        self.packs.get(pack).copied()
    }

    pub fn packs(&self) -> impl Iterator<Item = (&Id, &u64)> {
        self.packs.iter()
    }

    pub fn blobs(&self) -> impl Iterator<Item = (&Id, &BlobLocation)> {
        self.blobs.iter()
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }
}
