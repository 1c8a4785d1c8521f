//! "Which pack holds blob X, and did X verify?" for `check --deep`, in
//! about 12 bytes a chunk instead of the whole index in memory.
//!
//! The in-memory `MasterIndex` and a set of every verified blob cost well
//! over 200 bytes a chunk. Here each indexed blob is one 12-byte slot: a
//! 64-bit fingerprint of its id and the number of the pack listing it came
//! from (an index file's pack, in the order they were read), with one bit
//! saying "a pack read whole held this blob and it decrypted and matched its
//! id". Slots live in buckets by the fingerprint's top bits, each grown by
//! an eighth at a time, so building costs little beyond the slots
//! themselves (a single vector doubling would briefly hold three times as
//! many).
//!
//! The fingerprint is SipHash with a key drawn at random for each check, so
//! neither a store nor an agent can pick an id that collides with an
//! indexed one: a chunk missing from the index is taken for an indexed one
//! with probability about (indexed chunks) / 2^64 — 3 in 10^13 at 5 M.
//!
//! Trees need their full index entry to be read; they are far fewer than
//! chunks, so their first listing is kept whole.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::IndexPack;
use crate::pack::{BlobEntry, BlobKind};

/// Buckets by the fingerprint's top bits: ~1,200 slots each at 5 M chunks,
/// and a fixed ~100 KiB of bucket headers.
const BUCKET_BITS: u32 = 12;
/// Smallest step a bucket grows by.
const MIN_GROWTH: usize = 8;
/// The low bit of a slot's tag: verified intact in some pack.
const INTACT: u32 = 1;

/// One indexed blob: fingerprint (as two halves, so a slot is 12 bytes with
/// 4-byte alignment) and `listing << 1 | intact`.
#[derive(Clone, Copy)]
struct Slot {
    fp: [u32; 2],
    tag: u32,
}

impl Slot {
    fn fp(&self) -> u64 {
        (u64::from(self.fp[0]) << 32) | u64::from(self.fp[1])
    }
    fn listing(&self) -> u32 {
        self.tag >> 1
    }
}

/// A tree's entry as the first index file listing it records it.
struct TreeAt {
    listing: u32,
    entry: BlobEntry,
}

/// What the index and the deep pass say about one blob id.
pub(super) struct Found {
    /// The pack of its first listing: the one a restore reads it from.
    pub pack: Id,
    listing: u32,
    /// Some pack read whole held it intact.
    pub intact: bool,
}

pub(super) struct Locations {
    key: RandomState,
    buckets: Vec<Vec<Slot>>,
    /// Pack id of each listing (an index file's pack), by listing number.
    packs: Vec<Id>,
    trees: HashMap<Id, TreeAt>,
}

impl Default for Locations {
    fn default() -> Self {
        Locations {
            key: RandomState::new(),
            buckets: (0..1usize << BUCKET_BITS).map(|_| Vec::new()).collect(),
            packs: Vec::new(),
            trees: HashMap::new(),
        }
    }
}

impl Locations {
    /// Records every blob of one pack as one index file lists it. Listings
    /// are numbered in the order they are added, so the first listing of a
    /// blob is the one `MasterIndex` (and so restore) would use.
    pub fn add_pack(&mut self, pack: &IndexPack) -> Result<()> {
        let listing = u32::try_from(self.packs.len())
            .ok()
            .filter(|n| *n < 1 << 31)
            .ok_or_else(|| {
                Error::Corrupt(
                    "the index lists more than 2^31 packs, more than any real repository holds"
                        .into(),
                )
            })?;
        self.packs.push(pack.id);
        for b in &pack.blobs {
            let fp = self.fingerprint(&b.id);
            let bucket = &mut self.buckets[bucket_of(fp)];
            if bucket.len() == bucket.capacity() {
                bucket.reserve_exact((bucket.len() / 8).max(MIN_GROWTH));
            }
            bucket.push(Slot {
                fp: [(fp >> 32) as u32, fp as u32],
                tag: listing << 1,
            });
            if b.kind == BlobKind::Tree {
                self.trees.entry(b.id).or_insert_with(|| TreeAt {
                    listing,
                    entry: b.clone(),
                });
            }
        }
        Ok(())
    }

    /// Sorts the buckets for lookups (by fingerprint, then listing) and
    /// gives back their spare room, one bucket at a time.
    pub fn finish(&mut self) {
        for b in &mut self.buckets {
            b.sort_unstable_by_key(|s| (s.fp(), s.tag));
            b.shrink_to_fit();
        }
    }

