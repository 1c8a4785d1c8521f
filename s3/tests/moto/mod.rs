//! A moto S3 server (PyPI `moto[server]`) as a child process on a free
//! loopback port: unlike s3s-fs it stores and enforces Object Lock. Shared
//! by `s3/tests/object_lock.rs` and the binary-level `tests/object_lock.rs`.
//!
//! When moto is not installed the tests fail (never pass silently) and say
//! how to get it: `.ci/run` installs it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

impl Moto {
    pub fn start() -> Moto {
        let probe = Command::new(python())
            .args(["-c", "import moto.server, flask"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            matches!(probe, Ok(s) if s.success()),
            "the Object Lock tests need moto's S3 server, which is not installed for {}: run `.ci/run` \
             (it installs it), or `python3 -m pip install 'moto[server]'`",
            python()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m moto.server");
        let mut moto = Moto { child, port };
        // Wait until it accepts connections (a readiness wait, not a timing assertion).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto.server exited early ({status}) on port {port}");
            }
            assert!(
                Instant::now() < deadline,
                "moto.server did not listen on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `s3://BUCKET/PREFIX?endpoint=...` for this server.
    pub fn url(&self, bucket: &str, prefix: &str, extra: &str) -> String {
        format!(
            "s3://{bucket}/{prefix}?endpoint={}&region=us-east-1{extra}",
            self.endpoint()
        )
    }

    /// Creates a bucket, with Object Lock (and so versioning) if `locked`.
    /// A raw path-style request: moto does not check signatures by default.
    pub fn create_bucket(&self, bucket: &str, locked: bool) {
        let lock = if locked {
            "x-amz-bucket-object-lock-enabled: true\r\n"
        } else {
            ""
        };
        let req = format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{lock}Content-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        s.write_all(req.as_bytes()).expect("send CreateBucket");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "CreateBucket {bucket} failed: {answer}"
        );
    }
}
