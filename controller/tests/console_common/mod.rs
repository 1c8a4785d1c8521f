//! A small browser for the console tests: real HTTPS (the controller's CA
//! as trust anchor), a cookie jar that honours `Max-Age=0`, form posts,
//! no automatic redirects (the tests look at them).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use cadang_controller::state::users::{self, UserRecord};
use cadang_proto::api::Role;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use cadang_controller::engine::Clock;

use crate::common::Controller;

pub const PASSWORD: &str = "kata sandi yang panjang";

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// The value of hidden field `name` in the page (first one).
    pub fn hidden(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let at = self.body.find(&marker)? + marker.len();
        let end = self.body[at..].find('"')?;
        Some(self.body[at..at + end].to_string())
    }
}

pub struct Browser {
    host: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    pub jar: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(c: &Controller) -> Browser {
        let rest = c.url.strip_prefix("https://").unwrap();
        let (host, port) = rest.rsplit_once(':').unwrap();
        Browser {
            host: host.into(),
            port: port.parse().unwrap(),
            tls: cadang_controller::tls::client_config(&c.ca_pem, None).unwrap(),
            jar: BTreeMap::new(),
        }
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<(String, &str)>,
        extra: &[(&str, &str)],
    ) -> Resp {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .unwrap();
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(ServerName::try_from(self.host.clone()).unwrap(), tcp)
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.host.as_str());
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", cookies.join("; "));
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let bytes = match body {
            Some((b, kind)) => {
                req = req.header("content-type", kind);
                b.into_bytes()
            }
            None => Vec::new(),
        };
        let resp = sender
            .send_request(req.body(Full::new(Bytes::from(bytes))).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let r = Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        for c in r.set_cookies() {
            let first = c.split(';').next().unwrap_or_default();
            if let Some((k, v)) = first.split_once('=') {
                if c.contains("Max-Age=0") {
                    self.jar.remove(k);
                } else {
                    self.jar.insert(k.to_string(), v.to_string());
                }
            }
        }
        r
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, None, &[]).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.request(
            "POST",
            path,
            Some((body, "application/x-www-form-urlencoded")),
            &[],
        )
        .await
    }

    /// Opens the login form and signs in; returns the answer to the POST.
    pub async fn login(&mut self, user: &str, password: &str) -> Resp {
        let form = self.get("/console/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form
            .hidden("csrf")
            .expect("the login form has a CSRF field");
        self.post(
            "/console/login",
            &[
                ("user", user),
                ("password", password),
                ("csrf", &csrf),
                ("next", ""),
            ],
        )
        .await
    }

    /// The CSRF token of the signed-in session (from a page's logout form).
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/console/fleet").await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.hidden("csrf")
            .expect("a page carries the session's CSRF token")
    }
}

/// Adds a user with [`PASSWORD`] straight into the running controller's
/// state.
pub fn add_user(c: &Controller, name: &str, nip: Option<&str>, roles: Vec<Role>) {
    let mut u = UserRecord::new(name, nip.map(str::to_string), roles, c.clock.now());
    u.password = Some(cadang_controller::console::password::hash(PASSWORD).unwrap());
    c.app.state.write(|txn| users::create(txn, &u)).unwrap();
}

pub fn user(c: &Controller, name: &str) -> UserRecord {
    c.app
        .state
        .read(|txn| users::get(txn, name))
        .unwrap()
        .unwrap()
}

/// Audit entries with `action`, oldest first.
pub fn audit_entries(c: &Controller, action: &str) -> Vec<cadang_controller::audit::AuditEntry> {
    use cadang_controller::audit::AuditLog;
    c.app
        .audit
        .log()
        .entries(1, u64::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}
