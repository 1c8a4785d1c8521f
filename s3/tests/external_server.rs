//! The S3 backend against an S3 server outside this test process: Ceph RGW
//! from `tests/compat/ceph.sh`, a MinIO, or AWS itself.
//!
//! Opt-in through the environment, so `cargo test` stays self-contained:
//!
//! * `CADANG_S3_TEST_URL`: a repository URL of a bucket that exists, e.g.
//!   `s3://cadang-compat/t?endpoint=http://127.0.0.1:7480&checksums=when-required`;
//! * `CADANG_S3_TEST_LOCKED_URL` (optional): the same for a bucket created with
//!   Object Lock, for the retention test;
//! * credentials as `cadang` takes them (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, or the shared credentials file).
//!
//! Without `CADANG_S3_TEST_URL` every test says it was skipped and passes:
//! the in-process server of `s3_server.rs` covers the same contract then.
//! Each test writes under a fresh sub-prefix (time and process id), so runs
//! against one bucket never see each other's objects.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cadang_core::backend::{conformance, Backend, BackendError, FileKind};
use cadang_s3::{S3Backend, SINGLE_PUT_LIMIT};

const URL_VAR: &str = "CADANG_S3_TEST_URL";
const LOCKED_URL_VAR: &str = "CADANG_S3_TEST_LOCKED_URL";

/// The URL in `var`, or `None` after saying why the test does nothing.
fn configured(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped {test}: {var} is not set (run tests/compat/ceph.sh, or set it to \
                 s3://BUCKET/PREFIX?endpoint=... with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
            );
            None
        }
    }
}

/// `url` with `/<leaf>-<time>-<pid>` appended to its prefix, so every run
/// starts from an empty repository in the same bucket.
fn fresh_prefix(url: &str, leaf: &str) -> String {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default();
    let unique = format!("{leaf}-{stamp}-{}", std::process::id());
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url, None),
    };
    let joined = format!("{}/{unique}", path.trim_end_matches('/'));
    match query {
        Some(q) => format!("{joined}?{q}"),
        None => joined,
    }
}

fn backend(url: &str) -> S3Backend {
    S3Backend::from_url(url).unwrap_or_else(|e| panic!("{URL_VAR} is not usable: {e}"))
}

/// Deterministic bytes that do not compress or repeat within a part.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn fresh_prefix_keeps_the_query_and_adds_one_level() {
    let u = fresh_prefix("s3://b/p/?endpoint=http://h:1&checksums=when-required", "c");
    let (path, query) = u.split_once('?').unwrap();
    assert!(path.starts_with("s3://b/p/c-"), "{u}");
    assert_eq!(query, "endpoint=http://h:1&checksums=when-required");
    assert!(fresh_prefix("s3://b", "x").starts_with("s3://b/x-"));
}

#[tokio::test]
async fn conformance_suite_passes_against_the_external_server() {
    let Some(url) = configured(URL_VAR, "the external conformance suite") else {
        return;
    };
    let b = backend(&fresh_prefix(&url, "conformance"));
    conformance::run(&b).await.unwrap();
}

/// Above [`SINGLE_PUT_LIMIT`] an object goes up as a multipart upload; the
/// server must assemble it, range reads must cross part borders, and a
/// create-only write must still refuse to replace it.
#[tokio::test]
async fn multipart_objects_read_back_identical_from_the_external_server() {
    let Some(url) = configured(URL_VAR, "the external multipart test") else {
        return;
    };
    let b = backend(&fresh_prefix(&url, "multipart"));
    b.create().await.unwrap();
    let name = "cd".repeat(32);
    let len = SINGLE_PUT_LIMIT + (9 << 20);
    let blob = noise(len, 7);
    b.write_new(FileKind::Packs, &name, blob.clone())
        .await
        .unwrap();

    assert_eq!(
        b.stat(FileKind::Packs, &name).await.unwrap(),
        Some(len as u64)
    );
    let back = b.read(FileKind::Packs, &name).await.unwrap();
    assert!(back == blob, "the multipart object read back differs");
    // 8 MiB parts: this range spans the border of the fourth and fifth.
    let mid = (32 << 20) - 12_345;
    let part = b
        .read_range(FileKind::Packs, &name, mid as u64, 1 << 20)
        .await
        .unwrap();
    assert!(part == blob[mid..mid + (1 << 20)], "a ranged read differs");

    let again = b
        .write_new(FileKind::Packs, &name, noise(1024, 8))
        .await
        .unwrap_err();
    assert!(
        matches!(again, BackendError::AlreadyExists { .. }),
        "{again:?}"
    );
    b.delete(FileKind::Packs, &name).await.unwrap();
    assert!(b.stat(FileKind::Packs, &name).await.unwrap().is_none());
}

