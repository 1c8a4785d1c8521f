//! Packs: many compressed chunks in one age stream, named by the BLAKE3 of
//! the stored bytes.
//!
//! ```text
//! pack    = AGE || TRAILER || u32_le(len(TRAILER)) || "CDGPACK1"
//! AGE     = age (X25519, to the PD's data recipient) of blob_0 || blob_1 || ...
//! TRAILER = JSON {"version":1,"age_length":N,"blobs":[BlobEntry, ...]}
//! ```
//! One age stream per pack means one X25519 operation per several MiB, not
//! per chunk. The trailer is plaintext on purpose: it holds only keyed chunk
//! ids and sizes (what the index holds anyway), and lets a keyless agent
//! re-index packs a killed backup uploaded but never indexed.

use std::io::{Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;
use crate::keys::{DataIdentity, DataRecipient, RepoSecret};

pub const MAGIC: &[u8; 8] = b"CDGPACK1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    Data,
    Tree,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Zstd,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    pub id: Id,
    #[serde(rename = "type")]
    pub kind: BlobKind,
    /// Offset of the stored blob in the pack's plaintext stream.
    pub offset: u64,
    /// Stored (possibly compressed) length.
    pub length: u32,
    /// Length of the chunk itself.
    pub raw_length: u32,
    pub compression: Compression,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PackTrailer {
    pub version: u32,
    pub age_length: u64,
    pub blobs: Vec<BlobEntry>,
}

/// A pack being filled. Blobs are compressed and encrypted as they arrive,
/// so a pack never sits in memory twice.
pub struct PackBuilder {
    kind: BlobKind,
    recipient: DataRecipient,
    compressor: zstd::bulk::Compressor<'static>,
    writer: Option<age::stream::StreamWriter<Vec<u8>>>,
    plain_len: u64,
    blobs: Vec<BlobEntry>,
}

pub struct SealedPack {
    pub id: Id,
    pub data: Vec<u8>,
    pub blobs: Vec<BlobEntry>,
}

impl PackBuilder {
    pub fn new(kind: BlobKind, recipient: DataRecipient, level: i32) -> Result<PackBuilder> {
        Ok(PackBuilder {
            kind,
            recipient,
            compressor: zstd::bulk::Compressor::new(level)
                .map_err(|e| Error::Crypto(format!("zstd: {e}")))?,
            writer: None,
            plain_len: 0,
            blobs: Vec::new(),
        })
    }

    pub fn kind(&self) -> BlobKind {
        self.kind
    }

    pub fn plain_len(&self) -> u64 {
        self.plain_len
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Adds one chunk. Compression is kept only when it saves at least 1/64,
    /// so scans and media cost no decompression on restore. Large chunks are
    /// first sampled: compressing 64 KiB tells whether zstd will gain
    /// anything, which spares the full pass on already-compressed data.
    pub fn add(&mut self, id: Id, raw: &[u8]) -> Result<u32> {
        let compressed = if looks_incompressible(raw) {
            None
        } else {
            Some(
                self.compressor
                    .compress(raw)
                    .map_err(|e| Error::Crypto(format!("zstd: {e}")))?,
            )
        };
        let (bytes, compression): (&[u8], _) = match &compressed {
            Some(c) if c.len() + raw.len() / 64 < raw.len() => (c, Compression::Zstd),
            _ => (raw, Compression::None),
        };
        if self.writer.is_none() {
            self.writer = Some(self.recipient.stream(Vec::with_capacity(1 << 20))?);
        }
        let w = self.writer.as_mut().expect("just set");
        w.write_all(bytes).map_err(Error::crypto)?;
        self.blobs.push(BlobEntry {
            id,
            kind: self.kind,
            offset: self.plain_len,
            length: bytes.len() as u32,
            raw_length: raw.len() as u32,
            compression,
        });
        self.plain_len += bytes.len() as u64;
        Ok(bytes.len() as u32)
    }

    /// Finishes the age stream and appends the trailer. Returns `None` when empty.
    pub fn seal(&mut self) -> Result<Option<SealedPack>> {
        let Some(w) = self.writer.take() else {
            return Ok(None);
        };
        let mut data = w.finish().map_err(Error::crypto)?;
        let blobs = std::mem::take(&mut self.blobs);
        self.plain_len = 0;
        let trailer = PackTrailer {
            version: 1,
            age_length: data.len() as u64,
            blobs,
        };
        let t = crate::compact::encode(&trailer);
        data.extend_from_slice(&t);
        data.extend_from_slice(&(t.len() as u32).to_le_bytes());
        data.extend_from_slice(MAGIC);
        Ok(Some(SealedPack {
            id: Id::of_bytes(&data),
            data,
            blobs: trailer.blobs,
        }))
    }
}

const SAMPLE: usize = 64 * 1024;

/// True when a sample from the middle of a large chunk does not shrink by
/// 3% at zstd's fastest level: such chunks are stored uncompressed.
fn looks_incompressible(raw: &[u8]) -> bool {
    if raw.len() < 4 * SAMPLE {
        return false;
    }
    let start = raw.len() / 2 - SAMPLE / 2;
    let sample = &raw[start..start + SAMPLE];
    match zstd::bulk::compress(sample, 1) {
        Ok(c) => c.len() > SAMPLE - SAMPLE / 32,
        Err(_) => false,
    }
}

/// Reads the plaintext trailer of a whole stored pack.
pub fn parse_trailer(stored: &[u8]) -> Result<PackTrailer> {
    let n = stored.len();
    if n < 12 || &stored[n - 8..] != MAGIC {
        return Err(Error::Corrupt(
            "pack has no cadang trailer (truncated?)".into(),
        ));
    }
    let tlen = u32::from_le_bytes(stored[n - 12..n - 8].try_into().expect("4 bytes")) as usize;
    if tlen + 12 > n {
        return Err(Error::Corrupt(
            "pack trailer length is beyond the pack".into(),
        ));
    }
    let t: PackTrailer = crate::compact::decode(&stored[n - 12 - tlen..n - 12], "pack trailer")?;
    if t.age_length as usize != n - 12 - tlen {
        return Err(Error::Corrupt(
            "pack trailer does not match the pack's size".into(),
        ));
    }
    check_trailer_layout(&t.blobs, t.age_length).map_err(Error::Corrupt)?;
    Ok(t)
}

/// The largest chunk a data blob may hold: the chunker's largest maximum
/// (see `ChunkerParams::validate`). A stored length beyond it is hostile.
pub const MAX_DATA_BLOB: u32 = 16 * 1024 * 1024;
/// The largest tree blob (one directory's listing) a reader accepts.
pub const MAX_TREE_BLOB: u32 = 256 * 1024 * 1024;

/// Checks one entry's numbers against the age part that holds it
/// (`age_length` bytes): the blob must end inside the stream (the plaintext
/// is shorter than its ciphertext), with no arithmetic overflow, and its
/// lengths must be possible. Every reader calls this before allocating or
/// slicing by an entry's numbers, so a crafted index or trailer gives an
/// error instead of a huge allocation.
pub fn check_entry(entry: &BlobEntry, age_length: u64) -> std::result::Result<(), String> {
    let end = entry.offset.checked_add(entry.length as u64);
    if end.is_none_or(|end| end > age_length) {
        return Err(format!(
            "blob {} claims bytes {}..+{} of a pack whose encrypted part is only {age_length} bytes",
            entry.id, entry.offset, entry.length
        ));
    }
    let max = match entry.kind {
        BlobKind::Data => MAX_DATA_BLOB,
        BlobKind::Tree => MAX_TREE_BLOB,
    };
    if entry.raw_length > max {
        return Err(format!(
            "blob {} claims a length of {} bytes, more than any {:?} blob may have ({max})",
            entry.id, entry.raw_length, entry.kind
        ));
    }
    if entry.compression == Compression::None && entry.raw_length != entry.length {
        return Err(format!(
            "blob {} is stored uncompressed but its lengths differ ({} stored, {} raw)",
            entry.id, entry.length, entry.raw_length
        ));
    }
    Ok(())
}

/// A trailer lists its blobs as the builder wrote them: back to back from
/// offset 0, each inside the age part.
pub fn check_trailer_layout(
    blobs: &[BlobEntry],
    age_length: u64,
) -> std::result::Result<(), String> {
    let mut next = 0u64;
    for e in blobs {
        check_entry(e, age_length)?;
        if e.offset != next {
            return Err(format!(
                "the trailer puts blob {} at offset {}, but the previous blob ends at {next}",
                e.id, e.offset
            ));
        }
        next += e.length as u64; // cannot overflow: check_entry bounded it
    }
    Ok(())
}

/// Length of the plaintext of an age part of `age_length` bytes whose
/// payload starts at `payload_start`; `None` when the sizes are impossible.
pub fn plaintext_len(payload_start: u64, age_length: u64) -> Option<u64> {
    let body = age_length.checked_sub(payload_start.checked_add(NONCE)?)?;
    let segments = body.div_ceil(SEGMENT_STORED).max(1);
    body.checked_sub(segments * 16)
}

impl PackTrailer {
    /// The trailer's stored encoding (zstd-compressed JSON).
    pub fn encode(&self) -> Vec<u8> {
        crate::compact::encode(self)
    }
}

/// Decrypts the whole plaintext stream of a pack.
pub fn decrypt_pack(stored: &[u8], identity: &DataIdentity) -> Result<Vec<u8>> {
    let t = parse_trailer(stored)?;
    identity.decrypt(&stored[..t.age_length as usize])
}

/// The decrypted stream of a whole stored pack, decrypted segment by segment
/// (64 KiB) as it is read, so that a reader never holds a pack's plaintext.
pub fn open_stream<'a>(
    stored: &'a [u8],
    identity: &DataIdentity,
) -> Result<age::stream::StreamReader<std::io::Cursor<&'a [u8]>>> {
    let t = parse_trailer(stored)?;
    identity.decrypt_reader(std::io::Cursor::new(&stored[..t.age_length as usize]))
}

