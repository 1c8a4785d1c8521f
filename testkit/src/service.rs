//! The HTTP wrapper in front of s3s: records requests, injects faults.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::Service;
use s3s::service::S3Service;

use crate::SharedLog;

/// The targeted fault "answer normally, but break the body off halfway".
pub const TRUNCATE: u16 = 0;

/// What went wrong with a request, when the test made it go wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// An HTTP status with an S3 XML error body (500 InternalError, 503 SlowDown).
    Status(u16),
    /// The connection is closed before the request reaches the store.
    DropBefore,
    /// The request takes effect, then the connection is closed: the client
    /// never learns that it succeeded (the case that tests idempotency).
    DropAfter,
    /// The real answer, with its body broken off halfway.
    Truncate,
    /// The real answer, 300 ms late.
    Slow,
}

/// One request as the server saw it: `METHOD /path?query`, whether it
/// carried `If-None-Match: *`, its `Range`, a flexible checksum (`x-amz-checksum-*`,
/// `x-amz-trailer`, `x-amz-sdk-checksum-algorithm`), and the fault injected.
#[derive(Clone, Debug)]
pub struct Seen {
    pub line: String,
    pub if_none_match: bool,
    pub checksum: bool,
    /// The `Range` header of a GET, as sent (`bytes=START-END`).
    pub range: Option<String>,
    pub fault: Option<Fault>,
}

pub(crate) struct RandomFaults {
    rate: f64,
    state: u64,
}

impl RandomFaults {
    pub(crate) fn new(rate: f64, seed: u64) -> RandomFaults {
        RandomFaults {
            rate: rate.clamp(0.0, 1.0),
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    fn draw(&mut self, method: &http::Method) -> Option<Fault> {
        let roll = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        if roll >= self.rate {
            return None;
        }
        Some(match self.next() % 6 {
            0 => Fault::Status(500),
            1 => Fault::Status(503),
            2 => Fault::DropBefore,
            3 => Fault::DropAfter,
            4 if method == http::Method::GET => Fault::Truncate,
            4 => Fault::Status(500),
            _ => Fault::Slow,
        })
    }
}

#[derive(Clone, Default)]
pub(crate) struct Shared {
    pub(crate) seen: SharedLog,
    /// (substring of the request line, how many more times, HTTP status or TRUNCATE)
    pub(crate) targeted: Arc<Mutex<Vec<(String, u32, u16)>>>,
    pub(crate) random: Arc<Mutex<Option<RandomFaults>>>,
}

#[derive(Clone)]
pub(crate) struct Recording {
    inner: S3Service,
    shared: Shared,
}

impl Recording {
    pub(crate) fn new(inner: S3Service, shared: Shared) -> Recording {
        Recording { inner, shared }
    }

    fn choose(&self, line: &str, method: &http::Method) -> Option<Fault> {
        let targeted = {
            let mut t = self.shared.targeted.lock().unwrap();
            t.iter_mut().find_map(|(pat, left, status)| {
                if *left > 0 && line.contains(pat.as_str()) {
                    *left -= 1;
                    Some(*status)
                } else {
                    None
                }
            })
        };
        match targeted {
            Some(TRUNCATE) => Some(Fault::Truncate),
            Some(status) => Some(Fault::Status(status)),
            None => self.shared.random.lock().unwrap().as_mut()?.draw(method),
        }
    }
}

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

fn error_response(status: u16) -> s3s::HttpResponse {
    let code = if status == 503 {
        "SlowDown"
    } else {
        "InternalError"
    };
    let body = if status >= 500 {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <Error><Code>{code}</Code><Message>injected by the test</Message></Error>"
        )
    } else {
        String::new()
    };
    http::Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(s3s::Body::from(body))
        .expect("a valid response")
}

fn dropped() -> s3s::HttpError {
    s3s::HttpError::new(Box::new(std::io::Error::other(
        "connection dropped by the test",
    )))
}

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
        let range = req
            .headers()
            .get("range")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let fault = self.choose(&line, req.method());
        self.shared.seen.lock().unwrap().push(Seen {
            line,
            if_none_match,
            checksum,
            range,
            fault,
        });
        match fault {
            None => Service::call(&self.inner, req),
            Some(Fault::Status(status)) => Box::pin(async move {
                // Read the upload first, as a real server does: answering
                // mid-upload would turn the error into a broken pipe.
                let _ = http_body_util::BodyExt::collect(req.into_body()).await;
                Ok(error_response(status))
            }),
            Some(Fault::DropBefore) => Box::pin(async move { Err(dropped()) }),
            Some(Fault::DropAfter) => {
                let resp = Service::call(&self.inner, req);
                Box::pin(async move {
                    let _ = resp.await;
                    Err(dropped())
                })
            }
            Some(Fault::Slow) => {
                let resp = Service::call(&self.inner, req);
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    resp.await
                })
            }
            Some(Fault::Truncate) => {
                let resp = Service::call(&self.inner, req);
                Box::pin(async move {
                    // Keep the headers (Content-Length included), send half
                    // the body: the connection drops mid-download.
                    let (parts, mut body) = resp.await?.into_parts();
                    let all = body.store_all_limited(usize::MAX).await.map_err(|e| {
                        s3s::HttpError::new(Box::new(std::io::Error::other(e.to_string())))
                    })?;
                    let half = all.slice(..all.len() / 2);
                    let broken = s3s::Body::http_body(BreaksOff(Some(half)));
                    Ok(http::Response::from_parts(parts, broken))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_faults_hit_the_rate_and_every_kind() {
        let mut f = RandomFaults::new(0.10, 7);
        let mut kinds = std::collections::HashSet::new();
        let mut hits = 0;
        for i in 0..20_000 {
            let m = if i % 2 == 0 {
                http::Method::GET
            } else {
                http::Method::PUT
            };
            if let Some(k) = f.draw(&m) {
                hits += 1;
                kinds.insert(format!("{k:?}"));
            }
        }
        assert!(
            (1_800..=2_200).contains(&hits),
            "{hits} faults in 20000 at 10%"
        );
        assert_eq!(kinds.len(), 6, "{kinds:?}");
    }
}
