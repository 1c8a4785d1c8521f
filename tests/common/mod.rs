//! Shared helpers for the CLI tests: run the real `cadang` binary against
//! repositories in temporary directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cadang_testkit::S3Server;

pub mod crafted;

pub const PASSPHRASE: &str = "kata sandi wali data uji";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cadang")
}

/// A command with the test environment: the custodian passphrase, a fast
/// scrypt cost, no terminal.
pub fn cadang(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env("CADANG_PASSPHRASE", PASSPHRASE)
        .env("CADANG_SCRYPT_LOG_N", "10")
        .env_remove("CADANG_TEST_HOLD_BEFORE_COMMIT")
        .stdin(std::process::Stdio::null());
    c
}

pub fn run(args: &[&str]) -> Output {
    cadang(args).output().expect("cadang runs")
}

/// Runs and requires success, showing stderr if not.
pub fn ok(args: &[&str]) -> String {
    succeeded(args, run(args))
}

/// The stdout of a run that must have succeeded; otherwise fails the test
/// with everything the command said.
pub fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "cadang {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's exit code and output, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Where a restore into `target` puts the absolute path `src`.
pub fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").expect("absolute source"))
}

/// `cadang` with the test S3 server's credentials in the environment.
pub fn s3_cadang(server: &S3Server, args: &[&str]) -> Command {
    let mut c = cadang(args);
    c.envs(server.env()).env_remove("AWS_PROFILE");
    c
}

pub fn s3_run(server: &S3Server, args: &[&str]) -> Output {
    s3_cadang(server, args).output().expect("cadang runs")
}

pub fn s3_ok(server: &S3Server, args: &[&str]) -> String {
    succeeded(args, s3_run(server, args))
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub creds: PathBuf,
    pub cache: PathBuf,
}

impl TestRepo {
    pub fn new() -> TestRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        let creds = dir.path().join("agent.credentials");
        let cache = dir.path().join("cache");
        ok(&[
            "repo",
            "init",
            "--repo",
            s(&repo),
            "--pd",
            "DINKES",
            "--agent-credentials",
            s(&creds),
        ]);
        TestRepo {
            dir,
            repo,
            creds,
            cache,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Backs up `paths` and returns the JSON summary.
    pub fn backup(&self, paths: &[&Path], extra: &[&str]) -> serde_json::Value {
        serde_json::from_str(&ok(&self.backup_args(paths, extra)))
            .expect("backup --json prints JSON")
    }

    /// The arguments of a `backup --json` of `paths` into this repository.
    pub fn backup_args<'a>(&'a self, paths: &[&'a Path], extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "backup",
            "--repo",
            s(&self.repo),
            "--credentials",
            s(&self.creds),
            "--cache-dir",
            s(&self.cache),
            "--json",
        ];
        args.extend_from_slice(extra);
        args.extend(paths.iter().map(|p| s(p)));
        args
    }

    pub fn snapshots(&self) -> serde_json::Value {
        serde_json::from_str(&ok(&["snapshots", "--repo", s(&self.repo), "--json"])).expect("JSON")
    }

    pub fn restore(&self, snapshot: &str, target: &Path) {
        ok(&[
            "restore",
            "--repo",
            s(&self.repo),
            snapshot,
            "--target",
            s(target),
        ]);
    }

    pub fn check(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "check",
            "--repo",
            s(&self.repo),
            "--cache-dir",
            s(&self.cache),
        ];
        args.extend_from_slice(extra);
        run(&args)
    }

    /// Total bytes of all files under the repository.
    pub fn size(&self) -> u64 {
        dir_size(&self.repo)
    }
}

pub fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    total
}

/// Deterministic pseudo-random bytes (incompressible).
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Every entry under `root` (relative path, type, mode, size, mtime, content
/// hash or link target), for comparing a restore with its source.
pub fn tree_listing(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let kind = if m.file_type().is_symlink() {
            format!(
                "link->{}",
                std::fs::read_link(&p).unwrap().to_string_lossy()
            )
        } else if m.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            stack.extend(names);
            "dir".into()
        } else {
            format!(
                "file:{}",
                blake3::hash(&std::fs::read(&p).unwrap()).to_hex()
            )
        };
        let mtime = if m.is_dir() || m.file_type().is_symlink() {
            0
        } else {
            m.mtime() * 1_000_000_000 + m.mtime_nsec()
        };
        out.push(format!(
            "{rel} {kind} mode={:o} size={} mtime={mtime}",
            m.mode() & 0o7777,
            if m.is_dir() { 0 } else { m.size() }
        ));
    }
    out.sort();
    out
}
