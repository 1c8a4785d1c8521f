//! Object Lock against a server that enforces it (moto, a child process):
//! retained objects survive a delete attempt, which is reported as
//! `BackendError::Locked` with the date; plain objects are really deleted on
//! a versioned bucket (not just hidden behind a delete marker).

mod moto;

use std::time::{Duration, SystemTime};

use cadang_core::backend::{Backend, BackendError, FileKind};
use cadang_s3::{S3Backend, S3Options, StaticCredentials};
use moto::Moto;

fn backend(m: &Moto, bucket: &str, extra: &str) -> S3Backend {
    let options = S3Options {
        credentials: Some(StaticCredentials {
            access_key_id: moto::ACCESS_KEY.into(),
            secret_access_key: moto::SECRET_KEY.into(),
            session_token: None,
        }),
        max_attempts: 2,
        connect_timeout: Duration::from_secs(5),
        attempt_timeout: Duration::from_secs(60),
        operation_timeout: Duration::from_secs(120),
        upload_limit: None,
    };
    S3Backend::with_options(&m.url(bucket, "repo", extra), options).unwrap()
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

async fn locked_objects_survive_delete(extra: &str) {
    let m = Moto::start();
    m.create_bucket("dr-locked", true);
    let b = backend(&m, "dr-locked", extra);
    b.check_retention().await.unwrap();
    let until = SystemTime::now() + Duration::from_secs(86_400);
    let name = "ab".repeat(32);
    b.write_retained(FileKind::Packs, &name, b"locked pack".to_vec(), until)
        .await
        .unwrap();

    let got = b.retained_until(FileKind::Packs, &name).await.unwrap();
    let got = got.expect("a retained object reports its date");
    assert!(secs(got).abs_diff(secs(until)) <= 1, "{got:?} vs {until:?}");

    let err = b.delete(FileKind::Packs, &name).await.unwrap_err();
    let BackendError::Locked {
        kind,
        name: n,
        until: when,
    } = &err
    else {
        panic!("expected Locked, got {err:?}");
    };
    assert_eq!((*kind, n.as_str()), (FileKind::Packs, name.as_str()));
    let year = chrono_year(until);
    assert!(when.starts_with(&year), "date in the error: {when}");
    let msg = err.to_string();
    assert!(
        msg.contains("Object Lock") && msg.contains(when.as_str()) && msg.contains(&name),
        "{msg}"
    );
    // Still there, unchanged, and not hidden behind a delete marker.
    assert_eq!(
        b.read(FileKind::Packs, &name).await.unwrap(),
        b"locked pack".to_vec()
    );
    assert_eq!(b.list(FileKind::Packs).await.unwrap().len(), 1);

    // Plain objects in the same (versioned) bucket delete for real,
    // including an older version that would otherwise come back.
    assert_eq!(
        b.retained_until(FileKind::Index, "plain").await.unwrap(),
        None
    );
    b.write(FileKind::Index, "plain", b"v1".to_vec())
        .await
        .unwrap();
    b.write(FileKind::Index, "plain", b"v2".to_vec())
        .await
        .unwrap();
    assert_eq!(
        b.retained_until(FileKind::Index, "plain").await.unwrap(),
        None
    );
    b.delete(FileKind::Index, "plain").await.unwrap();
    assert!(b.stat(FileKind::Index, "plain").await.unwrap().is_none());
    assert!(b.list(FileKind::Index).await.unwrap().is_empty());
    assert!(b
        .delete(FileKind::Index, "plain")
        .await
        .unwrap_err()
        .is_not_found());
}

/// The year of `t` in UTC, as the error's RFC 3339 date starts.
fn chrono_year(t: SystemTime) -> String {
    let days = secs(t) / 86_400;
    // Civil-from-days (Howard Hinnant), enough for a year.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!("{year}-")
}

#[tokio::test]
async fn retained_objects_refuse_delete_with_a_clear_error() {
    locked_objects_survive_delete("").await;
}

/// Ceph RGW 18 / old MinIO mode: no flexible checksums, so the Object Lock
/// PUT must carry its own (Content-MD5), or S3 refuses it.
#[tokio::test]
async fn retained_writes_work_with_checksums_when_required() {
    locked_objects_survive_delete("&checksums=when-required").await;
}

#[tokio::test]
async fn a_bucket_without_object_lock_refuses_retained_writes() {
    let m = Moto::start();
    m.create_bucket("no-lock", false);
    let b = backend(&m, "no-lock", "");
    // Asked up front, the bucket says it would not enforce retention.
    let err = b.check_retention().await.unwrap_err();
    assert!(
        matches!(err, BackendError::Unsupported { .. }) && err.to_string().contains("without it"),
        "{err:?}"
    );
    let until = SystemTime::now() + Duration::from_secs(3600);
    let err = b
        .write_retained(FileKind::Packs, &"cd".repeat(32), b"x".to_vec(), until)
        .await
        .unwrap_err();
    assert!(!matches!(err, BackendError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("no-lock") && msg.contains("create a new bucket with Object Lock enabled"),
        "{msg}"
    );
    // Plain delete on an unversioned bucket still works.
    b.write(FileKind::Index, "i", b"1".to_vec()).await.unwrap();
    b.delete(FileKind::Index, "i").await.unwrap();
    assert!(b.stat(FileKind::Index, "i").await.unwrap().is_none());
}
