//! Phase 3's reading side, for one pack: decrypts it as a stream, decodes
//! and verifies each needed chunk (decompression, length, keyed id) and
//! hands it to the writer thread. Runs on a blocking thread per pack, so two
//! packs decode on two cores while the writer writes.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use cadang_core::keys::{DataIdentity, RepoSecret};
use cadang_core::pack::{self, BlobEntry, Compression};
use cadang_core::{Error, Id};

use super::files::Piece;
use super::plan::{Chunk, Place};
use super::RestoreError;

/// What was read of a pack: all of it, or only the parts the chunks need.
pub(super) enum PackBytes {
    Whole(Vec<u8>),
    /// The age part, zero where nothing was needed.
    AgePart(Vec<u8>),
}

impl PackBytes {
    /// A whole pack's buffer, for the lane to read its next pack into.
    pub(super) fn into_whole(self) -> Option<Vec<u8>> {
        match self {
            PackBytes::Whole(b) => Some(b),
            PackBytes::AgePart(_) => None,
        }
    }
}

/// What decoding one pack did (the writer reports its own problems).
#[derive(Default)]
pub(super) struct PackOutcome {
    /// Bytes handed to the writer (a chunk for two places counts twice).
    pub bytes: u64,
    pub errors: Vec<String>,
    pub damaged: Vec<u32>,
}

/// Up to ten paths of `files[idx]`, for messages.
pub(super) fn list_files(idx: &BTreeSet<u32>, files: &[PathBuf]) -> String {
    let mut names: Vec<String> = idx
        .iter()
        .take(10)
        .map(|&i| files[i as usize].display().to_string())
        .collect();
    if idx.len() > 10 {
        names.push(format!("and {} more", idx.len() - 10));
    }
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn files_of<'c>(chunks: impl IntoIterator<Item = &'c Chunk>) -> BTreeSet<u32> {
    chunks
        .into_iter()
        .flat_map(|c| c.places.iter().map(|p| p.file))
        .collect()
}

/// Where a lane's decoded chunks go, and the buffers it decodes into.
pub(super) struct ToWriter {
    /// Every regular file's path (for messages).
    pub paths: Arc<Vec<PathBuf>>,
    /// One queue per writer thread; file `i` is written by writer
    /// `i % tx.len()`.
    pub tx: Vec<Sender<Piece>>,
    /// Buffers the writer is done with.
    pub spare: Receiver<Vec<u8>>,
}

impl ToWriter {
    /// Hands a chunk to the writer of each of its places' files (a copy
    /// only when a chunk goes to files of different writers).
    fn send(&self, data: Option<Vec<u8>>, places: Vec<Place>) -> Result<(), RestoreError> {
        let n = self.tx.len().max(1);
        let shard = |p: &Place| p.file as usize % n;
        let first = places.first().map(shard).unwrap_or(0);
        if places.iter().all(|p| shard(p) == first) {
            return self.tx[first]
                .send(Piece { data, places })
                .map_err(|_| writer_gone());
        }
        for (k, tx) in self.tx.iter().enumerate() {
            let mine: Vec<Place> = places.iter().copied().filter(|p| shard(p) == k).collect();
            if !mine.is_empty() {
                tx.send(Piece {
                    data: data.clone(),
                    places: mine,
                })
                .map_err(|_| writer_gone())?;
            }
        }
        Ok(())
    }
}

/// The writer is gone: only a failure of the writer thread gets here.
fn writer_gone() -> RestoreError {
    RestoreError::Internal("the file writer stopped".into())
}

/// A pack that could not be read or decrypted: every file with a chunk in
/// it is incomplete; the writer is told so that those files still get their
/// metadata.
pub(super) fn unreadable(
    pack: &Id,
    reason: &str,
    chunks: Vec<Chunk>,
    to: &ToWriter,
) -> Result<PackOutcome, RestoreError> {
    let idx = files_of(&chunks);
    let out = PackOutcome {
        bytes: 0,
        errors: vec![RestoreError::DamagedPack {
            pack: pack.to_hex(),
            reason: reason.into(),
            files: list_files(&idx, &to.paths),
        }
        .to_string()],
        damaged: idx.into_iter().collect(),
    };
    for c in chunks {
        to.send(None, c.places)?;
    }
    Ok(out)
}

