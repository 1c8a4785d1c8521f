//! The repository config: keyless, readable by anyone with the store.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

pub const FORMAT_NAME: &str = "cadang-repository";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkerParams {
    pub algorithm: String,
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    /// FastCDC normalisation level (0-3).
    pub normalization: u8,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            algorithm: "fastcdc-v2020".into(),
            min_size: 512 * 1024,
            avg_size: 1024 * 1024,
            max_size: 8 * 1024 * 1024,
            normalization: 1,
        }
    }
}

impl ChunkerParams {
    /// fastcdc only catches odd or out-of-range sizes with debug asserts, so
    /// a bad config would silently chunk differently in release builds.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Format(format!("chunker parameters: {m}")));
        if self.algorithm != "fastcdc-v2020" {
            return bad("only fastcdc-v2020 is supported");
        }
        let (min, avg, max) = (self.min_size, self.avg_size, self.max_size);
        if min % 2 != 0 || avg % 2 != 0 || max % 2 != 0 {
            return bad("min, avg and max sizes must be even");
        }
        if !(64..=1_048_576).contains(&min)
            || !(256..=4_194_304).contains(&avg)
            || !(1024..=16_777_216).contains(&max)
        {
            return bad(
                "sizes out of FastCDC's range (min 64 B-1 MiB, avg 256 B-4 MiB, max 1 KiB-16 MiB)",
            );
        }
        if !(min < avg && avg < max) {
            return bad("need min < avg < max");
        }
        if self.normalization > 3 {
            return bad("normalization level must be 0-3");
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompressionParams {
    pub algorithm: String,
    pub level: i32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RepoConfig {
    pub format: String,
    pub version: u32,
    pub id: Id,
    /// The PD (Perangkat Daerah) this repository belongs to.
    pub pd: String,
    pub created: chrono::DateTime<chrono::FixedOffset>,
    pub chunker: ChunkerParams,
    pub compression: CompressionParams,
    /// A pack is sealed once its plaintext reaches this size.
    pub pack_size: u32,
    /// The PD's age X25519 recipient: agents encrypt to it.
    pub data_recipient: String,
}

impl RepoConfig {
    pub fn new(pd: &str, data_recipient: String, chunker: ChunkerParams) -> RepoConfig {
        RepoConfig {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            id: Id::random(),
            pd: pd.to_string(),
            created: chrono::Local::now().fixed_offset(),
            chunker,
            compression: CompressionParams {
                algorithm: "zstd".into(),
                level: 3,
            },
            pack_size: 16 * 1024 * 1024,
            data_recipient,
        }
    }

    pub fn from_json(data: &[u8]) -> Result<RepoConfig> {
        let c: RepoConfig = serde_json::from_slice(data)
            .map_err(|e| Error::Corrupt(format!("config is unreadable: {e}")))?;
        if c.format != FORMAT_NAME {
            return Err(Error::Format(format!(
                "config format {:?} is not {FORMAT_NAME}",
                c.format
            )));
        }
        if c.version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion(c.version));
        }
        c.chunker.validate()?;
        Ok(c)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("serialisable")
    }
}