/// The decrypted stream of a pack's age part (the bytes before the trailer).
pub fn open_age_stream<'a>(
    age_part: &'a [u8],
    identity: &DataIdentity,
) -> Result<age::stream::StreamReader<std::io::Cursor<&'a [u8]>>> {
    identity.decrypt_reader(std::io::Cursor::new(age_part))
}

/// age's STREAM: 64 KiB plaintext segments, each followed by a 16-byte tag,
/// after the header and a 16-byte nonce.
const SEGMENT: u64 = 64 * 1024;
const SEGMENT_STORED: u64 = SEGMENT + 16;
const NONCE: u64 = 16;
/// Ranges closer than this are read as one.
pub const MERGE_GAP: u64 = 4 * SEGMENT_STORED;

/// Where the payload (nonce, then segments) starts in an age file whose
/// first bytes are `head`: after the header's MAC line (`--- <mac>\n`).
pub fn age_payload_start(head: &[u8]) -> Option<u64> {
    let mac = head.windows(5).position(|w| w == b"\n--- ")? + 5;
    let end = head[mac..].iter().position(|&b| b == b'\n')? + mac + 1;
    Some(end as u64)
}

/// The byte ranges of an age part (of `age_length` bytes, payload from
/// `payload_start`) that hold the segments of `entries`, merged when they
/// are less than [`MERGE_GAP`] apart (one request beats two over a network).
/// Reading only these, into a buffer otherwise zero, is enough to decrypt
/// those entries.
pub fn segment_ranges(
    entries: &[BlobEntry],
    payload_start: u64,
    age_length: u64,
) -> Vec<(u64, u64)> {
    let first_segment = payload_start + NONCE;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut sorted: Vec<&BlobEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.offset);
    for e in sorted {
        // Entries are checked against the pack before this is called; an
        // impossible one is skipped here rather than overflow.
        let Some(last) = e.offset.checked_add(e.length as u64) else {
            continue;
        };
        if e.length == 0 || last > age_length {
            continue;
        }
        let s0 = e.offset / SEGMENT;
        let s1 = (last - 1) / SEGMENT;
        let start = first_segment.saturating_add(s0.saturating_mul(SEGMENT_STORED));
        let end = first_segment
            .saturating_add((s1 + 1).saturating_mul(SEGMENT_STORED))
            .min(age_length);
        if start >= end {
            continue;
        }
        match ranges.last_mut() {
            Some(last) if start <= last.1 + MERGE_GAP => last.1 = last.1.max(end),
            _ => ranges.push((start, end)),
        }
    }
    ranges
}

