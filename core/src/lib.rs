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
//!
//! Two halves: [`format`] encodes and decodes what is on the store (config,
//! keys, chunking, packs, index files, trees, snapshots), and [`ops`] are the
//! operations on it (backup sessions and the local chunk index, locks,
//! check, prune, replicate, repair, export). [`backend`] is the storage
//! trait with its decorators (retries, rate limits, fault injection) and
//! [`repository`] the handle that reads a store through it.

pub mod backend;
pub mod error;
pub mod format;
pub mod ops;
pub mod random;
pub mod ratelimit;
pub mod repository;

// The format's and the operations' modules by their short names, as every
// caller has always named them (`cadang_core::pack`, `cadang_core::prune`).
pub use format::{certify, chunker, config, id, index, keys, pack, snapshot, tree};
use format::{compact, pack_read};
pub use ops::{check, export, index_cache, lock, prune, repair, replicate, session};

pub use error::{Error, Result};
pub use id::Id;
pub use repository::Repository;
