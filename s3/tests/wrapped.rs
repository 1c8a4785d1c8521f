//! The S3 store as every program opens it (`cadang_s3::open_store_with`):
//! wrapped by `cadang_core::backend::wrap_backend`, with the wrap layer's
//! retry off (the SDK retries itself, and the two must not multiply) and
//! fault injection working on S3 as on a directory.

mod common;

use cadang_core::backend::wrap::{FaultPlan, RetryPolicy};
use cadang_core::backend::{conformance, FileKind, WrapOptions};
use cadang_s3::{open_store_with, StaticCredentials};
use common::{Server, ACCESS_KEY, BUCKET, SECRET_KEY};

fn creds() -> Option<StaticCredentials> {
    Some(StaticCredentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
        session_token: None,
    })
}

fn with_faults(spec: &str) -> WrapOptions {
    WrapOptions {
        retry: Some(RetryPolicy {
            jitter_seed: Some(1),
            ..RetryPolicy::default()
        }),
        faults: Some(FaultPlan::parse(spec).unwrap()),
        ..WrapOptions::default()
    }
}

#[tokio::test]
async fn the_wrapped_s3_store_passes_conformance() {
    let server = Server::start().await;
    let url = server.url(BUCKET, "wrapped/", "");
    let b = open_store_with(&url, creds(), &with_faults("any@3+=delay:1")).unwrap();
    conformance::run(&*b).await.unwrap();
}

/// The same injected timeout is retried for a directory and not for S3,
/// where only the SDK retries (and an injected fault sits above the SDK).
#[tokio::test]
async fn the_wrap_layer_does_not_retry_s3_on_top_of_the_sdk() {
    let server = Server::start().await;
    let url = server.url(BUCKET, "once/", "");
    let s3 = open_store_with(&url, creds(), &with_faults("stat@1=transient")).unwrap();
    let err = s3.stat(FileKind::Index, "00ff").await.unwrap_err();
    assert!(
        err.is_transient() && err.to_string().contains("injected"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let local = open_store_with(
        dir.path().to_str().unwrap(),
        None,
        &with_faults("stat@1=transient"),
    )
    .unwrap();
    assert_eq!(local.stat(FileKind::Index, "00ff").await.unwrap(), None);
}