/// Object Lock as `replicate --lock-days` uses it: the bucket says it
/// enforces retention, a retained pack reports its date and survives a delete.
#[tokio::test]
async fn retained_objects_survive_delete_at_the_external_server() {
    let Some(url) = configured(LOCKED_URL_VAR, "the external Object Lock test") else {
        return;
    };
    let b = backend(&fresh_prefix(&url, "locked"));
    b.check_retention().await.unwrap();
    // COMPLIANCE mode cannot be shortened, even by the bucket's owner: keep
    // it short so a throwaway cluster's test objects do not outlive it long.
    let until = SystemTime::now() + Duration::from_secs(120);
    let name = "ef".repeat(32);
    b.write_retained(FileKind::Packs, &name, b"locked pack".to_vec(), until)
        .await
        .unwrap();
    let got = b
        .retained_until(FileKind::Packs, &name)
        .await
        .unwrap()
        .expect("a retained object reports its date");
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(secs(got).abs_diff(secs(until)) <= 1, "{got:?} vs {until:?}");

    let err = b.delete(FileKind::Packs, &name).await.unwrap_err();
    assert!(matches!(err, BackendError::Locked { .. }), "{err:?}");
    assert_eq!(
        b.read(FileKind::Packs, &name).await.unwrap(),
        b"locked pack"
    );
    assert_eq!(b.list(FileKind::Packs).await.unwrap().len(), 1);

    // Plain objects in the same versioned bucket are deleted for real.
    b.write(FileKind::Index, "plain", b"v1".to_vec())
        .await
        .unwrap();
    b.write(FileKind::Index, "plain", b"v2".to_vec())
        .await
        .unwrap();
    b.delete(FileKind::Index, "plain").await.unwrap();
    assert!(b.stat(FileKind::Index, "plain").await.unwrap().is_none());
    assert!(b.list(FileKind::Index).await.unwrap().is_empty());
}

/// `write_new` on the Object Lock bucket (versioned, so Ceph RGW ignores
/// `If-None-Match` there): the same pack name written twice is refused and
/// the first bytes stay current; of racing writers of one name exactly one
/// succeeds and its bytes are what a reader gets (the others withdrew
/// their versions). `tests/compat/ceph.sh` runs this as its own step.
#[tokio::test]
async fn create_only_writes_refuse_an_existing_pack_on_the_locked_bucket() {
    let Some(url) = configured(LOCKED_URL_VAR, "the external create-only test") else {
        return;
    };
    let b = backend(&fresh_prefix(&url, "create-only"));
    let name = "ab".repeat(32);
    b.write_new(FileKind::Packs, &name, b"first".to_vec())
        .await
        .unwrap();
    let again = b
        .write_new(FileKind::Packs, &name, b"second".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(again, BackendError::AlreadyExists { .. }),
        "{again:?}"
    );
    assert_eq!(b.read(FileKind::Packs, &name).await.unwrap(), b"first");

    // Racing writers: most pass their HEAD before any PUT lands, so only
    // the versioned-bucket guard can sort them out.
    let name = "cd".repeat(32);
    let results = race(&b.url().to_string(), &name, 6).await;
    let winners: Vec<usize> = (0..results.len()).filter(|i| results[*i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one writer wins: {results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(r, Err(BackendError::AlreadyExists { .. })),
            "{results:?}"
        );
    }
    let got = b.read(FileKind::Packs, &name).await.unwrap();
    assert_eq!(got, format!("writer {}", winners[0]).into_bytes());
    assert_eq!(b.list(FileKind::Packs).await.unwrap().len(), 2);
}

/// `write_new` of `name` by `n` writers (backends of their own) at once,
/// writer `i` with the bytes `writer i`; the answers in writer order.
async fn race(url: &str, name: &str, n: usize) -> Vec<Result<(), BackendError>> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let w = backend(url);
        let name = name.to_string();
        set.spawn(async move {
            let r = w
                .write_new(FileKind::Packs, &name, format!("writer {i}").into_bytes())
                .await;
            (i, r)
        });
    }
    let mut out: Vec<Option<Result<(), BackendError>>> = (0..n).map(|_| None).collect();
    while let Some(done) = set.join_next().await {
        let (i, r) = done.expect("a writer task");
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.expect("every writer answered"))
        .collect()
}
