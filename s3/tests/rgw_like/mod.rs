//! An HTTP proxy in front of moto that answers like Ceph RGW 16 on a
//! versioned bucket: it drops `If-None-Match` from every request (RGW
//! ignores the header there), so a create-only PUT over an existing key
//! lands as a new version, as it does on RGW.
//!
//! Two switches put a writer where only the versioned-bucket guard of
//! `write_new` can stop it, deterministically:
//!
//! * [`RgwLike::hide_from_head`]: HEADs of matching keys answer 404, i.e.
//!   the object appeared between a writer's HEAD and its PUT;
//! * [`RgwLike::hold_puts`]: PUTs of a matching key wait until `n` of them
//!   have arrived, i.e. `n` writers all passed their HEAD before any PUT.
//!
//! One request per connection (`Connection: close` both ways) keeps the
//! proxy a few lines of HTTP/1.1; moto does not check signatures, so the
//! dropped header does not break SigV4.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Barrier;

#[derive(Default)]
struct State {
    hidden: Vec<String>,
    held: Option<(String, Arc<Barrier>)>,
    log: Vec<String>,
}

pub struct RgwLike {
    pub port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RgwLike {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RgwLike {
    /// Listens on a free loopback port and forwards to moto on `upstream`.
    pub async fn start(upstream: u16) -> RgwLike {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let st = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, upstream, st).await;
                });
            }
        });
        RgwLike { port, state, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// HEADs whose path contains `part` answer 404 from now on.
    pub fn hide_from_head(&self, part: &str) {
        self.state.lock().unwrap().hidden.push(part.to_string());
    }

    /// PUTs whose path contains `part` wait until `n` of them arrived.
    pub fn hold_puts(&self, part: &str, n: usize) {
        self.state.lock().unwrap().held = Some((part.to_string(), Arc::new(Barrier::new(n))));
    }

    /// "METHOD /path?query" of every request so far, without the SDK's
    /// `x-id=OPERATION` query (it only names the operation).
    pub fn requests(&self) -> Vec<String> {
        let log = self.state.lock().unwrap().log.clone();
        log.into_iter()
            .map(|r| {
                r.replace("?x-id=PutObject", "")
                    .replace("?x-id=GetObject", "")
            })
            .collect()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

async fn serve(mut client: TcpStream, upstream: u16, st: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (head, body) = read_request(&mut client).await?;
    let line = head.lines().next().unwrap_or_default().to_string();
    let mut words = line.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (hidden, held) = {
        let mut s = st.lock().unwrap();
        s.log.push(format!("{method} {path}"));
        let hidden = method == "HEAD" && s.hidden.iter().any(|h| path.contains(h.as_str()));
        let held = s
            .held
            .as_ref()
            .filter(|(p, _)| {
                method == "PUT" && path.contains(p.as_str()) && !path.contains("uploadId")
            })
            .map(|(_, b)| b.clone());
        (hidden, held)
    };
    if hidden {
        client
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return client.shutdown().await;
    }
    if let Some(barrier) = held {
        barrier.wait().await;
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).await?;
    up.write_all(rewrite(&head, &["if-none-match", "connection", "expect"]).as_bytes())
        .await?;
    up.write_all(&body).await?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).await?;
    let split = find(&answer, b"\r\n\r\n").map_or(answer.len(), |i| i + 4);
    let answer_head = String::from_utf8_lossy(&answer[..split]).to_string();
    client
        .write_all(rewrite(&answer_head, &["connection"]).as_bytes())
        .await?;
    client.write_all(&answer[split..]).await?;
    client.shutdown().await
}

/// The request head (up to the blank line) and its Content-Length body;
/// answers `100 Continue` when the client waits for it.
async fn read_request(client: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let mut body = buf[end..].to_vec();
    while body.len() < length {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((head, body))
}

/// `head` without the headers in `drop`, plus `Connection: close`.
fn rewrite(head: &str, drop: &[&str]) -> String {
    let mut out = String::new();
    for line in head.trim_end_matches("\r\n").split("\r\n") {
        let name = line.split(':').next().unwrap_or("").trim();
        if drop.iter().any(|d| name.eq_ignore_ascii_case(d)) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
