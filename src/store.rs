//! The one place a `--repo`/`--from`/`--to` argument becomes a store.
//!
//! The repository-format crate knows only the `Backend` trait; which
//! implementations exist is the binary's business. Every store goes through
//! `cadang_s3::open_store_with`, which opens the directory or bucket and
//! wraps it with `cadang_core::backend::wrap_backend` (retries, pacing, and
//! the test-only fault plan of `CADANG_FAULTS`).

use std::sync::Arc;

use anyhow::Result;
use cadang_core::backend::{Backend, WrapOptions};
use cadang_core::ratelimit::RateLimiter;

pub fn open_store(url: &str) -> Result<Arc<dyn Backend>> {
    Ok(cadang_s3::open_store(url, None)?)
}

/// Like [`open_store`], with every write paced by `limit` (`--bwlimit`): in
/// 64 KiB slices by the S3 client, file by file for a directory.
pub fn open_store_paced(url: &str, limit: Arc<RateLimiter>) -> Result<Arc<dyn Backend>> {
    let wrap = WrapOptions {
        write_limit: Some(limit),
        ..cadang_s3::standard_wrap(url)?
    };
    Ok(cadang_s3::open_store_with(url, None, &wrap)?)
}
