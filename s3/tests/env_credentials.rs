//! Credentials from the environment and the shared credentials file, as
//! `from_url` finds them. One test in its own process, because it changes
//! the process environment.

mod common;

use std::time::{Duration, Instant};

use cadang_core::backend::{Backend, BackendError, FileKind};
use cadang_s3::S3Backend;
use common::{Server, ACCESS_KEY, BUCKET, SECRET_KEY};

const VARS: [&str; 7] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_REGION",
];

#[tokio::test]
async fn environment_then_credentials_file_and_never_instance_metadata() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url(BUCKET, "env", "");
    for v in VARS {
        std::env::remove_var(v);
    }
    std::env::set_var("HOME", dir.path());
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"));
    std::env::set_var("AWS_CONFIG_FILE", dir.path().join("none-config"));

    // Nothing anywhere: a clear message at once, not a wait for the EC2
    // metadata service.
    let started = Instant::now();
    let err = S3Backend::from_url(&url)
        .unwrap()
        .list(FileKind::Index)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("no S3 credentials found"), "{err}");
    assert!(
        server.requests().is_empty(),
        "a request went out without credentials"
    );

    // The credentials file, with the profile from AWS_PROFILE.
    let creds = dir.path().join("credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n\
             [cadang]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        ),
    )
    .unwrap();
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &creds);
    std::env::set_var("AWS_PROFILE", "cadang");
    let b = S3Backend::from_url(&url).unwrap();
    b.write(FileKind::Index, "01", b"from the file".to_vec())
        .await
        .unwrap();
    assert_eq!(
        b.read(FileKind::Index, "01").await.unwrap(),
        b"from the file"
    );

    // The environment comes first: a wrong secret there is what gets used.
    std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "wrong-secret");
    let err = S3Backend::from_url(&url)
        .unwrap()
        .read(FileKind::Index, "01")
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::PermissionDenied { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{err}");

    std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    std::env::set_var("AWS_PROFILE", "no-such-profile");
    let b = S3Backend::from_url(&url).unwrap();
    assert_eq!(
        b.read(FileKind::Index, "01").await.unwrap(),
        b"from the file"
    );
}
