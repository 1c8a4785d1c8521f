//! The S3 backend against a real S3 server (s3s-fs) over HTTP on 127.0.0.1.

mod common;

use cadang_core::backend::{conformance, Backend, BackendError, FileKind};
use cadang_s3::{S3Backend, PART_SIZE, SINGLE_PUT_LIMIT};
use common::{data, options, Server, BUCKET};

#[tokio::test]
async fn conformance_suite_passes() {
    let server = Server::start().await;
    let b = server.backend("repos/one/", "");
    conformance::run(&b).await.unwrap();
    // By default the SDK protects uploads with a flexible checksum.
    let puts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.line.starts_with("PUT "))
        .collect();
    assert!(
        !puts.is_empty() && puts.iter().all(|r| r.checksum),
        "{puts:?}"
    );
    // Everything landed under the prefix, in the local backend's layout.
    let root = server.bucket_path(BUCKET);
    assert!(root.join("repos/one/config").is_file());
    assert!(root.join("repos/one/locks/l1").is_file());
    assert_eq!(
        b.location(),
        format!("s3://{BUCKET}/repos/one?endpoint={}", server.endpoint())
    );
}

#[tokio::test]
async fn conformance_suite_passes_at_the_bucket_root_with_checksums_when_required() {
    let server = Server::start().await;
    let b = server.backend("", "&checksums=when-required");
    conformance::run(&b).await.unwrap();
    // Ceph RGW 18 and old MinIO refuse these headers: none may be sent.
    let puts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.line.starts_with("PUT "))
        .collect();
    assert!(
        !puts.is_empty() && puts.iter().all(|r| !r.checksum),
        "{puts:?}"
    );
    assert!(server.bucket_path(BUCKET).join("config").is_file());
}

