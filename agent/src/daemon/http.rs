//! JSON over HTTPS to the controller (hyper-util's pooled client over
//! rustls, so the long-poll and the report deliveries reuse a connection).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How a call went wrong.
#[derive(Debug)]
pub enum CallError {
    /// No answer: connection refused, TLS refused, timeout.
    Unreachable(String),
    /// The controller answered with an error status.
    Status { status: u16, message: String },
    /// The controller answered something this agent cannot read.
    Decode(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(r) => write!(f, "no answer: {r}"),
            CallError::Status { status, message } => write!(f, "HTTP {status}: {message}"),
            CallError::Decode(r) => write!(f, "unreadable answer: {r}"),
        }
    }
}

#[derive(Clone)]
pub struct ControllerClient {
    base: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl ControllerClient {
    pub fn new(base: &str, tls: rustls::ClientConfig) -> ControllerClient {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(2)
            .build(connector);
        ControllerClient {
            base: base.trim_end_matches('/').to_string(),
            client,
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    pub async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let json = serde_json::to_vec(body).map_err(|e| CallError::Decode(e.to_string()))?;
        let request = http::Request::post(format!("{}{path}", self.base))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json)))
            .map_err(|e| CallError::Unreachable(format!("bad controller URL: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| CallError::Unreachable(chain(&e)))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| CallError::Unreachable(chain(&e)))?
                .to_bytes();
            Ok::<_, CallError>((status, body))
        };
        let (status, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| {
                CallError::Unreachable(format!("no answer within {}s", timeout.as_secs()))
            })??;
        if !status.is_success() {
            return Err(CallError::Status {
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        serde_json::from_slice(&body).map_err(|e| CallError::Decode(e.to_string()))
    }
}

/// The controller's `{"error": "..."}` body, or the text it sent.
fn error_message(body: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<cadang_proto::api::ApiError>(body) {
        return e.error;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(no message)".into()
    } else {
        text.chars().take(500).collect()
    }
}

/// An error with its causes, on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}
