//! One way for every program (CLI, agent daemon, controller) to turn a store
//! URL into a backend: `s3://...` through this crate, anything else as a local
//! directory through `cadang-core`, then wrapped by
//! [`cadang_core::backend::wrap_backend`] — the one place where retries, rate
//! limits and (in tests) fault injection are put around a store.
//!
//! For S3 two of those layers live in the client instead, so that they do
//! not multiply: the SDK retries every request itself (standard mode:
//! exponential backoff with jitter, throttling-aware, `S3Options::max_attempts`
//! attempts), so the wrap layer's retry is off for S3; and uploads are paced
//! inside the client in 64 KiB slices (finer than the wrap layer's whole
//! files), so the write limit is handed to the client. Read pacing and
//! fault injection are the wrap layer's for both kinds of store.

use std::sync::Arc;

use cadang_core::backend::{
    open_store as open_local, wrap_backend, Backend, BackendError, WrapOptions,
};

use crate::{S3Backend, S3Options, S3Url, StaticCredentials};

/// Opens `url` as a store with the standard wrapping: retries of transient
/// errors, and the test-only fault plan of `CADANG_FAULTS` if that is set.
/// `credentials` are used for S3 stores instead of the environment (the
/// agent and the controller get theirs from the controller's config, not
/// from their own environment); directories ignore them.
pub fn open_store(
    url: &str,
    credentials: Option<StaticCredentials>,
) -> Result<Arc<dyn Backend>, BackendError> {
    open_store_with(url, credentials, &standard_wrap(url)?)
}

/// The standard wrapping ([`WrapOptions::from_env`]), with a fault plan that
/// does not parse reported against the store being opened.
pub fn standard_wrap(url: &str) -> Result<WrapOptions, BackendError> {
    WrapOptions::from_env().map_err(|e| BackendError::Unavailable {
        location: S3Url::redacted(url),
        reason: e.to_string(),
    })
}

/// Like [`open_store`], wrapped as `wrap` asks (see the module
/// documentation for what S3 does itself instead).
pub fn open_store_with(
    url: &str,
    credentials: Option<StaticCredentials>,
    wrap: &WrapOptions,
) -> Result<Arc<dyn Backend>, BackendError> {
    if url.starts_with("s3://") {
        let options = S3Options {
            credentials,
            upload_limit: wrap.write_limit.clone(),
            ..Default::default()
        };
        let raw: Arc<dyn Backend> = Arc::new(S3Backend::with_options(url, options)?);
        let rest = WrapOptions {
            retry: None,
            write_limit: None,
            ..wrap.clone()
        };
        return Ok(wrap_backend(raw, &rest));
    }
    Ok(wrap_backend(Arc::from(open_local(url)?), wrap))
}
