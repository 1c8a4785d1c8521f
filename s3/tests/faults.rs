//! Faults: server errors, a dropped download, a closed port, a silent
//! server. Each ends in a bounded time with the right error, or is ridden out.

mod common;

use std::time::{Duration, Instant};

use cadang_core::backend::{Backend, BackendError, FileKind};
use cadang_s3::{S3Backend, S3Options, PART_SIZE, SINGLE_PUT_LIMIT};
use common::{data, options, Server, BUCKET, TRUNCATE};

#[tokio::test]
async fn a_failed_multipart_upload_is_retried_then_aborted_leaving_nothing() {
    let server = Server::start().await;
    let b = server.backend("abort", "");
    b.create().await.unwrap();
    let name = "ef".repeat(32);
    // Part 3 fails on every attempt (the test options allow 3).
    server.fail("partNumber=3", 100);
    server.clear_requests();
    let err = b
        .write(
            FileKind::Packs,
            &name,
            data(SINGLE_PUT_LIMIT + 2 * PART_SIZE, 9),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("InternalError"), "{err}");

    let seen = server.requests();
    let part3 = seen
        .iter()
        .filter(|r| r.line.contains("partNumber=3"))
        .count();
    assert_eq!(
        part3, 3,
        "part 3 should be tried max_attempts times: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|r| r.line.starts_with("DELETE ") && r.line.contains("uploadId=")),
        "no abort: {seen:?}"
    );
    assert_eq!(
        server.pending_parts(),
        0,
        "the aborted upload left parts behind"
    );
    assert_eq!(b.stat(FileKind::Packs, &name).await.unwrap(), None);
    assert!(b.list(FileKind::Packs).await.unwrap().is_empty());
}

#[tokio::test]
async fn default_options_ride_out_four_server_errors() {
    let server = Server::start().await;
    let mut opts = options(common::SECRET_KEY);
    let defaults = S3Options::default();
    assert!(defaults.max_attempts >= 5);
    opts.max_attempts = defaults.max_attempts;
    let b = S3Backend::with_options(&server.url(BUCKET, "retry", ""), opts).unwrap();
    server.fail("/retry/index/0a", 4);
    b.write(FileKind::Index, "0a", b"after four failures".to_vec())
        .await
        .unwrap();
    assert_eq!(
        b.read(FileKind::Index, "0a").await.unwrap(),
        b"after four failures"
    );
    let puts = server
        .requests()
        .iter()
        .filter(|r| r.line.contains("/retry/index/0a") && r.line.starts_with("PUT"))
        .count();
    assert_eq!(puts, 5);
}

#[tokio::test]
async fn unreachable_endpoint_is_unavailable_quickly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("s3://{BUCKET}/r?endpoint=http://127.0.0.1:{port}");
    let opts = S3Options {
        max_attempts: 2,
        connect_timeout: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(10),
        ..options(common::SECRET_KEY)
    };
    let b = S3Backend::with_options(&url, opts).unwrap();
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(30), b.list(FileKind::Snapshots))
        .await
        .expect("the backend hung on a closed port")
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    match &err {
        BackendError::Unavailable { location, reason } => {
            assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
            assert_eq!(location, &url);
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_instead_of_hanging() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let opts = S3Options {
        max_attempts: 2,
        attempt_timeout: Duration::from_secs(1),
        operation_timeout: Duration::from_secs(5),
        ..options(common::SECRET_KEY)
    };
    let b = S3Backend::with_options(
        &format!("s3://{BUCKET}/r?endpoint=http://127.0.0.1:{port}"),
        opts,
    )
    .unwrap();
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(30), b.read(FileKind::Config, "config"))
        .await
        .expect("the backend hung on a silent server")
        .unwrap_err();
    silent.abort();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("did not answer in time"), "{err}");
}

#[tokio::test]
async fn a_download_that_breaks_off_is_fetched_again() {
    let server = Server::start().await;
    let b = server.backend("cut", "");
    let blob = data(3 << 20, 11);
    b.write(FileKind::Index, "0b", blob.clone()).await.unwrap();
    server.inject("GET /backups/cut/index/0b", 1, TRUNCATE);
    server.clear_requests();
    assert!(b.read(FileKind::Index, "0b").await.unwrap() == blob);
    let gets = server
        .requests()
        .iter()
        .filter(|r| r.line.starts_with("GET /backups/cut/index/0b"))
        .count();
    assert_eq!(gets, 2, "one broken download, one complete");

    // A range that keeps breaking off is an error, never a short read.
    server.inject("GET /backups/cut/index/0b", 10, TRUNCATE);
    let err = b
        .read_range(FileKind::Index, "0b", 1000, 1 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains("broke off") || err.to_string().contains("ended after"),
        "{err}"
    );
}
