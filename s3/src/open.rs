//! One way for every program (CLI, agent daemon, controller) to turn a store
//! URL into a backend: `s3://...` through this crate, anything else as a local
//! directory through `cadang-core`.

use std::sync::Arc;

use cadang_core::backend::{open_store as open_local, Backend, BackendError};

use crate::{S3Backend, S3Options, StaticCredentials};

/// Opens `url` as a store. `credentials` are used for S3 stores instead of
/// the environment (the agent and the controller get theirs from the
/// controller's config, not from their own environment); directories ignore
/// them.
pub fn open_store(
    url: &str,
    credentials: Option<StaticCredentials>,
) -> Result<Arc<dyn Backend>, BackendError> {
    if url.starts_with("s3://") {
        let options = S3Options {
            credentials,
            ..Default::default()
        };
        return Ok(Arc::new(S3Backend::with_options(url, options)?));
    }
    Ok(Arc::from(open_local(url)?))
}