/// The range of the last segment of an age part, which age decrypts to
/// authenticate the stream's length when a reader seeks to a segment start.
pub fn last_segment_range(payload_start: u64, age_length: u64) -> Option<(u64, u64)> {
    let first = payload_start + NONCE;
    let n = (age_length.checked_sub(first)?).div_ceil(SEGMENT_STORED);
    let start = first + n.checked_sub(1)? * SEGMENT_STORED;
    Some((start, age_length))
}

/// Reads the stored bytes of `entry` from a pack stream into `buf`. Reading
/// blobs in offset order decrypts each segment once.
pub fn read_blob<'b, R: Read + Seek>(
    stream: &mut R,
    entry: &BlobEntry,
    buf: &'b mut Vec<u8>,
) -> Result<&'b [u8]> {
    seek_to(stream, entry)?;
    buf.clear();
    read_at_most(stream, entry, buf)?;
    Ok(buf)
}

/// Preallocation for one blob read; beyond it the buffer grows only as the
/// stream really yields bytes, so a crafted length costs no memory.
const PREALLOC: u64 = MAX_DATA_BLOB as u64;

/// Reads exactly `entry.length` bytes, failing cleanly when the stream ends
/// sooner (the entry lies beyond its pack).
/// No pack's plaintext comes near this (packs are sealed at a `u32` size);
/// an entry beyond it is refused before age's seek arithmetic sees it.
const MAX_PLAINTEXT: u64 = 1 << 40;

