//! A small HTTPS client for the controller's API: the operator CLI and the
//! tests use it. One connection per request (hyper over tokio-rustls), the
//! controller CA as the only trust anchor, an optional agent certificate,
//! an optional bearer token.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Clone)]
pub struct ApiClient {
    url: String,
    host: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    token: Option<String>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// `url` is `https://HOST[:PORT]`; plain HTTP is refused.
    pub fn new(
        url: &str,
        ca_pem: &str,
        identity: Option<(&str, &str)>,
        token: Option<String>,
    ) -> Result<ApiClient> {
        let rest = url
            .trim_end_matches('/')
            .strip_prefix("https://")
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "controller URL {url:?} must start with https:// (the API is HTTPS only)"
                ))
            })?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_matches(|c| c == '[' || c == ']').to_string(),
                p.parse::<u16>()
                    .map_err(|_| Error::Invalid(format!("controller URL {url:?}: bad port")))?,
            ),
            _ => (authority.to_string(), 443),
        };
        Ok(ApiClient {
            url: format!("https://{authority}"),
            host,
            port,
            tls: crate::tls::client_config(ca_pem, identity)?,
            token,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends a request and returns the status and body, whatever the status.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>)> {
        let connect_err = |m: String| Error::Connect {
            url: self.url.clone(),
            message: m,
        };
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let name =
            ServerName::try_from(self.host.clone()).map_err(|e| connect_err(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| connect_err(format!("TLS: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.host.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(t) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| connect_err(e.to_string()))?
            .to_bytes();
        Ok((status, bytes.to_vec()))
    }

    /// A JSON request; a non-2xx answer becomes [`Error::Api`] with the
    /// controller's message.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let (status, bytes) = self.raw(method, path, body).await?;
        if !(200..300).contains(&status) {
            let message = match serde_json::from_slice::<cadang_proto::api::ApiError>(&bytes) {
                Ok(e) if e.details.is_empty() => e.error,
                Ok(e) => format!("{}\n{}", e.error, e.details.join("\n")),
                Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
            };
            return Err(Error::Api { status, message });
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Api {
            status,
            message: format!("unreadable answer: {e}"),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(path_method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T> {
        self.call(path_method::POST, path, Some(body)).await
    }
}

mod path_method {
    pub const GET: &str = "GET";
    pub const POST: &str = "POST";
}
