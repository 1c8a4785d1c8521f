//! `write_new` stays create-only on a versioned bucket whose server ignores
//! `If-None-Match: *` there (Ceph RGW 16 does; so every Object Lock bucket
//! on RGW). moto stores the versions and enforces Object Lock; the
//! `rgw_like` proxy in front of it drops the header as RGW does, and puts
//! a second writer past the HEAD check, so that only the versioned-bucket
//! guard can refuse it.

mod moto;
mod rgw_like;

use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled,
    ObjectLockRetentionMode, ObjectLockRule, VersioningConfiguration,
};
use cadang_core::backend::{Backend, BackendError, FileKind};
use cadang_s3::{S3Backend, S3Options, StaticCredentials};
use moto::Moto;
use rgw_like::RgwLike;

const BUCKET: &str = "onsite";

/// moto, the RGW-like proxy in front of it, and a client straight to moto
/// for what the test sets up and looks at.
struct Setup {
    _moto: Moto,
    proxy: RgwLike,
    raw: aws_sdk_s3::Client,
}

enum Bucket {
    Plain,
    Versioned,
    /// Object Lock with a default COMPLIANCE retention of one day.
    LockedByDefault,
}

impl Setup {
    async fn start(bucket: Bucket) -> Setup {
        let m = Moto::start();
        m.create_bucket(BUCKET, matches!(bucket, Bucket::LockedByDefault));
        let raw = raw_client(&m.endpoint());
        match bucket {
            Bucket::Plain => {}
            Bucket::Versioned => {
                raw.put_bucket_versioning()
                    .bucket(BUCKET)
                    .versioning_configuration(
                        VersioningConfiguration::builder()
                            .status(BucketVersioningStatus::Enabled)
                            .build(),
                    )
                    .send()
                    .await
                    .expect("enable versioning");
            }
            Bucket::LockedByDefault => {
                let retention = DefaultRetention::builder()
                    .mode(ObjectLockRetentionMode::Compliance)
                    .days(1)
                    .build();
                raw.put_object_lock_configuration()
                    .bucket(BUCKET)
                    .object_lock_configuration(
                        ObjectLockConfiguration::builder()
                            .object_lock_enabled(ObjectLockEnabled::Enabled)
                            .rule(
                                ObjectLockRule::builder()
                                    .default_retention(retention)
                                    .build(),
                            )
                            .build(),
                    )
                    .send()
                    .await
                    .expect("default retention");
            }
        }
        let proxy = RgwLike::start(m.port).await;
        Setup {
            _moto: m,
            proxy,
            raw,
        }
    }

    /// A backend that talks to moto through the proxy, with plain bodies
    /// (`checksums=when-required`).
    fn backend(&self) -> S3Backend {
        self.backend_with("&checksums=when-required")
    }

    /// The same with `extra` URL parameters.
    fn backend_with(&self, extra: &str) -> S3Backend {
        let url = format!(
            "s3://{BUCKET}/repo?endpoint={}&region=us-east-1{extra}",
            self.proxy.endpoint()
        );
        let options = S3Options {
            credentials: Some(StaticCredentials {
                access_key_id: moto::ACCESS_KEY.into(),
                secret_access_key: moto::SECRET_KEY.into(),
                session_token: None,
            }),
            max_attempts: 1,
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(60),
            operation_timeout: Duration::from_secs(120),
            upload_limit: None,
        };
        S3Backend::with_options(&url, options).unwrap()
    }

    /// The version ids of `key`, newest first (delete markers not included).
    async fn versions(&self, key: &str) -> Vec<String> {
        let out = self
            .raw
            .list_object_versions()
            .bucket(BUCKET)
            .prefix(key)
            .send()
            .await
            .expect("list versions");
        out.versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .map(|v| v.version_id().unwrap_or_default().to_string())
            .collect()
    }

    fn puts(&self, key: &str) -> usize {
        let line = format!("PUT /{BUCKET}/{key}");
        self.proxy.requests().iter().filter(|r| **r == line).count()
    }
}

fn raw_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            moto::ACCESS_KEY,
            moto::SECRET_KEY,
            None,
            None,
            "test",
        ))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn pack() -> (String, String) {
    let name = "ab".repeat(32);
    let key = format!("repo/packs/ab/{name}");
    (name, key)
}

