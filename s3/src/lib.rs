//! cadang's storage backend for S3-compatible object stores (AWS S3, MinIO,
//! Ceph RGW).
//!
//! A repository lives in one bucket under a key prefix, with the same names
//! as in a local directory (`PREFIX/config`, `PREFIX/keys/NAME`,
//! `PREFIX/packs/ab/NAME`, `PREFIX/index/NAME`, ...):
//!
//! ```text
//! s3://BUCKET/PREFIX?endpoint=https://host:port&region=R&checksums=when-required&path-style=true
//! ```
//!
//! # What it guarantees, and why
//!
//! * **No partial objects.** A PutObject replaces an object atomically: a
//!   reader sees the old object or the whole new one, never a prefix, and an
//!   interrupted PUT leaves nothing. Objects above 32 MiB go up as a
//!   multipart upload, which becomes visible only when it is completed, so
//!   the same holds; failed uploads are aborted so their parts do not linger.
//!   That is the local backend's temp-file-and-rename guarantee, which is why
//!   `list` needs no filtering of temporary names here.
//! * **Durability** is the server's: S3 answers a PUT only once the object
//!   is stored redundantly, so `Ok` from `write` means what it means locally
//!   after fsync.
//! * **`write_new` is create-only** through `If-None-Match: *` (a conditional
//!   PUT, evaluated atomically by the server), preceded by a HEAD so that
//!   servers which ignore the condition still refuse the common case. On a
//!   versioned bucket, where Ceph RGW ignores the condition, the version
//!   just older than the one written is looked up, and if the key already
//!   existed the new version is deleted again and the write refused. See
//!   [`S3Backend`]'s `write_new` for the remaining race on servers that
//!   ignore the condition on unversioned buckets.
//!   When the condition fails, the existing object is compared with the
//!   bytes being written: equal bytes count as success, because that is what
//!   a retried PUT whose first answer was lost finds.
//! * **`read_range` never returns a short read**: S3 answers a range that
//!   runs past the end with the bytes it has, and this backend turns that
//!   into an error as the contract asks.
//! * **Bounded memory**: one call holds at most the one object it reads or
//!   writes; multipart parts are slices of the caller's buffer.
//! * **Credentials never come from the URL** (it ends up in process lists
//!   and logs): the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`), then the shared credentials file
//!   (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, profile
//!   `AWS_PROFILE`). The EC2 metadata service is never asked, because off
//!   EC2 it only hangs.
//!
//! # Object Lock, versioning and what `delete` means
//!
//! `write_retained` puts an object in COMPLIANCE mode with a retain-until
//! date and a Content-MD5 (S3 demands a checksum on Object Lock PUTs even
//! in `checksums=when-required` mode; MD5 is the one every server knows).
//! Retained objects always go up in one PUT, up to 5 GiB
//! ([`RETAINED_PUT_LIMIT`]): packs are about 16 MiB, so multipart (a
//! checksum per part) is not needed. `retained_until` reads the date from a
//! HEAD (some servers lack GetObjectRetention).
//!
//! Object Lock requires a versioned bucket, and there a plain DeleteObject
//! only adds a delete marker: it answers "success" for a locked object and
//! merely hides it. cadang never wants that, so **`delete` removes the
//! current version by its version id** (taken from a HEAD), then any older
//! version that becomes current, until the key is gone. A locked version is
//! refused by the server with AccessDenied; the HEAD's retention date (or
//! legal hold) turns that into `BackendError::Locked` with the date, which
//! prune reports as "kept". On a bucket without versioning the HEAD carries
//! no version id and a plain DeleteObject is sent, as before. Versions that
//! were already hidden behind a delete marker (by other tools) are left to
//! the bucket's lifecycle rules (`NoncurrentVersionExpiration`).
//!
//! # Which checksum mode
//!
//! Since 2025 the AWS SDK adds a CRC32 checksum to every upload, sent as a
//! trailer of an `aws-chunked` body. **Ceph RGW 18 (Reef) and MinIO releases
//! before 2024 reject that** (`XAmzContentSHA256Mismatch` or a signature
//! error). For them add `checksums=when-required` to the URL: checksums are
//! then only sent and checked where the operation demands one. Integrity
//! does not depend on it: every object cadang stores is authenticated by its
//! own encryption and hashes. Keep the default for AWS, current MinIO and
//! Ceph RGW 19+.
//!
//! # Payload signing
//!
//! Uploads are sent with `UNSIGNED-PAYLOAD`: SigV4 still signs the request
//! (who may write where), but neither side hashes the body with SHA-256,
//! which on a two-core agent cost as much CPU as the backup's own hashing.
//! The body's integrity is checked anyway: every object cadang stores is
//! named by its BLAKE3 hash and verified on every read, check and
//! replication; TLS protects it in transit, and by default the SDK's CRC32
//! trailer too.
//!
//! # Addressing and trust
//!
//! With an `endpoint` the backend uses path-style URLs (`host/bucket/key`),
//! which MinIO and Ceph RGW serve without wildcard DNS; without one it talks
//! to AWS with virtual-hosted URLs. `path-style=` overrides either. TLS uses
//! rustls with the system's trust store (`SSL_CERT_FILE` works), so a private
//! CA is trusted by installing it there.

mod backend;
mod client;
mod create_only;
mod errors;
mod multipart;
mod open;
mod requests;
mod retention;
mod throttle;
mod url;

pub use backend::{S3Backend, SINGLE_PUT_LIMIT};
pub use client::{S3Options, StaticCredentials};
pub use multipart::{part_size, PART_SIZE};
pub use open::{open_store, open_store_with, standard_wrap};
pub use retention::RETAINED_PUT_LIMIT;
pub use url::{S3Url, UrlError};
