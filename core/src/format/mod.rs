//! The on-store format: what cadang writes to a store and how it is read
//! back: the keyless config, keys and agent certifications, chunking,
//! packs and their trailers, index files, trees and snapshots.
//!
//! These modules encode and decode; the operations that combine them
//! (backup sessions, check, prune, replicate, repair, export) are in
//! [`crate::ops`]. `docs/format.md` is the specification they follow.

pub mod certify;
pub mod chunker;
pub(crate) mod compact;
pub mod config;
pub mod id;
pub mod index;
pub mod keys;
pub mod pack;
pub(crate) mod pack_read;
pub mod snapshot;
pub mod tree;