/// Seeks a pack stream to a blob, refusing offsets no pack can have.
fn seek_to<R: Seek>(stream: &mut R, entry: &BlobEntry) -> Result<()> {
    let end = entry.offset.checked_add(entry.length as u64);
    if end.is_none_or(|e| e > MAX_PLAINTEXT) {
        return Err(Error::Corrupt(format!(
            "blob {} claims offset {}, beyond any pack",
            entry.id, entry.offset
        )));
    }
    stream
        .seek(SeekFrom::Start(entry.offset))
        .map_err(|e| Error::Corrupt(format!("pack stream: {e}")))?;
    Ok(())
}

fn read_at_most<R: Read>(stream: &mut R, entry: &BlobEntry, buf: &mut Vec<u8>) -> Result<()> {
    let want = entry.length as u64;
    buf.reserve(want.min(PREALLOC) as usize);
    stream
        .take(want)
        .read_to_end(buf)
        .map_err(|e| Error::Corrupt(format!("pack stream: {e}")))?;
    if buf.len() as u64 != want {
        return Err(Error::Corrupt(format!(
            "blob {} lies beyond the end of its pack ({} of {want} bytes there)",
            entry.id,
            buf.len()
        )));
    }
    Ok(())
}

/// Decrypts only the STREAM segments that hold `entry`. `age_part` is the age
/// prefix of the pack (the part before the trailer).
pub fn decrypt_blob_range(
    age_part: &[u8],
    identity: &DataIdentity,
    entry: &BlobEntry,
) -> Result<Vec<u8>> {
    let mut r = identity.decrypt_reader(std::io::Cursor::new(age_part))?;
    seek_to(&mut r, entry)?;
    let mut buf = Vec::new();
    read_at_most(&mut r, entry, &mut buf)?;
    Ok(buf)
}

/// Turns a stored blob back into its chunk and checks its id when the
/// repository secret is at hand.
pub fn decode_blob(
    stored: &[u8],
    entry: &BlobEntry,
    secret: Option<&RepoSecret>,
) -> Result<Vec<u8>> {
    // The entry's numbers come from the store: check them before they size
    // anything (the age part is at least as long as the stored blob).
    if stored.len() as u64 != entry.length as u64 {
        return Err(Error::Corrupt(format!(
            "blob {} is {} bytes, but its entry says {}",
            entry.id,
            stored.len(),
            entry.length
        )));
    }
    check_entry(entry, u64::MAX).map_err(Error::Corrupt)?;
    let raw = match entry.compression {
        Compression::None => stored.to_vec(),
        Compression::Zstd => decompress_bounded(stored, entry)?,
    };
    if raw.len() != entry.raw_length as usize {
        return Err(Error::Corrupt(format!(
            "blob {} has the wrong length",
            entry.id
        )));
    }
    if let Some(s) = secret {
        if s.chunk_id(&raw) != entry.id {
            return Err(Error::Corrupt(format!(
                "blob {} does not match its id (content altered)",
                entry.id
            )));
        }
    }
    Ok(raw)
}

/// Decompresses a blob into a buffer that grows with the real output (never
/// sized up front by the claimed length), stopping one byte past it.
fn decompress_bounded(stored: &[u8], entry: &BlobEntry) -> Result<Vec<u8>> {
    let fail =
        |e: std::io::Error| Error::Corrupt(format!("blob {} does not decompress: {e}", entry.id));
    let want = entry.raw_length as u64;
    let mut out = Vec::with_capacity(want.min(PREALLOC) as usize);
    // A slice is already a BufRead: no extra buffer, no copy of the input.
    zstd::stream::read::Decoder::with_buffer(stored)
        .map_err(fail)?
        .take(want + 1)
        .read_to_end(&mut out)
        .map_err(fail)?;
    Ok(out)
}

