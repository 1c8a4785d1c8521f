//! Who can read what: the agent's credential file writes backups but cannot
//! read them; only the custodian's passphrase (or exported identity) can.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use cadang_core::backend::LocalBackend;
use cadang_core::keys::{Credentials, DataIdentity};
use cadang_core::Repository;
use common::*;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A repository with one backup of a small tree; returns it and the source.
fn repo_with_backup() -> (TestRepo, std::path::PathBuf) {
    let t = TestRepo::new();
    let src = t.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/laporan.txt"), b"isi laporan rahasia").unwrap();
    fs::write(src.join("data.bin"), noise(200_000, 5)).unwrap();
    t.backup(&[&src], &["--host", "srv-keys-test"]);
    (t, src)
}

/// The commands that need the custodian's key, for the snapshot of `src`.
fn reading_commands(t: &TestRepo, src: &Path, target: &Path) -> Vec<Vec<String>> {
    let repo = s(&t.repo).to_string();
    vec![
        vec![
            "restore".into(),
            "--repo".into(),
            repo.clone(),
            "latest".into(),
            "--target".into(),
            s(target).into(),
        ],
        vec!["ls".into(), "--repo".into(), repo.clone(), "latest".into()],
        vec![
            "dump".into(),
            "--repo".into(),
            repo,
            "latest".into(),
            s(&src.join("sub/laporan.txt")).into(),
        ],
    ]
}

#[test]
fn reading_needs_the_passphrase() {
    let (t, src) = repo_with_backup();
    let target = t.path("target");
    for args in reading_commands(&t, &src, &target) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();

        // No passphrase at all (and no terminal to ask on).
        let out = cadang(&args)
            .env_remove("CADANG_PASSPHRASE")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_ne!(
            out.status.code(),
            Some(0),
            "{args:?} succeeded without a passphrase"
        );
        assert!(
            out.status.code().is_some(),
            "{args:?} died: {:?}",
            out.status
        );
        assert!(err.to_lowercase().contains("passphrase"), "{args:?}: {err}");
        assert!(!contains(&out.stdout, b"laporan"), "{args:?} printed data");

        // A wrong passphrase.
        let out = cadang(&args)
            .env("CADANG_PASSPHRASE", "bukan kata sandi yang benar")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_ne!(
            out.status.code(),
            Some(0),
            "{args:?} succeeded with a wrong passphrase"
        );
        assert!(err.contains("wrong passphrase"), "{args:?}: {err}");
        assert!(!contains(&out.stdout, b"laporan"), "{args:?} printed data");
    }
    // Nothing was restored.
    let restored_files = if target.exists() {
        fs::read_dir(&target).unwrap().count()
    } else {
        0
    };
    assert_eq!(restored_files, 0, "a failed restore wrote into the target");

    // The agent credential file does not help either.
    let out = cadang(&[
        "ls",
        "--repo",
        s(&t.repo),
        "latest",
        "--identity",
        s(&t.creds),
    ])
    .env_remove("CADANG_PASSPHRASE")
    .output()
    .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("AGE-SECRET-KEY"), "{}", stderr(&out));
}

/// Every string anywhere in a JSON value.
fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