#[tokio::test]
async fn a_write_over_an_existing_key_is_withdrawn_and_refused() {
    let s = Setup::start(Bucket::Versioned).await;
    let b = s.backend();
    let (name, key) = pack();
    b.write_new(FileKind::Packs, &name, b"original".to_vec())
        .await
        .unwrap();
    // The second writer does not see the object (it appeared after its
    // HEAD), and the server ignores If-None-Match: its PUT lands.
    s.proxy.hide_from_head(&key);
    let err = b
        .write_new(FileKind::Packs, &name, b"intruder".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(
        s.puts(&key),
        2,
        "the second PUT must have reached the server"
    );
    assert_eq!(
        b.read(FileKind::Packs, &name).await.unwrap(),
        b"original".to_vec()
    );
    assert_eq!(s.versions(&key).await.len(), 1, "the new version stayed");
}

#[tokio::test]
async fn the_same_bytes_again_are_success_and_leave_one_version() {
    let s = Setup::start(Bucket::Versioned).await;
    let b = s.backend();
    let (name, key) = pack();
    b.write_new(FileKind::Packs, &name, b"same".to_vec())
        .await
        .unwrap();
    s.proxy.hide_from_head(&key);
    // What a retried PUT whose first answer was lost finds.
    b.write_new(FileKind::Packs, &name, b"same".to_vec())
        .await
        .unwrap();
    assert_eq!(s.puts(&key), 2);
    assert_eq!(s.versions(&key).await.len(), 1);
    assert_eq!(
        b.read(FileKind::Packs, &name).await.unwrap(),
        b"same".to_vec()
    );
}

#[tokio::test]
async fn of_two_racing_writers_exactly_one_wins() {
    let s = Setup::start(Bucket::Versioned).await;
    let (name, key) = pack();
    // Both HEADs find nothing: no PUT is let through before both arrived.
    s.proxy.hold_puts(&key, 2);
    let (a, b) = (s.backend(), s.backend());
    let (ra, rb) = tokio::join!(
        a.write_new(FileKind::Packs, &name, b"writer a".to_vec()),
        b.write_new(FileKind::Packs, &name, b"writer b".to_vec()),
    );
    assert_eq!(s.puts(&key), 2);
    let winner: &[u8] = match (&ra, &rb) {
        (Ok(()), Err(BackendError::AlreadyExists { .. })) => b"writer a",
        (Err(BackendError::AlreadyExists { .. }), Ok(())) => b"writer b",
        other => panic!("exactly one writer must win: {other:?}"),
    };
    assert_eq!(a.read(FileKind::Packs, &name).await.unwrap(), winner);
    assert_eq!(s.versions(&key).await.len(), 1);
}

#[tokio::test]
async fn a_key_behind_a_delete_marker_is_free_again() {
    let s = Setup::start(Bucket::Versioned).await;
    let b = s.backend();
    let (name, key) = pack();
    b.write_new(FileKind::Packs, &name, b"old".to_vec())
        .await
        .unwrap();
    // Another tool's plain DeleteObject: a delete marker hides the object.
    s.raw
        .delete_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(b.stat(FileKind::Packs, &name).await.unwrap(), None);
    b.write_new(FileKind::Packs, &name, b"new".to_vec())
        .await
        .unwrap();
    assert_eq!(
        b.read(FileKind::Packs, &name).await.unwrap(),
        b"new".to_vec()
    );
}

#[tokio::test]
async fn a_retained_new_version_that_cannot_be_withdrawn_is_reported() {
    let s = Setup::start(Bucket::LockedByDefault).await;
    // A PUT into a bucket with default retention must carry a checksum
    // (AWS and moto refuse it otherwise): the SDK's default CRC32.
    let b = s.backend_with("");
    let (name, key) = pack();
    b.write_new(FileKind::Packs, &name, b"original".to_vec())
        .await
        .unwrap();
    s.proxy.hide_from_head(&key);
    let err = b
        .write_new(FileKind::Packs, &name, b"intruder".to_vec())
        .await
        .unwrap_err();
    let versions = s.versions(&key).await;
    assert_eq!(versions.len(), 2, "moto must have refused the withdrawal");
    let msg = err.to_string();
    assert!(
        matches!(err, BackendError::PermissionDenied { .. })
            && msg.contains("already existed")
            && msg.contains("Object Lock")
            && msg.contains(&versions[0])
            && msg.contains(&versions[1]),
        "{msg}"
    );
    // Same bytes under retention: readers see no difference, so success.
    b.write_new(FileKind::Packs, &name, b"intruder".to_vec())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unversioned_bucket_costs_one_head_and_one_put() {
    let s = Setup::start(Bucket::Plain).await;
    let b = s.backend();
    b.stat(FileKind::Index, "warm").await.unwrap(); // the bucket check, once
    s.proxy.clear_requests();
    let (name, key) = pack();
    b.write_new(FileKind::Packs, &name, b"x".to_vec())
        .await
        .unwrap();
    assert_eq!(
        s.proxy.requests(),
        vec![
            format!("HEAD /{BUCKET}/{key}"),
            format!("PUT /{BUCKET}/{key}")
        ]
    );
}

#[tokio::test]
async fn a_versioned_bucket_adds_one_version_listing() {
    let s = Setup::start(Bucket::Versioned).await;
    let b = s.backend();
    b.stat(FileKind::Index, "warm").await.unwrap();
    s.proxy.clear_requests();
    let (name, key) = pack();
    b.write_new(FileKind::Packs, &name, b"x".to_vec())
        .await
        .unwrap();
    let seen = s.proxy.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        seen[..2],
        [
            format!("HEAD /{BUCKET}/{key}"),
            format!("PUT /{BUCKET}/{key}")
        ]
    );
    assert!(
        seen[2].starts_with(&format!("GET /{BUCKET}/?versions&")),
        "{seen:?}"
    );
}
