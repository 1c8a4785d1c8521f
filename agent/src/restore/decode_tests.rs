//! `decode_chunk`, the per-chunk checks of phase 3: both storage forms give
//! the chunk back byte for byte, buffers are reused without leaking one
//! chunk's bytes into the next, and every altered chunk is still refused
//! with the messages the restore reports.

use cadang_core::keys::RepoSecret;
use cadang_core::pack::{BlobEntry, BlobKind, Compression};

use super::decode::decode_chunk;

fn zstd_ctx() -> zstd::bulk::Decompressor<'static> {
    zstd::bulk::Decompressor::new().unwrap()
}

fn entry(secret: &RepoSecret, raw: &[u8], stored: &[u8], compression: Compression) -> BlobEntry {
    BlobEntry {
        id: secret.chunk_id(raw),
        kind: BlobKind::Data,
        offset: 0,
        length: stored.len() as u32,
        raw_length: raw.len() as u32,
        compression,
    }
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn uncompressed_chunk_is_handed_over_without_a_copy_and_the_buffers_swap() {
    let secret = RepoSecret::generate();
    let raw = noise(200_000, 1);
    let e = entry(&secret, &raw, &raw, Compression::None);
    let mut stored = raw.clone();
    let stored_ptr = stored.as_ptr();
    // A spare buffer still holding an older chunk's bytes.
    let spare = noise(300_000, 2);
    let got = decode_chunk(&mut zstd_ctx(), &mut stored, &e, &secret, spare).unwrap();
    assert_eq!(got, raw);
    assert_eq!(
        got.as_ptr(),
        stored_ptr,
        "the stored blob's buffer is the chunk"
    );
    assert!(
        stored.is_empty(),
        "the spare buffer comes back empty for the next blob"
    );
    assert!(
        stored.capacity() >= 300_000,
        "the spare buffer is reused, not dropped"
    );
}

#[test]
fn compressed_chunk_decodes_into_a_reused_buffer_of_the_right_length() {
    let secret = RepoSecret::generate();
    let raw: Vec<u8> = b"INSERT INTO t VALUES (1, 'abc');\n".repeat(5000);
    let mut stored = zstd::bulk::compress(&raw, 3).unwrap();
    let e = entry(&secret, &raw, &stored, Compression::Zstd);
    let spare = noise(1_000_000, 3); // longer than the chunk: cleared first
    let got = decode_chunk(&mut zstd_ctx(), &mut stored, &e, &secret, spare).unwrap();
    assert_eq!(got, raw);
}

#[test]
fn altered_chunks_are_refused_with_the_same_messages_in_both_forms() {
    let secret = RepoSecret::generate();
    let raw = noise(100_000, 4);
    let mut z = zstd_ctx();

    // Stored as is: one flipped byte no longer hashes to the chunk's id.
    let e = entry(&secret, &raw, &raw, Compression::None);
    let mut bad = raw.clone();
    bad[5000] ^= 1;
    let err = decode_chunk(&mut z, &mut bad, &e, &secret, Vec::new()).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not match its id (content altered)"),
        "{err}"
    );

    // Compressed: a valid frame of other content, same lengths.
    let mut other = raw.clone();
    other[0] ^= 1;
    let mut stored = zstd::bulk::compress(&other, 3).unwrap();
    let mut e = entry(&secret, &raw, &stored, Compression::Zstd);
    e.length = stored.len() as u32;
    let err = decode_chunk(&mut z, &mut stored, &e, &secret, Vec::new()).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not match its id (content altered)"),
        "{err}"
    );

    // A stored length other than the entry's, and a raw length that lies.
    let mut short = raw[..99_000].to_vec();
    let err = decode_chunk(&mut z, &mut short, &e, &secret, Vec::new()).unwrap_err();
    assert!(err.to_string().contains("but its entry says"), "{err}");
    let mut e = entry(&secret, &raw, &raw, Compression::None);
    e.raw_length += 1;
    let mut same = raw.clone();
    let err = decode_chunk(&mut z, &mut same, &e, &secret, Vec::new()).unwrap_err();
    assert!(err.to_string().contains("lengths differ"), "{err}");
}

#[test]
fn a_frame_inflating_past_its_claimed_length_is_an_error_not_an_allocation() {
    let secret = RepoSecret::generate();
    let raw = vec![0u8; 4_000_000];
    let mut stored = zstd::bulk::compress(&raw, 3).unwrap();
    let mut e = entry(&secret, &raw, &stored, Compression::Zstd);
    e.raw_length = 1000;
    let err = decode_chunk(&mut zstd_ctx(), &mut stored, &e, &secret, Vec::new()).unwrap_err();
    assert!(err.to_string().contains("does not decompress"), "{err}");
}