/// Slices a blob out of a decrypted pack, checking bounds.
pub fn blob_slice<'a>(plain: &'a [u8], entry: &BlobEntry) -> Result<&'a [u8]> {
    let beyond = || Error::Corrupt(format!("blob {} lies beyond its pack", entry.id));
    let start = usize::try_from(entry.offset).map_err(|_| beyond())?;
    let end = start
        .checked_add(entry.length as usize)
        .ok_or_else(beyond)?;
    plain.get(start..end).ok_or_else(beyond)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each blob decrypts from a buffer holding only the ranges
    /// `segment_ranges` and `last_segment_range` name, zero elsewhere.
    #[test]
    fn blobs_decrypt_from_their_segment_ranges_alone() {
        let identity = DataIdentity::generate();
        let secret = RepoSecret::generate();
        let mut b = PackBuilder::new(BlobKind::Data, identity.recipient(), 3).unwrap();
        let chunks: Vec<Vec<u8>> = (0..12u32)
            .map(|n| {
                (0..(30_000 + n * 41_000))
                    .map(|i| (i.wrapping_mul(2654435761).wrapping_add(n) >> 13) as u8)
                    .collect()
            })
            .collect();
        for c in &chunks {
            b.add(secret.chunk_id(c), c).unwrap();
        }
        let sealed = b.seal().unwrap().unwrap();
        let t = parse_trailer(&sealed.data).unwrap();
        let age = &sealed.data[..t.age_length as usize];
        let payload = age_payload_start(&age[..4096]).unwrap();
        for (i, e) in t.blobs.iter().enumerate() {
            let mut sparse = vec![0u8; age.len()];
            sparse[..(payload + NONCE) as usize]
                .copy_from_slice(&age[..(payload + NONCE) as usize]);
            let mut ranges = segment_ranges(std::slice::from_ref(e), payload, t.age_length);
            ranges.extend(last_segment_range(payload, t.age_length));
            let copied: u64 = ranges.iter().map(|(a, b)| b - a).sum();
            assert!(
                copied < t.age_length / 2,
                "blob {i}: {copied} of {}",
                t.age_length
            );
            for (a, b) in ranges {
                sparse[a as usize..b as usize].copy_from_slice(&age[a as usize..b as usize]);
            }
            let mut stream = open_age_stream(&sparse, &identity).unwrap();
            let mut buf = Vec::new();
            let stored = read_blob(&mut stream, e, &mut buf).unwrap();
            assert_eq!(
                decode_blob(stored, e, Some(&secret)).unwrap(),
                chunks[i],
                "blob {i}"
            );
        }
    }

    #[test]
    fn pack_round_trip_and_integrity() {
        let identity = DataIdentity::generate();
        let secret = RepoSecret::generate();
        let mut b = PackBuilder::new(BlobKind::Data, identity.recipient(), 3).unwrap();
        let text = b"Peraturan Bupati tentang SPBE ".repeat(2000);
        let noise: Vec<u8> = (0..50_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for chunk in [&text[..], &noise[..]] {
            b.add(secret.chunk_id(chunk), chunk).unwrap();
        }
        let sealed = b.seal().unwrap().unwrap();
        assert_eq!(sealed.id, Id::of_bytes(&sealed.data));
        assert_eq!(sealed.blobs[0].compression, Compression::Zstd);
        // The plaintext must not appear in the stored pack.
        assert!(!sealed.data.windows(20).any(|w| w == &text[..20]));

        let t = parse_trailer(&sealed.data).unwrap();
        let plain = decrypt_pack(&sealed.data, &identity).unwrap();
        for (e, want) in t.blobs.iter().zip([&text[..], &noise[..]]) {
            let got = decode_blob(blob_slice(&plain, e).unwrap(), e, Some(&secret)).unwrap();
            assert_eq!(got, want);
            let ranged =
                decrypt_blob_range(&sealed.data[..t.age_length as usize], &identity, e).unwrap();
            assert_eq!(decode_blob(&ranged, e, Some(&secret)).unwrap(), want);
        }

        let other = DataIdentity::generate();
        assert!(matches!(
            decrypt_pack(&sealed.data, &other),
            Err(Error::WrongKey)
        ));
        let mut truncated = sealed.data.clone();
        truncated.truncate(truncated.len() - 3);
        assert!(parse_trailer(&truncated).is_err());
    }
}
