//! Every foundation command against an `s3://` store on a real S3 server
//! over HTTP (cadang-testkit: s3s-fs with SigV4 on loopback), under injected
//! faults, and with the operator's usual mistakes.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Output;

use cadang_testkit::S3Server;
use common::*;
use serde_json::Value;

const MIB: usize = 1024 * 1024;

/// `cadang` with the server's credentials in the environment.
/// Files of several sizes (a 20 MiB one spans packs), a symlink, an empty
/// directory.
fn make_source(root: &Path) {
    fs::create_dir_all(root.join("dokumen/kosong")).unwrap();
    fs::write(root.join("besar.bin"), noise(20 * MIB, 1)).unwrap();
    let text: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("INSERT INTO pasien VALUES ({i}, 'nama-{i}');\n").into_bytes())
        .collect();
    fs::write(root.join("dump.sql"), &text).unwrap();
    for i in 0..120u64 {
        fs::write(
            root.join(format!("dokumen/surat-{i:03}.txt")),
            noise(500 + (i as usize * 97) % 9000, 10 + i),
        )
        .unwrap();
    }
    symlink("dump.sql", root.join("dump-terbaru.sql")).unwrap();
}

fn init(server: &S3Server, url: &str, creds: &Path) {
    s3_ok(
        server,
        &[
            "repo",
            "init",
            "--repo",
            url,
            "--pd",
            "BAPPEDA",
            "--agent-credentials",
            s(creds),
        ],
    );
}

fn backup(server: &S3Server, url: &str, creds: &Path, cache: &Path, src: &Path) -> Value {
    let out = s3_ok(
        server,
        &[
            "backup",
            "--repo",
            url,
            "--credentials",
            s(creds),
            "--cache-dir",
            s(cache),
            "--json",
            s(src),
        ],
    );
    serde_json::from_str(&out).expect("backup --json prints JSON")
}

fn restore_matches(server: &S3Server, url: &str, snapshot: &str, src: &Path, target: &Path) {
    s3_ok(
        server,
        &["restore", "--repo", url, snapshot, "--target", s(target)],
    );
    assert_eq!(
        tree_listing(&restored(target, src)),
        tree_listing(src),
        "restore from {url} differs from the source"
    );
}

/// Restores only `wanted` from the latest snapshot and compares it.
fn restore_one_file(server: &S3Server, url: &str, wanted: &Path, target: &Path) {
    s3_ok(
        server,
        &[
            "restore",
            "--repo",
            url,
            "latest",
            "--target",
            s(target),
            "--include",
            s(wanted),
        ],
    );
    assert_eq!(
        fs::read(restored(target, wanted)).unwrap(),
        fs::read(wanted).unwrap()
    );
}

#[test]
fn every_foundation_command_works_with_an_s3_store() {
    let server = S3Server::start();
    server.create_bucket("onsite");
    let url = server.url("onsite", "dinkes");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("data");
    let creds = dir.path().join("agent.credentials");
    let cache = dir.path().join("cache");
    make_source(&src);

    init(&server, &url, &creds);
    assert!(server.bucket_path("onsite").join("dinkes/config").is_file());
    let first = backup(&server, &url, &creds, &cache, &src);
    let first_id = first["snapshot"].as_str().expect("snapshot id").to_string();

    let list: Value =
        serde_json::from_str(&s3_ok(&server, &["snapshots", "--repo", &url, "--json"])).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");

    let ls = s3_ok(&server, &["ls", "--repo", &url, &first_id]);
    assert!(ls.contains("surat-042.txt"), "{ls}");
    let dump = s3_cadang(
        &server,
        &["dump", "--repo", &url, &first_id, s(&src.join("dump.sql"))],
    )
    .output()
    .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert_eq!(dump.stdout, fs::read(src.join("dump.sql")).unwrap());

    restore_matches(&server, &url, "latest", &src, &dir.path().join("r1"));

    // A restore of one small file fetches ranges, not whole packs.
    server.clear_requests();
    let one = dir.path().join("r-one");
    let wanted = src.join("dokumen/surat-007.txt");
    restore_one_file(&server, &url, &wanted, &one);
    let pack_gets: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.line.starts_with("GET ") && r.line.contains("/packs/"))
        .collect();
    assert!(!pack_gets.is_empty(), "no pack was read");
    let mut fetched = 0u64;
    for r in &pack_gets {
        let Some(range) = r.range.as_deref() else {
            // Tree packs are read whole to plan the restore; data packs
            // must not be. A tree pack of this small snapshot is a few KiB.
            let key = r.line["GET /onsite/".len()..].split('?').next().unwrap();
            let size = fs::metadata(server.bucket_path("onsite").join(key))
                .unwrap()
                .len();
            assert!(
                size < 256 * 1024,
                "restoring one file fetched a whole {size}-byte pack: {}",
                r.line
            );
            fetched += size;
            continue;
        };
        let (a, b) = range
            .trim_start_matches("bytes=")
            .split_once('-')
            .expect("bytes=START-END");
        fetched += b.parse::<u64>().unwrap() - a.parse::<u64>().unwrap() + 1;
    }
    assert!(
        fetched < 2 * 1024 * 1024,
        "restoring a 1 KiB file fetched {fetched} bytes of packs"
    );

    s3_ok(&server, &["check", "--repo", &url, "--read-data"]);

    // A second day, then retention at the S3 store.
    fs::write(src.join("dokumen/baru.txt"), b"surat baru").unwrap();
    fs::remove_file(src.join("dokumen/surat-000.txt")).unwrap();
    backup(&server, &url, &creds, &cache, &src);
    let forget = s3_ok(
        &server,
        &[
            "forget",
            "--repo",
            &url,
            "--keep-last",
            "1",
            "--prune",
            "--json",
        ],
    );
    assert!(
        forget.contains(&first_id[..8]),
        "forget did not name the first snapshot: {forget}"
    );
    let list: Value =
        serde_json::from_str(&s3_ok(&server, &["snapshots", "--repo", &url, "--json"])).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    s3_ok(&server, &["check", "--repo", &url, "--read-data"]);
    restore_matches(&server, &url, "latest", &src, &dir.path().join("r2"));
}

