//! Stores as the controller's config names them, and where a PD's
//! repository lives inside one.

use std::sync::Arc;

use cadang_core::backend::{Backend, BackendError, WrapOptions};
use cadang_core::ratelimit::RateLimiter;
use cadang_s3::StaticCredentials;

/// A store as the controller's config describes it (credentials included; never from a policy).
///
/// `url` is the store's root (a directory or `s3://bucket/prefix`); a site
/// job opens the repository of its PD inside it with [`pd_repo_url`].
#[derive(Clone, Debug)]
pub struct StoreTarget {
    pub name: String,
    pub url: String,
    pub credentials: Option<StaticCredentials>,
}

impl StoreTarget {
    /// Opens the repository store of `pd` inside this store.
    pub fn open_pd(&self, pd: &str) -> Result<Arc<dyn Backend>, BackendError> {
        cadang_s3::open_store(&pd_repo_url(&self.url, pd), self.credentials.clone())
    }

    /// Like [`StoreTarget::open_pd`], with every write paced by `limit`: in
    /// 64 KiB slices by the S3 client, file by file for a directory (the
    /// store-wrapping layer, `cadang_core::backend::wrap`).
    pub fn open_pd_paced(
        &self,
        pd: &str,
        limit: Arc<RateLimiter>,
    ) -> Result<Arc<dyn Backend>, BackendError> {
        let url = pd_repo_url(&self.url, pd);
        let wrap = WrapOptions {
            write_limit: Some(limit),
            ..cadang_s3::standard_wrap(&url)?
        };
        cadang_s3::open_store_with(&url, self.credentials.clone(), &wrap)
    }
}

/// The repository of `pd` inside a store: `<dir>/<PD>` or `s3://bucket/prefix/<PD>?query`.
pub fn pd_repo_url(store_url: &str, pd: &str) -> String {
    let (base, query) = match store_url.split_once('?') {
        Some((base, query)) if store_url.starts_with("s3://") => (base, Some(query)),
        _ => (store_url, None),
    };
    let base = base.trim_end_matches('/');
    // `s3://bucket` has no prefix; `s3:/` would be what trimming left of `s3://`.
    let joined = format!("{base}/{pd}");
    match query {
        Some(q) if !q.is_empty() => format!("{joined}?{q}"),
        _ => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::pd_repo_url;

    #[test]
    fn directories_and_buckets() {
        let cases = [
            ("/srv/cadang", "/srv/cadang/DINKES"),
            ("/srv/cadang/", "/srv/cadang/DINKES"),
            ("file:///srv/cadang", "file:///srv/cadang/DINKES"),
            ("s3://bucket", "s3://bucket/DINKES"),
            ("s3://bucket/", "s3://bucket/DINKES"),
            ("s3://bucket/cadang/prod", "s3://bucket/cadang/prod/DINKES"),
            (
                "s3://bucket/cadang?endpoint=https://minio:9000&path-style=true",
                "s3://bucket/cadang/DINKES?endpoint=https://minio:9000&path-style=true",
            ),
            ("s3://bucket/p/?region=x", "s3://bucket/p/DINKES?region=x"),
        ];
        for (store, expected) in cases {
            assert_eq!(pd_repo_url(store, "DINKES"), expected, "{store}");
        }
    }
}
