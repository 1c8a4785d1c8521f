//! What every page shares: the frame (navigation, who is signed in, the
//! language switch, the logout form), the HTML answer with its security
//! headers, the refusal page, the stylesheet, and formatting helpers.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::i18n::{self, Catalogue, Lang};
use super::session::{set_cookie, ConsoleSession};
use super::ConsoleError;
use crate::api::App;

pub const STYLESHEET: &str = include_str!("../../assets/console.css");

/// Same-origin everything; no inline script; no framing (clickjacking).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub struct NavItem {
    pub href: &'static str,
    pub label: String,
    pub current: bool,
}

/// The page frame the base template draws.
pub struct Frame {
    pub lang: &'static str,
    pub title: String,
    pub user: String,
    pub roles: String,
    pub csrf: String,
    pub nav: Vec<NavItem>,
    /// The same page in the other language.
    pub lang_href: String,
    pub lang_label: &'static str,
}

impl Frame {
    /// The frame of page `path` titled by message `title_key`.
    pub fn new(s: &ConsoleSession, path: &str, title_key: &str) -> Frame {
        let t = i18n::catalogue(s.lang);
        let items: [(&'static str, &str, bool); 6] = [
            ("/console/fleet", "nav.fleet", true),
            ("/console/jobs", "nav.jobs", true),
            ("/console/restores", "nav.restores", true),
            ("/console/reports", "nav.reports", true),
            ("/console/audit", "nav.audit", true),
            ("/console/users", "nav.users", s.user.has("admin")),
        ];
        let nav = items
            .into_iter()
            .filter(|(_, _, shown)| *shown)
            .map(|(href, key, _)| NavItem {
                href,
                label: t.m(key),
                current: path.starts_with(href),
            })
            .collect();
        let other = match s.lang {
            Lang::Id => Lang::En,
            Lang::En => Lang::Id,
        };
        Frame {
            lang: s.lang.code(),
            title: t.m(title_key),
            user: s.user.name.clone(),
            roles: role_names(t, &s.user),
            csrf: s.csrf.clone(),
            nav,
            lang_href: format!("{path}?lang={}", other.code()),
            lang_label: match other {
                Lang::Id => "Bahasa Indonesia",
                Lang::En => "English",
            },
        }
    }
}

/// The user's roles in words (`Wali Data DUKCAPIL, auditor`).
pub fn role_names(t: &Catalogue, u: &crate::state::users::UserRecord) -> String {
    let names: Vec<String> = u
        .roles
        .iter()
        .map(|r| match r {
            cadang_proto::api::Role::Custodian { pds } => {
                format!("{} {}", t.m("role.custodian"), pds.join(", "))
            }
            other => t.m(&format!("role.{}", other.kind())),
        })
        .collect();
    if names.is_empty() {
        t.m("role.none")
    } else {
        names.join(", ")
    }
}

/// Renders a template into the console's HTML answer.
pub fn render(s: &ConsoleSession, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => html(StatusCode::OK, body, s.set_lang.then_some(s.lang)),
        Err(e) => {
            let e = ConsoleError::Render(e.to_string());
            tracing::error!(error = %e, "console page");
            refusal(StatusCode::INTERNAL_SERVER_ERROR, s.lang, "error.internal")
        }
    }
}

/// An HTML answer with the console's headers; `lang` set: remember it.
pub fn html(status: StatusCode, body: String, lang: Option<Lang>) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    security_headers(h);
    if let Some(l) = lang {
        if let Ok(v) = HeaderValue::from_str(&set_cookie(i18n::LANG_COOKIE, l.code(), 31_536_000)) {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

pub fn security_headers(h: &mut axum::http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

#[derive(Template)]
#[template(path = "console/refusal.html")]
struct Refusal<'a> {
    t: &'a Catalogue,
    lang: &'static str,
    status: u16,
    message: String,
}

/// A short page saying why a request was refused (message `key`).
pub fn refusal(status: StatusCode, lang: Lang, key: &str) -> Response {
    let t = i18n::catalogue(lang);
    let page = Refusal {
        t,
        lang: lang.code(),
        status: status.as_u16(),
        message: t.m(key),
    };
    let body = page
        .render()
        .unwrap_or_else(|_| format!("{} {}", status.as_u16(), t.m(key)));
    html(status, body, None)
}

/// The refusal page for an error of the shared logic (restores, ...):
/// its status and its sentence (written for an operator, in English).
pub fn api_refusal(lang: Lang, e: crate::api::ApiErr) -> Response {
    let t = i18n::catalogue(lang);
    let mut message = e.error;
    for d in e.details {
        message.push('\n');
        message.push_str(&d);
    }
    let status = e.status;
    let page = Refusal {
        t,
        lang: lang.code(),
        status: status.as_u16(),
        message,
    };
    let body = page.render().unwrap_or_default();
    html(status, body, None)
}

/// A redirect after a POST (303: the browser fetches the page with GET).
pub fn see_other(location: &str) -> Response {
    let mut resp = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_string())],
    )
        .into_response();
    security_headers(resp.headers_mut());
    resp
}

#[utoipa::path(get, path = "/console/assets/console.css", tag = "console", responses((status = 200, description = "The console stylesheet", content_type = "text/css", body = String)))]
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// Percent-encoding for a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A time in the regency's zone (`2026-03-02 07:00 WIB`), or `—`.
pub fn when(app: &App, t: Option<DateTime<Utc>>) -> String {
    let Some(t) = t else {
        return "—".into();
    };
    let zone = app
        .policies()
        .and_then(|s| s.regency.zone.parse::<chrono_tz::Tz>().ok());
    match zone {
        Some(z) => cadang_policies::explain::format_local(&t.with_timezone(&z)),
        None => cadang_policies::explain::format_utc(&t),
    }
}

/// A duration in words a person reads at a glance (`3 j 20 m`, `2 h 5 m`).
pub fn span(t: &Catalogue, seconds: Option<i64>) -> String {
    let Some(s) = seconds else {
        return "—".into();
    };
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    let (ud, uh, um) = (t.m("unit.day"), t.m("unit.hour"), t.m("unit.minute"));
    if d > 0 {
        format!("{d} {ud} {h} {uh}")
    } else if h > 0 {
        format!("{h} {uh} {m} {um}")
    } else {
        format!("{m} {um}")
    }
}
