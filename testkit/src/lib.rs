//! Test support: a real S3 server on loopback for cadang's tests and bench.
//!
//! [`S3Server`] is s3s-fs (an S3 implementation over a directory) behind
//! real HTTP and real SigV4 authentication, run on its own thread and
//! runtime so that synchronous tests which spawn the `cadang` binary can use
//! it as well as async tests. A wrapper in front of it records every request
//! (to count PUTs) and injects faults: targeted ones ([`S3Server::inject`])
//! and random ones at a rate ([`S3Server::set_fault_rate`]) — server
//! errors, dropped connections before and after the request took effect,
//! bodies broken off halfway, and slow answers.
//!
//! s3s-fs ignores Object Lock; tests of retention use a server that enforces
//! it (moto), not this one.

mod service;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

pub use service::{Fault, Seen, TRUNCATE};
use service::{Recording, Shared};

pub const ACCESS_KEY: &str = "cadang-test-access";
pub const SECRET_KEY: &str = "cadang-test-secret-0123456789abcdef";
pub const REGION: &str = "us-east-1";

pub struct S3Server {
    addr: SocketAddr,
    root: PathBuf,
    _temp: Option<tempfile::TempDir>,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl S3Server {
    /// Starts a server over a fresh temporary directory on a free port.
    pub fn start() -> S3Server {
        let temp = tempfile::tempdir().expect("temporary directory for the S3 server");
        let mut s = S3Server::start_at(temp.path(), 0).expect("start the test S3 server");
        s._temp = Some(temp);
        s
    }

    /// Starts a server over `root` (buckets are its sub-directories) on
    /// `127.0.0.1:port` (0 for a free one).
    pub fn start_at(root: &Path, port: u16) -> std::io::Result<S3Server> {
        let fs =
            s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let shared = Shared::default();
        let service = Recording::new(builder.build(), shared.clone());

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-s3")
            .enable_all()
            .build()?;
        // Bound with std so that this also works when called from async code.
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                let http = ConnBuilder::new(TokioExecutor::new());
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((socket, _)) = accepted else { continue };
                            let conn = http
                                .serve_connection(TokioIo::new(socket), service.clone())
                                .into_owned();
                            tokio::spawn(async move {
                                let _ = conn.await;
                            });
                        }
                    }
                }
            });
            rt.shutdown_background();
        });
        Ok(S3Server {
            addr,
            root: root.to_path_buf(),
            _temp: None,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates a bucket (a directory of the server's root).
    pub fn create_bucket(&self, bucket: &str) {
        std::fs::create_dir_all(self.root.join(bucket)).expect("create bucket directory");
    }

    /// Where a bucket's objects lie on disk, for tests that damage or wipe them.
    pub fn bucket_path(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket)
    }

    /// The store URL for `bucket`/`prefix` on this server.
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "s3://{bucket}/{prefix}?endpoint={}&region={REGION}",
            self.endpoint()
        )
    }

    /// Environment variables that give a client this server's credentials.
    pub fn env(&self) -> [(&'static str, &'static str); 2] {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ]
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn clear_requests(&self) {
        self.shared.seen.lock().unwrap().clear();
    }

    /// Requests whose method is `method` and whose line contains `needle`
    /// and were answered by the real server (injected faults not counted).
    pub fn count(&self, method: &str, needle: &str) -> usize {
        let prefix = format!("{method} ");
        self.requests()
            .iter()
            .filter(|r| r.line.starts_with(&prefix) && r.line.contains(needle) && r.fault.is_none())
            .count()
    }

    /// The next `times` requests whose line contains `pattern` get a 500.
    pub fn fail(&self, pattern: &str, times: u32) {
        self.inject(pattern, times, 500);
    }

    /// The next `times` requests whose line contains `pattern` get `status`
    /// (an XML error body), or for [`TRUNCATE`] their real answer cut off
    /// halfway.
    pub fn inject(&self, pattern: &str, times: u32, status: u16) {
        self.shared
            .targeted
            .lock()
            .unwrap()
            .push((pattern.to_string(), times, status));
    }

    /// From now on, a share `rate` (0.0–1.0) of all requests fails, the
    /// kind of failure drawn at random (seeded, so runs repeat) from
    /// [`Fault`]'s variants.
    pub fn set_fault_rate(&self, rate: f64, seed: u64) {
        *self.shared.random.lock().unwrap() = Some(service::RandomFaults::new(rate, seed));
    }

    /// How many requests got an injected fault so far.
    pub fn faults_injected(&self) -> usize {
        self.requests().iter().filter(|r| r.fault.is_some()).count()
    }

    /// Leftover multipart part files of s3s-fs (`.upload_id-*` in its root).
    pub fn pending_parts(&self) -> usize {
        std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
                    .count()
            })
            .unwrap_or(0)
    }
}

/// Deterministic, incompressible-looking test data.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub(crate) type SharedLog = Arc<Mutex<Vec<Seen>>>;