#[tokio::test]
async fn create_refuses_an_existing_repository_and_repositories_are_separate() {
    let server = Server::start().await;
    let a = server.backend("a", "");
    let ab = server.backend("a/b", "");
    a.create().await.unwrap();
    a.write(FileKind::Config, "config", b"{}".to_vec())
        .await
        .unwrap();
    assert!(matches!(
        a.create().await,
        Err(BackendError::AlreadyExists {
            kind: FileKind::Config,
            ..
        })
    ));
    // A nested prefix is another repository.
    ab.create().await.unwrap();
    assert!(ab.list(FileKind::Config).await.unwrap().is_empty());
    assert_eq!(a.list(FileKind::Config).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_server_that_ignores_object_lock_is_not_trusted_with_retention() {
    let server = Server::start().await;
    let b = server.backend("nolock", "");
    b.create().await.unwrap();
    let err = b.check_retention().await.unwrap_err();
    assert!(
        matches!(err, BackendError::Unsupported { .. }) && err.to_string().contains("Object Lock"),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_largest_default_pack_goes_up_in_one_put() {
    let server = Server::start().await;
    let b = server.backend("one-put", "");
    b.create().await.unwrap();
    // 16 MiB of chunks plus one more 8 MiB chunk, with room for the trailer.
    let blob = data(25 << 20, 5);
    assert!(blob.len() <= SINGLE_PUT_LIMIT);
    server.clear_requests();
    b.write(FileKind::Packs, &"ab".repeat(32), blob.clone())
        .await
        .unwrap();
    let seen = server.requests();
    let puts = seen.iter().filter(|r| r.line.starts_with("PUT ")).count();
    assert_eq!(puts, 1, "{seen:?}");
    assert!(!seen.iter().any(|r| r.line.contains("uploads")), "{seen:?}");
    let back = b.read(FileKind::Packs, &"ab".repeat(32)).await.unwrap();
    assert!(back == blob);
}

#[tokio::test]
async fn large_objects_go_through_multipart_and_read_back_identical() {
    let server = Server::start().await;
    let b = server.backend("big", "");
    b.create().await.unwrap();
    let name = "cd".repeat(32);
    let blob = data(40 << 20, 7);
    server.clear_requests();
    b.write(FileKind::Packs, &name, blob.clone()).await.unwrap();

    let seen = server.requests();
    let key = format!("/{BUCKET}/big/packs/cd/{name}");
    assert!(
        seen.iter()
            .any(|r| r.line.starts_with(&format!("POST {key}?uploads"))),
        "{seen:?}"
    );
    let parts = seen
        .iter()
        .filter(|r| r.line.starts_with(&format!("PUT {key}?")) && r.line.contains("partNumber="))
        .count();
    assert_eq!(parts, (40usize << 20).div_ceil(PART_SIZE));
    assert!(
        seen.iter()
            .any(|r| r.line.starts_with(&format!("POST {key}?uploadId="))),
        "{seen:?}"
    );
    assert_eq!(server.pending_parts(), 0);

    assert_eq!(
        b.stat(FileKind::Packs, &name).await.unwrap(),
        Some(40 << 20)
    );
    let listed = b.list(FileKind::Packs).await.unwrap();
    assert_eq!(
        (listed[0].name.as_str(), listed[0].size),
        (name.as_str(), 40 << 20)
    );
    assert!(
        b.read(FileKind::Packs, &name).await.unwrap() == blob,
        "the object read back differs"
    );

    let mid = (20 << 20) - 12_345;
    let part = b
        .read_range(FileKind::Packs, &name, mid as u64, 1 << 20)
        .await
        .unwrap();
    assert!(
        part == blob[mid..mid + (1 << 20)],
        "the ranged read returned other bytes"
    );
    let tail = b
        .read_range(FileKind::Packs, &name, (40 << 20) - 10, 10)
        .await
        .unwrap();
    assert_eq!(tail, blob[(40 << 20) - 10..]);
    assert!(b
        .read_range(FileKind::Packs, &name, (40 << 20) - 10, 11)
        .await
        .is_err());
    assert!(b
        .read_range(FileKind::Packs, &name, 40 << 20, 1)
        .await
        .is_err());
    assert!(b
        .read_range(FileKind::Packs, &name, 40 << 20, 0)
        .await
        .unwrap()
        .is_empty());

    // write_new refuses to replace it, multipart or not.
    let other = data(SINGLE_PUT_LIMIT + 1, 8);
    assert!(matches!(
        b.write_new(FileKind::Packs, &name, other).await,
        Err(BackendError::AlreadyExists { .. })
    ));
    assert!(b.read_range(FileKind::Packs, &name, 0, 4096).await.unwrap() == blob[..4096]);
}

#[tokio::test]
async fn write_new_sends_if_none_match_and_refuses_existing_objects() {
    let server = Server::start().await;
    let b = server.backend("cond", "");
    b.create().await.unwrap();
    server.clear_requests();
    b.write_new(FileKind::Snapshots, "s1", b"first".to_vec())
        .await
        .unwrap();
    let put = server
        .requests()
        .into_iter()
        .find(|r| r.line.starts_with("PUT ") && r.line.contains("/cond/snapshots/s1"))
        .expect("a PUT of the snapshot");
    assert!(put.if_none_match, "write_new must be a conditional PUT");

    // A writer whose HEAD did not see the object (it raced with another
    // writer) is stopped by the condition on the PUT itself.
    server.inject("HEAD /backups/cond/snapshots/s1", 1, 404);
    server.clear_requests();
    let raced = b
        .write_new(FileKind::Snapshots, "s1", b"raced".to_vec())
        .await;
    assert!(
        matches!(
            raced,
            Err(BackendError::AlreadyExists {
                kind: FileKind::Snapshots,
                ..
            })
        ),
        "{raced:?}"
    );
    assert!(server
        .requests()
        .iter()
        .any(|r| r.line.starts_with("PUT ") && r.if_none_match));
    assert!(matches!(
        b.write_new(FileKind::Snapshots, "s1", b"second".to_vec())
            .await,
        Err(BackendError::AlreadyExists { .. })
    ));
    assert_eq!(b.read(FileKind::Snapshots, "s1").await.unwrap(), b"first");
}

#[tokio::test]
async fn list_follows_pagination_and_ignores_foreign_keys() {
    let server = Server::start().await;
    let b = std::sync::Arc::new(server.backend("many", ""));
    b.create().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1010u32 {
        let b = b.clone();
        tasks.spawn(async move {
            b.write(
                FileKind::Index,
                &format!("{i:08x}"),
                vec![0; (i % 7) as usize],
            )
            .await
        });
        if tasks.len() >= 16 {
            tasks.join_next().await.unwrap().unwrap().unwrap();
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    // Keys that cadang never writes: a folder marker and a nested file.
    let dir = server.bucket_path(BUCKET).join("many/index");
    std::fs::create_dir(dir.join("nested")).unwrap();
    std::fs::write(dir.join("nested/x"), b"x").unwrap();

    let listed = b.list(FileKind::Index).await.unwrap();
    assert_eq!(listed.len(), 1010, "more than one page of 1000 keys");
    assert_eq!(listed[0].name, "00000000");
    assert_eq!(listed[1009].name, format!("{:08x}", 1009));
    assert!(listed
        .iter()
        .all(|f| f.size == u64::from(u32::from_str_radix(&f.name, 16).unwrap() % 7)));
    assert!(server
        .requests()
        .iter()
        .any(|r| r.line.contains("continuation-token=")));
}

#[tokio::test]
async fn wrong_secret_key_says_the_credentials_were_refused() {
    let server = Server::start().await;
    let b =
        S3Backend::with_options(&server.url(BUCKET, "r", ""), options("not-the-secret")).unwrap();
    for err in [
        b.list(FileKind::Snapshots).await.unwrap_err(),
        b.read(FileKind::Config, "config").await.unwrap_err(),
        b.create().await.unwrap_err(),
    ] {
        let msg = err.to_string();
        assert!(
            matches!(err, BackendError::PermissionDenied { .. }),
            "{err:?}"
        );
        assert!(
            msg.contains("credentials") && msg.contains("AWS_SECRET_ACCESS_KEY"),
            "{msg}"
        );
        assert!(
            !msg.contains("not-the-secret"),
            "the secret leaked into {msg}"
        );
    }
    // A HEAD answer has no error code; the message still points at credentials.
    let err = b.stat(FileKind::Index, "00").await.unwrap_err();
    assert!(
        matches!(err, BackendError::PermissionDenied { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("credentials"), "{err}");
}

#[tokio::test]
async fn missing_bucket_is_named() {
    let server = Server::start().await;
    let url = server.url("no-such-bucket", "repo", "");
    let b = S3Backend::with_options(&url, options(common::SECRET_KEY)).unwrap();
    let create = b.create().await.unwrap_err();
    let list = b.list(FileKind::Index).await.unwrap_err();
    let stat = b.stat(FileKind::Index, "00").await.unwrap_err();
    let read = b.read(FileKind::Config, "config").await.unwrap_err();
    for err in [create, list, stat, read] {
        assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("\"no-such-bucket\" does not exist"), "{msg}");
    }
}

#[tokio::test]
async fn credentials_in_the_url_are_refused_without_echoing_them() {
    let err = S3Backend::from_url("s3://bkt/r?endpoint=http://127.0.0.1:1&secret_key=hunter2")
        .unwrap_err();
    match &err {
        BackendError::Unavailable { location, reason } => {
            assert_eq!(location, "s3://bkt/r");
            assert!(reason.contains("AWS_ACCESS_KEY_ID"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(!err.to_string().contains("hunter2"));
}
