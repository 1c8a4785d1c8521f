//! zstd-compressed JSON, the encoding of pack trailers and index files.
//!
//! Both are lists of chunk ids (random hex, which JSON doubles in size) and
//! numbers; compressed, they cost about what restic's binary pack headers
//! and compressed index cost, so metadata never makes a cadang repository
//! bigger than restic's for the same data.

use std::io::Read;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// zstd level: high enough to squeeze the hex, fast on the ~MiB index files.
const LEVEL: i32 = 10;
/// No trailer or index file inflates beyond this; more means a hostile file.
const MAX_DECODED: u64 = 512 * 1024 * 1024;
/// Nor beyond this multiple of its stored size (plus a little): chunk ids
/// are random, so real files shrink about 3-4 times; a zstd "bomb" that
/// would inflate a few KiB into hundreds of MiB is refused before it costs
/// that memory.
const MAX_RATIO: u64 = 64;
const SMALL: u64 = 1024 * 1024;

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let json = serde_json::to_vec(value).expect("serialisable");
    zstd::bulk::compress(&json, LEVEL).expect("zstd compresses into a growing buffer")
}

/// Decodes `data`; `what` names it in errors ("index/ab12…", "pack … trailer").
pub(crate) fn decode<T: DeserializeOwned>(data: &[u8], what: &str) -> Result<T> {
    let corrupt = |e: String| Error::Corrupt(format!("{what} is unreadable: {e}"));
    let decoder = zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(e.to_string()))?;
    let limit = (data.len() as u64)
        .saturating_mul(MAX_RATIO)
        .saturating_add(SMALL)
        .min(MAX_DECODED);
    let mut json = Vec::new();
    decoder
        .take(limit + 1)
        .read_to_end(&mut json)
        .map_err(|e| corrupt(e.to_string()))?;
    if json.len() as u64 > limit {
        return Err(corrupt(format!(
            "it inflates beyond {limit} bytes, far more than a real one ({} bytes stored)",
            data.len()
        )));
    }
    serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let v: Vec<String> = (0..500).map(|i| format!("{:064x}", i * 7919)).collect();
        let data = encode(&v);
        assert!(data.len() < serde_json::to_vec(&v).unwrap().len() / 2);
        assert_eq!(decode::<Vec<String>>(&data, "t").unwrap(), v);
        let err = decode::<Vec<String>>(&data[..data.len() / 2], "index/x").unwrap_err();
        assert!(err.to_string().contains("index/x is unreadable"), "{err}");
        assert!(decode::<Vec<String>>(b"{\"not\":\"zstd\"}", "t").is_err());
    }
}