/// Decodes the chunks of one pack (sorted by offset) and sends them to the
/// writer. The plaintext is decrypted as the chunks are read, never held
/// whole: a lane holds the stored pack and one chunk.
///
/// `buf` is the lane's buffer for one stored blob, kept from pack to pack:
/// a fresh one per pack grew (and, above glibc's mmap threshold, faulted in)
/// up to the largest chunk every time.
pub(super) fn decode_pack(
    pack: &Id,
    bytes: &PackBytes,
    identity: &DataIdentity,
    chunks: Vec<Chunk>,
    secret: &RepoSecret,
    to: &ToWriter,
    buf: &mut Vec<u8>,
) -> Result<PackOutcome, RestoreError> {
    let stream = match bytes {
        PackBytes::Whole(stored) => pack::open_stream(stored, identity),
        PackBytes::AgePart(age) => pack::open_age_stream(age, identity),
    };
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => return unreadable(pack, &e.to_string(), chunks, to),
    };
    let mut zstd = zstd::bulk::Decompressor::new()
        .map_err(|e| RestoreError::Internal(format!("cannot start a zstd decoder: {e}")))?;
    let mut out = PackOutcome::default();
    for c in chunks {
        let entry = c.loc.entry(c.id);
        let raw = to.spare.try_recv().unwrap_or_default();
        let data = match pack::read_blob(&mut stream, &entry, buf)
            .map(|_| ())
            .and_then(|()| decode_chunk(&mut zstd, buf, &entry, secret, raw))
        {
            Ok(d) => {
                out.bytes += d.len() as u64 * c.places.len() as u64;
                Some(d)
            }
            Err(e) => {
                let idx = files_of([&c]);
                out.errors.push(format!(
                    "chunk {} in pack {pack} is unusable ({e}); these files are incomplete: {}",
                    c.id,
                    list_files(&idx, &to.paths)
                ));
                out.damaged.extend(idx);
                None
            }
        };
        to.send(data, c.places)?;
    }
    Ok(out)
}

/// `pack::decode_blob` with a reused zstd context and output buffer (a
/// fresh context per chunk was 4 % of a many-file restore's CPU), and the
/// same checks: stored and raw lengths as the entry says (the raw length is
/// bounded by `check_entry` before it sizes the buffer), and the content
/// hashes to the chunk's keyed id.
///
/// A chunk stored uncompressed is not copied: `stored` itself becomes the
/// chunk and `raw`'s buffer takes its place for the next blob (incompressible
/// scans and images are a quarter of the dense bench's bytes).
pub(super) fn decode_chunk(
    zstd: &mut zstd::bulk::Decompressor<'static>,
    stored: &mut Vec<u8>,
    entry: &BlobEntry,
    secret: &RepoSecret,
    mut raw: Vec<u8>,
) -> cadang_core::Result<Vec<u8>> {
    if stored.len() as u64 != entry.length as u64 {
        return Err(Error::Corrupt(format!(
            "blob {} is {} bytes, but its entry says {}",
            entry.id,
            stored.len(),
            entry.length
        )));
    }
    pack::check_entry(entry, u64::MAX).map_err(Error::Corrupt)?;
    raw.clear();
    match entry.compression {
        Compression::None => std::mem::swap(stored, &mut raw),
        Compression::Zstd => {
            // The Vec's capacity bounds the output: a frame that inflates
            // past the claimed length is an error, not an allocation.
            raw.reserve(entry.raw_length as usize);
            zstd.decompress_to_buffer(&stored[..], &mut raw)
                .map_err(|e| {
                    Error::Corrupt(format!("blob {} does not decompress: {e}", entry.id))
                })?;
        }
    }
    if raw.len() != entry.raw_length as usize {
        return Err(Error::Corrupt(format!(
            "blob {} has the wrong length",
            entry.id
        )));
    }
    if secret.chunk_id(&raw) != entry.id {
        return Err(Error::Corrupt(format!(
            "blob {} does not match its id (content altered)",
            entry.id
        )));
    }
    Ok(raw)
}