    /// Marks every listing of `id` as verified intact (after `finish`).
    pub fn mark_intact(&mut self, id: &Id) {
        let fp = self.fingerprint(id);
        let bucket = &mut self.buckets[bucket_of(fp)];
        let start = bucket.partition_point(|s| s.fp() < fp);
        for s in bucket[start..].iter_mut().take_while(|s| s.fp() == fp) {
            s.tag |= INTACT;
        }
    }

    /// Where `id` is, if some index file lists it (after `finish`).
    pub fn find(&self, id: &Id) -> Option<Found> {
        let fp = self.fingerprint(id);
        let bucket = &self.buckets[bucket_of(fp)];
        let start = bucket.partition_point(|s| s.fp() < fp);
        let mut same = bucket[start..].iter().take_while(|s| s.fp() == fp);
        let first = same.next()?;
        let intact = first.tag & INTACT != 0 || same.any(|s| s.tag & INTACT != 0);
        Some(Found {
            pack: self.packs[first.listing() as usize],
            listing: first.listing(),
            intact,
        })
    }

    /// The index entry a restore would read tree `id` with; `None` when the
    /// first listing of `id` records it as something other than a tree.
    pub fn tree_entry(&self, id: &Id, found: &Found) -> Option<&BlobEntry> {
        self.trees
            .get(id)
            .filter(|t| t.listing == found.listing)
            .map(|t| &t.entry)
    }

    fn fingerprint(&self, id: &Id) -> u64 {
        self.key.hash_one(id.0)
    }
}

fn bucket_of(fp: u64) -> usize {
    (fp >> (64 - BUCKET_BITS)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::Compression;

    fn entry(id: Id, kind: BlobKind, offset: u64) -> BlobEntry {
        BlobEntry {
            id,
            kind,
            offset,
            length: 10,
            raw_length: 10,
            compression: Compression::None,
        }
    }

    fn pack(id: Id, blobs: Vec<BlobEntry>) -> IndexPack {
        IndexPack {
            id,
            size: 100,
            blobs,
        }
    }

    #[test]
    fn first_listing_wins_and_any_intact_listing_counts() {
        let (p1, p2, a, b, t) = (
            Id::random(),
            Id::random(),
            Id::random(),
            Id::random(),
            Id::random(),
        );
        let mut l = Locations::default();
        l.add_pack(&pack(p1, vec![entry(a, BlobKind::Data, 0)]))
            .unwrap();
        l.add_pack(&pack(
            p2,
            vec![
                entry(a, BlobKind::Data, 0),
                entry(b, BlobKind::Data, 10),
                entry(t, BlobKind::Tree, 20),
            ],
        ))
        .unwrap();
        l.finish();
        assert!(l.find(&Id::random()).is_none());
        let fa = l.find(&a).unwrap();
        assert_eq!((fa.pack, fa.intact), (p1, false));
        l.mark_intact(&a);
        l.mark_intact(&t);
        let fa = l.find(&a).unwrap();
        assert_eq!((fa.pack, fa.intact), (p1, true));
        let fb = l.find(&b).unwrap();
        assert_eq!((fb.pack, fb.intact), (p2, false));
        let ft = l.find(&t).unwrap();
        assert!(ft.intact);
        assert_eq!(l.tree_entry(&t, &ft).unwrap().offset, 20);
        // A data blob is not read as a tree.
        assert!(l.tree_entry(&b, &fb).is_none());
    }

    #[test]
    fn a_tree_first_listed_as_data_has_no_tree_entry() {
        let (p1, p2, t) = (Id::random(), Id::random(), Id::random());
        let mut l = Locations::default();
        l.add_pack(&pack(p1, vec![entry(t, BlobKind::Data, 0)]))
            .unwrap();
        l.add_pack(&pack(p2, vec![entry(t, BlobKind::Tree, 0)]))
            .unwrap();
        l.finish();
        let ft = l.find(&t).unwrap();
        assert_eq!(ft.pack, p1);
        assert!(l.tree_entry(&t, &ft).is_none());
    }

    #[test]
    fn many_blobs_are_all_found_in_their_pack() {
        let mut l = Locations::default();
        let mut all = Vec::new();
        for _ in 0..20 {
            let p = Id::random();
            let blobs: Vec<BlobEntry> = (0..500)
                .map(|i| entry(Id::random(), BlobKind::Data, i * 10))
                .collect();
            all.extend(blobs.iter().map(|b| (b.id, p)));
            l.add_pack(&pack(p, blobs)).unwrap();
        }
        l.finish();
        for (id, p) in &all {
            assert_eq!(l.find(id).map(|f| f.pack), Some(*p));
        }
    }
}