#[test]
fn credentials_cannot_decrypt_snapshots_or_packs() {
    let (t, _src) = repo_with_backup();
    let raw = fs::read(&t.creds).unwrap();
    let creds = Credentials::from_json(&raw).expect("the credential file parses");
    assert_eq!(
        fs::metadata(&t.creds).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // No private age key in the file, in any spelling.
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(
        !text.to_uppercase().contains("AGE-SECRET-KEY"),
        "credential file holds an identity"
    );
    let mut all = Vec::new();
    strings(&serde_json::from_slice(&raw).unwrap(), &mut all);
    assert!(all.len() >= 8, "{all:?}");
    for s in &all {
        assert!(
            DataIdentity::parse(s).is_err(),
            "credential field {s:?} is a data identity"
        );
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let repo = Repository::open(Arc::new(LocalBackend::new(t.repo.clone())))
            .await
            .unwrap();
        repo.check_credentials(&creds)
            .expect("the credentials belong to the repository");
        assert_eq!(creds.data_recipient, repo.config.data_recipient);
        let (snaps, bad) = repo.snapshots().await.unwrap();
        assert!(bad.is_empty());
        assert_eq!(snaps.len(), 1);
        for snap in &snaps {
            // What the agent may read: host and tags.
            assert_eq!(snap.meta(&creds.repo_secret).unwrap().host, "srv-keys-test");
            // What it may not: paths and the root tree. Any identity but the
            // custodian's fails.
            assert!(snap.body(&DataIdentity::generate()).is_err());
        }
        // The custodian's key opens it (the test above is not vacuous).
        let identity = repo.unlock(PASSPHRASE).await.unwrap();
        assert!(snaps[0].body(&identity).is_ok());
        assert!(
            !all.iter().any(|s| s.contains(&identity.encode()[15..])),
            "identity material in credentials"
        );
    });

    // Through the CLI: the credentials show the host but not the paths.
    let list: serde_json::Value = serde_json::from_str(&ok(&[
        "snapshots",
        "--repo",
        s(&t.repo),
        "--credentials",
        s(&t.creds),
        "--json",
    ]))
    .unwrap();
    assert_eq!(list[0]["host"], "srv-keys-test");
    assert!(list[0]["paths"].is_null(), "{list}");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn all_files(root: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            all_files(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

#[test]
fn nothing_in_the_store_is_plaintext() {
    let t = TestRepo::new();
    let dir_name = "arsip-rekam-medis-QWERTY";
    let file_name = "rahasia-pasien-ABCDEF.txt";
    let small_name = "kecil-ZXCVBN.txt";
    let link_target = "target-tautan-POIUYT";
    let host = "puskesmas-sukamaju-HJKLMN";
    let tag = "label-harian-MNBVCX";
    let content = "NIK 3201234567890001 nama Siti Aminah alamat Jl. Merdeka 17\n".repeat(2000);
    let src = t.path(dir_name);
    fs::create_dir(&src).unwrap();
    fs::write(src.join(file_name), &content).unwrap();
    fs::write(src.join(small_name), "NIK 3201234567890002").unwrap();
    std::os::unix::fs::symlink(link_target, src.join("tautan")).unwrap();
    t.backup(&[&src], &["--host", host, "--tag", tag]);
    // A stdin backup with its command.
    let cmd = "echo NIK 3201234567890003 stdin-dump-LKJHGF";
    t.backup(
        &[],
        &[
            "--host",
            host,
            "--stdin-name",
            "dump-UYTREW.sql",
            "--stdin-from",
            cmd,
        ],
    );

    let secrets: [&[u8]; 12] = [
        dir_name.as_bytes(),
        file_name.as_bytes(),
        small_name.as_bytes(),
        link_target.as_bytes(),
        host.as_bytes(),
        tag.as_bytes(),
        b"3201234567890001",
        b"3201234567890002",
        b"3201234567890003",
        b"Siti Aminah",
        b"stdin-dump-LKJHGF",
        b"UYTREW",
    ];
    let mut files = Vec::new();
    all_files(&t.repo, &mut files);
    assert!(files.len() >= 8, "{files:?}");
    let mut leaks = Vec::new();
    for f in &files {
        let data = fs::read(f).unwrap();
        for s in secrets {
            if contains(&data, s) {
                leaks.push(format!(
                    "{} contains {:?}",
                    f.display(),
                    String::from_utf8_lossy(s)
                ));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "plaintext in the store:\n{}",
        leaks.join("\n")
    );

    // The test is not vacuous: the custodian gets it all back.
    let listing = ok(&["ls", "--repo", s(&t.repo), "latest"]);
    assert!(listing.contains("dump-UYTREW.sql"), "{listing}");
}

#[test]
fn exported_identity_restores_without_passphrase() {
    let (t, src) = repo_with_backup();
    let id_file = t.path("DINKES.identity");
    ok(&[
        "repo",
        "export-identity",
        "--repo",
        s(&t.repo),
        "--out",
        s(&id_file),
    ]);
    let m = fs::metadata(&id_file).unwrap();
    assert_eq!(
        m.permissions().mode() & 0o777,
        0o600,
        "identity file must be private"
    );
    let text = fs::read_to_string(&id_file).unwrap();
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
            .count(),
        1,
        "{text}"
    );

    let target = t.path("target");
    let out = cadang(&[
        "restore",
        "--repo",
        s(&t.repo),
        "latest",
        "--target",
        s(&target),
        "--identity",
        s(&id_file),
    ])
    .env_remove("CADANG_PASSPHRASE")
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "restore --identity failed: {}",
        stderr(&out)
    );
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(tree_listing(&restored), tree_listing(&src));

    let out = cadang(&[
        "dump",
        "--repo",
        s(&t.repo),
        "latest",
        s(&src.join("sub/laporan.txt")),
        "--identity",
        s(&id_file),
    ])
    .env_remove("CADANG_PASSPHRASE")
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "dump --identity failed: {}",
        stderr(&out)
    );
    assert_eq!(out.stdout, b"isi laporan rahasia");

    // It refuses to overwrite, and another repository's identity is refused.
    let again = run(&[
        "repo",
        "export-identity",
        "--repo",
        s(&t.repo),
        "--out",
        s(&id_file),
    ]);
    assert_ne!(again.status.code(), Some(0));
    assert_eq!(fs::read_to_string(&id_file).unwrap(), text);
    let other = TestRepo::new();
    let other_id = other.path("other.identity");
    ok(&[
        "repo",
        "export-identity",
        "--repo",
        s(&other.repo),
        "--out",
        s(&other_id),
    ]);
    let out = cadang(&[
        "ls",
        "--repo",
        s(&t.repo),
        "latest",
        "--identity",
        s(&other_id),
    ])
    .env_remove("CADANG_PASSPHRASE")
    .output()
    .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("does not belong"), "{}", stderr(&out));
}