#[test]
fn backup_restore_and_check_ride_out_ten_percent_failed_requests() {
    let server = S3Server::start();
    server.create_bucket("onsite");
    let url = server.url("onsite", "faulty");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("data");
    let creds = dir.path().join("agent.credentials");
    let cache = dir.path().join("cache");
    make_source(&src);
    init(&server, &url, &creds);

    server.set_fault_rate(0.10, 20261122);
    // Several days of backups and single-file restores, so that a few
    // hundred requests meet the faults.
    let summary = backup(&server, &url, &creds, &cache, &src);
    assert!(summary["snapshot"].is_string(), "{summary}");
    for day in 1..=4u64 {
        for i in 0..10u64 {
            fs::write(
                src.join(format!("dokumen/surat-{:03}.txt", day * 10 + i)),
                noise(3000, day * 1000 + i),
            )
            .unwrap();
        }
        fs::write(src.join(format!("harian-{day}.bin")), noise(2 * MIB, day)).unwrap();
        backup(&server, &url, &creds, &cache, &src);
        let one = dir.path().join(format!("one-{day}"));
        let wanted = src.join(format!("dokumen/surat-{:03}.txt", day * 10));
        restore_one_file(&server, &url, &wanted, &one);
    }
    restore_matches(&server, &url, "latest", &src, &dir.path().join("r"));
    s3_ok(&server, &["check", "--repo", &url, "--read-data"]);
    let requests = server.requests().len();
    let injected = server.faults_injected();
    assert!(
        requests >= 150 && injected >= 4,
        "the fault wrapper should have failed about 10% of the requests: {injected} of {requests}"
    );

    // Without faults, the repository is still whole.
    server.set_fault_rate(0.0, 0);
    s3_ok(&server, &["check", "--repo", &url, "--read-data"]);
}

/// Exit ≠ 0, one `error:` line holding every keyword, no panic.
fn one_clear_error(what: &str, out: &Output, keywords: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some_and(|c| c != 0),
        "{what}: {:?}\n{err}",
        out.status
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: not one line:\n{err}"
    );
    assert!(err.starts_with("error: "), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    for k in keywords {
        assert!(err.contains(k), "{what}: does not mention {k:?}: {err}");
    }
}

fn files_under(p: &Path) -> usize {
    let mut n = 0;
    for e in fs::read_dir(p).into_iter().flatten().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            n += files_under(&e.path());
        } else {
            n += 1;
        }
    }
    n
}

#[test]
fn wrong_endpoint_keys_or_bucket_give_one_clear_error_and_write_nothing() {
    let server = S3Server::start();
    server.create_bucket("onsite");
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("agent.credentials");
    let init_args = |url: &str| -> Vec<String> {
        [
            "repo",
            "init",
            "--repo",
            url,
            "--pd",
            "BAPPEDA",
            "--agent-credentials",
            s(&creds),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };

    // Wrong endpoint: a port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bad_endpoint = format!("s3://onsite/r?endpoint=http://127.0.0.1:{closed}&region=us-east-1");
    let args = init_args(&bad_endpoint);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s3_cadang(&server, &argv).output().unwrap();
    one_clear_error("wrong endpoint", &out, &["could not reach", "endpoint"]);
    assert!(
        !creds.exists(),
        "a credential file was written for a failed init"
    );

    // Wrong secret key.
    let url = server.url("onsite", "r");
    let args = init_args(&url);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s3_cadang(&server, &argv)
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .output()
        .unwrap();
    one_clear_error("wrong keys", &out, &["credentials"]);
    assert_eq!(files_under(&server.bucket_path("onsite")), 0);
    assert!(!creds.exists());

    // Missing bucket.
    let url = server.url("no-such-bucket", "r");
    let args = init_args(&url);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s3_cadang(&server, &argv).output().unwrap();
    one_clear_error(
        "missing bucket",
        &out,
        &["no-such-bucket", "does not exist"],
    );
    assert!(!server.bucket_path("no-such-bucket").exists());
    assert!(!creds.exists());

    // The same mistakes on reading commands of an existing repository.
    let good = server.url("onsite", "real");
    init(&server, &good, &creds);
    let before = files_under(&server.bucket_path("onsite"));
    let out = s3_cadang(&server, &["snapshots", "--repo", &good])
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .output()
        .unwrap();
    one_clear_error("snapshots with wrong keys", &out, &["credentials"]);
    let out = s3_cadang(&server, &["check", "--repo", &server.url("gone", "real")])
        .output()
        .unwrap();
    one_clear_error(
        "check of a missing bucket",
        &out,
        &["gone", "does not exist"],
    );
    assert_eq!(files_under(&server.bucket_path("onsite")), before);
}
