//! The few HTTP requests the controller makes to the OpenID provider
//! (discovery, keys, token exchange): one connection per request, hyper
//! over tokio-rustls, a time limit and a size limit on every answer.
//!
//! Plain HTTP is accepted only for a provider on the loopback interface
//! (the tests' provider); anything else must be HTTPS, verified against
//! the configured CA bundle.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use url::Url;

use super::OidcError;

/// The provider must answer within this.
const TIMEOUT: Duration = Duration::from_secs(15);
/// A discovery document, a key set or a token answer is a few KB.
const MAX_BODY: usize = 1 << 20;
/// Debian's bundle of the system's trusted CAs.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What requests to the provider need: the TLS trust.
#[derive(Clone)]
pub struct Http {
    tls: Arc<ClientConfig>,
}

impl Http {
    /// Trusts the CAs in the PEM file `bundle`.
    pub fn new(bundle: &std::path::Path) -> Result<Http, OidcError> {
        let bad = |m: String| OidcError::Setup(format!("CA bundle {}: {m}", bundle.display()));
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(bundle)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bad("holds no usable CA certificate".into()));
        }
        let mut tls = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| OidcError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Http { tls: Arc::new(tls) })
    }

    pub async fn get(&self, url: &Url) -> Result<(u16, Vec<u8>), OidcError> {
        self.send("GET", url, None, Vec::new()).await
    }

    /// A form POST (the token endpoint), with HTTP Basic client
    /// authentication.
    pub async fn post_form(
        &self,
        url: &Url,
        basic: (&str, &str),
        form: &[(&str, &str)],
    ) -> Result<(u16, Vec<u8>), OidcError> {
        use base64::Engine;
        // RFC 6749 2.3.1: id and secret are form-encoded before Basic.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(basic.0),
            enc(basic.1)
        ));
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.send(
            "POST",
            url,
            Some(format!("Basic {auth}")),
            body.into_bytes(),
        )
        .await
    }

    async fn send(
        &self,
        method: &str,
        url: &Url,
        auth: Option<String>,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), OidcError> {
        let unreachable = |m: String| OidcError::Unreachable {
            url: url.to_string(),
            message: m,
        };
        let fut = self.exchange(method, url, auth, body);
        tokio::time::timeout(TIMEOUT, fut)
            .await
            .map_err(|_| unreachable(format!("no answer within {} s", TIMEOUT.as_secs())))?
            .map_err(unreachable)
    }

    async fn exchange(
        &self,
        method: &str,
        url: &Url,
        auth: Option<String>,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), String> {
        let target = Target::of(url)?;
        let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| e.to_string())?;
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path = format!("{path}?{q}");
        }
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, target.authority.as_str())
            .header(hyper::header::ACCEPT, "application/json");
        if method == "POST" {
            req = req.header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        }
        if let Some(a) = auth {
            req = req.header(hyper::header::AUTHORIZATION, a);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        if target.tls {
            let name = ServerName::try_from(target.host.clone()).map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            roundtrip(TokioIo::new(tls), req).await
        } else {
            roundtrip(TokioIo::new(tcp), req).await
        }
    }
}

async fn roundtrip<IO>(io: IO, req: hyper::Request<Full<Bytes>>) -> Result<(u16, Vec<u8>), String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, bytes.to_vec()))
}

/// Where a URL connects to.
struct Target {
    host: String,
    port: u16,
    authority: String,
    tls: bool,
}

impl Target {
    fn of(url: &Url) -> Result<Target, String> {
        check_scheme(url)?;
        let host = url
            .host_str()
            .ok_or("the URL has no host")?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        Ok(Target {
            host,
            port,
            authority,
            tls: url.scheme() == "https",
        })
    }
}

/// HTTPS, or HTTP to the loopback interface only: a provider's answers
/// decide who is signed in, they must not cross a network in clear.
pub fn check_scheme(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        s => Err(format!(
            "{url} uses {s}: the provider must be reached over https (plain http only on 127.0.0.1/localhost)"
        )),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        let ok = |u: &str| check_scheme(&Url::parse(u).unwrap()).is_ok();
        assert!(ok("https://sso.example.go.id/realms/kab"));
        assert!(ok("http://127.0.0.1:4000/"));
        assert!(ok("http://localhost:4000/"));
        assert!(ok("http://[::1]:4000/"));
        assert!(!ok("http://sso.example.go.id/"));
        assert!(!ok("http://10.0.0.5/"));
        assert!(!ok("ftp://127.0.0.1/"));
    }

    #[test]
    fn target_keeps_the_port_in_the_host_header() {
        let t = Target::of(&Url::parse("http://127.0.0.1:4000/x").unwrap()).unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("127.0.0.1", 4000, false));
        assert_eq!(t.authority, "127.0.0.1:4000");
        let t = Target::of(&Url::parse("https://sso.example.go.id/x").unwrap()).unwrap();
        assert_eq!((t.port, t.tls), (443, true));
        assert_eq!(t.authority, "sso.example.go.id");
    }
}
