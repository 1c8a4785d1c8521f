//! cadang-core: the repository format and the storage backends.
//!
//! This crate knows nothing of agents, controllers, schedules or HTTP. It
//! defines what is written to a store and how to read it back:
//!
//! ```text
//! config                 keyless JSON: format version, chunker, compression, data recipient
//! keys/identity.age      the PD's data identity, wrapped by the custodian's passphrase
//! keys/secret.age        the repository secret (chunk-id key, gear seed), to the data recipient
//! keys/agent-*.json      agents' public keys, each certified by the custodian or controller
//! packs/ab/<blake3>      encrypted chunks and trees, named by the hash of their bytes
//! index/<blake3>         chunk id -> (pack, offset, length), keyless
//! snapshots/<blake3>     signed snapshot: keyless pack list, sealed meta, encrypted body
//! locks/, pending/       concurrency between backups and prune (see `lock`)
//! ```
//! Write order is packs, then index, then snapshot; a crash leaves only
//! unreferenced packs. `docs/format.md` is the full specification.

pub mod backend;
pub mod certify;
pub mod check;
pub mod chunker;
mod compact;
pub mod config;
pub mod error;
pub mod export;
pub mod id;
pub mod index;
pub mod index_cache;
pub mod keys;
pub mod lock;
pub mod pack;
mod pack_read;
pub mod prune;
pub mod random;
pub mod ratelimit;
pub mod repair;
pub mod replicate;
pub mod repository;
pub mod session;
pub mod snapshot;
pub mod tree;

pub use error::{Error, Result};
pub use id::Id;
pub use repository::Repository;
