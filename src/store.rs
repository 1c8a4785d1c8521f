//! The one place a `--repo`/`--from`/`--to` argument becomes a store.
//!
//! The repository-format crate knows only the `Backend` trait; which
//! implementations exist is the binary's business, so the dispatch lives here.

use std::sync::Arc;

use anyhow::Result;
use cadang_core::backend::{open_store as open_local, Backend};

pub fn open_store(url: &str) -> Result<Arc<dyn Backend>> {
    if url.starts_with("s3://") {
        return Ok(Arc::new(cadang_s3::S3Backend::from_url(url)?));
    }
    Ok(Arc::from(open_local(url)?))
}

/// Like [`open_store`], with uploads paced by `limit` in 64 KiB slices when
/// the store is S3. Directories get `None` back: the caller paces files.
pub fn open_store_paced(
    url: &str,
    limit: Arc<cadang_core::ratelimit::RateLimiter>,
) -> Result<(Arc<dyn Backend>, bool)> {
    if url.starts_with("s3://") {
        let options = cadang_s3::S3Options {
            upload_limit: Some(limit),
            ..Default::default()
        };
        return Ok((
            Arc::new(cadang_s3::S3Backend::with_options(url, options)?),
            true,
        ));
    }
    Ok((open_store(url)?, false))
}
