//! An S3 server for tests: s3s-fs serving a temporary directory on
//! 127.0.0.1 with SigV4 authentication, behind a wrapper that records every
//! request and can inject server errors.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cadang_s3::{S3Backend, S3Options, StaticCredentials};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;

pub const ACCESS_KEY: &str = "cadang-test-access";
pub const SECRET_KEY: &str = "cadang-test-secret-0123456789abcdef";
pub const BUCKET: &str = "backups";

/// One request as the server saw it: `METHOD /path?query`, whether it
/// carried `If-None-Match: *`, and whether it carried a flexible checksum
/// (`x-amz-checksum-*`, `x-amz-trailer`, `x-amz-sdk-checksum-algorithm`).
#[derive(Clone, Debug)]
pub struct Seen {
    pub line: String,
    pub if_none_match: bool,
    pub checksum: bool,
}

#[derive(Clone, Default)]
struct Shared {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// (substring of the request line, how many more times, HTTP status)
    faults: Arc<Mutex<Vec<(String, u32, u16)>>>,
}

#[derive(Clone)]
struct Recording {
    inner: S3Service,
    shared: Shared,
}

/// The fault "answer normally, but break the body off halfway".
pub const TRUNCATE: u16 = 0;

/// A body that sends its bytes, then fails (so the server drops the
/// connection before the announced Content-Length is reached).
struct BreaksOff(Option<bytes::Bytes>);

impl http_body::Body for BreaksOff {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(Some(match self.0.take() {
            Some(data) => Ok(http_body::Frame::data(data)),
            None => Err(std::io::Error::other("injected break-off")),
        }))
    }
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl Service<http::Request<Incoming>> for Recording {
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let line = format!("{} {}", req.method(), req.uri());
        let if_none_match = req.headers().get("if-none-match").is_some_and(|v| v == "*");
        let checksum = req.headers().keys().any(|h| {
            let h = h.as_str();
            h.starts_with("x-amz-checksum-")
                || h == "x-amz-trailer"
                || h == "x-amz-sdk-checksum-algorithm"
        });
        self.shared.seen.lock().unwrap().push(Seen {
            line: line.clone(),
            if_none_match,
            checksum,
        });
        let inject = {
            let mut faults = self.shared.faults.lock().unwrap();
            faults.iter_mut().find_map(|(pat, left, status)| {
                if *left > 0 && line.contains(pat.as_str()) {
                    *left -= 1;
                    Some(*status)
                } else {
                    None
                }
            })
        };
        match inject {
            Some(TRUNCATE) => {
                let resp = Service::call(&self.inner, req);
                Box::pin(async move {
                    // Keep the headers (Content-Length included), send half
                    // the body: the connection drops mid-download.
                    let (parts, mut body) = resp.await?.into_parts();
                    let all = body.store_all_limited(usize::MAX).await.expect("body");
                    let half = all.slice(..all.len() / 2);
                    let broken = s3s::Body::http_body(BreaksOff(Some(half)));
                    Ok(http::Response::from_parts(parts, broken))
                })
            }
            Some(status) => {
                let body = if status >= 500 {
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                    <Error><Code>InternalError</Code><Message>injected by the test</Message></Error>"
                } else {
                    ""
                };
                let resp = http::Response::builder()
                    .status(status)
                    .header("content-type", "application/xml")
                    .body(s3s::Body::from(body.to_string()))
                    .unwrap();
                Box::pin(async move { Ok(resp) })
            }
            None => Service::call(&self.inner, req),
        }
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Starts a server with the bucket [`BUCKET`].
    pub async fn start() -> Server {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let mut builder = S3ServiceBuilder::new(s3s_fs::FileSystem::new(root.path()).unwrap());
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let shared = Shared::default();
        let service = Recording {
            inner: builder.build(),
            shared: shared.clone(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Server {
            addr,
            root,
            shared,
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `s3://BUCKET/PREFIX?endpoint=..` plus `extra` query parameters.
    pub fn url(&self, bucket: &str, prefix: &str, extra: &str) -> String {
        format!("s3://{bucket}/{prefix}?endpoint={}{extra}", self.endpoint())
    }

    /// A backend with the server's keys and quick retries.
    pub fn backend(&self, prefix: &str, extra: &str) -> S3Backend {
        S3Backend::with_options(&self.url(BUCKET, prefix, extra), options(SECRET_KEY)).unwrap()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn clear_requests(&self) {
        self.shared.seen.lock().unwrap().clear();
    }

    /// The next `times` requests whose line contains `pattern` get a 500.
    pub fn fail(&self, pattern: &str, times: u32) {
        self.inject(pattern, times, 500);
    }

    /// The next `times` requests whose line contains `pattern` get `status`
    /// (an XML InternalError body for 5xx, an empty body otherwise), or for
    /// [`TRUNCATE`] their real answer cut off halfway.
    pub fn inject(&self, pattern: &str, times: u32, status: u16) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .push((pattern.to_string(), times, status));
    }

    /// Leftover multipart part files of s3s-fs (`.upload_id-*` in its root).
    pub fn pending_parts(&self) -> usize {
        std::fs::read_dir(self.root.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".upload_id-")
            })
            .count()
    }
}

pub fn options(secret: &str) -> S3Options {
    S3Options {
        credentials: Some(StaticCredentials {
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: secret.into(),
            session_token: None,
        }),
        max_attempts: 3,
        connect_timeout: Duration::from_secs(5),
        attempt_timeout: Duration::from_secs(60),
        operation_timeout: Duration::from_secs(120),
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
