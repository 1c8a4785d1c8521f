//! Sessions at the door: the cookie, the session in the state, the role
//! check and the CSRF check, for every console route (`Access::Session`)
//! and for API calls the console's scripts make with the cookie.
//!
//! Cookies are `HttpOnly; Secure; SameSite=Strict; Path=/` and named with
//! the `__Host-` prefix, so a browser refuses them over plain HTTP or from
//! a sub-domain. Every POST carries the session's CSRF token (hidden field
//! `csrf`, or the `X-CSRF-Token` header for scripts); without it: 403.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::i18n::{self, Lang};
use crate::api::auth::Caller;
use crate::api::{ApiErr, App};
use crate::state::sessions::{self, SessionRecord};
use crate::state::users::{self, UserRecord};

pub const SESSION_COOKIE: &str = "__Host-cadang-session";
/// The login form's own CSRF token (double submit: cookie and field).
pub const LOGIN_COOKIE: &str = "__Host-cadang-login";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The largest form body a console POST may have.
pub const FORM_LIMIT: usize = 256 * 1024;

/// What a console handler knows about the signed-in person.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub user: UserRecord,
    pub csrf: String,
    pub lang: Lang,
    /// `?lang=` was given: the answer sets the language cookie.
    pub set_lang: bool,
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with the console's attributes; `max_age` in
/// seconds (0 deletes the cookie).
pub fn set_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age}")
}

/// Compares two tokens without an early exit.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The route layer's work for `Access::Session(roles)`: a valid session
/// of an enabled user with one of `roles`, and on a POST the session's
/// CSRF token. Gives the request back with [`Caller::Person`] and
/// [`ConsoleSession`] in its extensions, or the refusal to send.
pub async fn authorise(app: &Arc<App>, req: Request, roles: &[&str]) -> Result<Request, Response> {
    let lang = i18n::from_request(req.uri().query(), req.headers());
    let set_lang = i18n::asked_in_query(req.uri().query()).is_some();
    let is_post = req.method() == Method::POST;
    let Some((id, session, user)) = signed_in(app, req.headers()).map_err(|e| e.into_response())?
    else {
        return Err(not_signed_in(&req, lang, is_post));
    };
    if !user.has_any(roles) {
        return Err(super::page::refusal(
            StatusCode::FORBIDDEN,
            lang,
            "error.forbidden",
        ));
    }
    let req = if is_post {
        check_csrf(req, &session.csrf, lang).await?
    } else {
        req
    };
    touch(app, &id, &session).await;
    let mut req = req;
    req.extensions_mut().insert(ConsoleSession {
        user: user.clone(),
        csrf: session.csrf.clone(),
        lang,
        set_lang,
    });
    req.extensions_mut().insert(Caller::Person(user));
    Ok(req)
}

/// For API routes called with the session cookie instead of a bearer
/// token: the user, if the cookie names a valid session (`None`: no
/// cookie, try the token). A POST needs the `X-CSRF-Token` header.
pub fn api_caller(app: &App, req: &Request, roles: &[&str]) -> Result<Option<UserRecord>, ApiErr> {
    if cookie(req.headers(), SESSION_COOKIE).is_none() {
        return Ok(None);
    }
    let Some((_, session, user)) = signed_in(app, req.headers())? else {
        return Err(ApiErr::new(
            StatusCode::UNAUTHORIZED,
            "the console session has expired; sign in again at /console/login",
        ));
    };
    if req.method() != Method::GET {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !same_token(sent, &session.csrf) {
            return Err(ApiErr::forbidden(
                "this request lacks the console's CSRF token (X-CSRF-Token); reload the page and try again",
            ));
        }
    }
    if !user.has_any(roles) {
        return Err(ApiErr::forbidden(format!(
            "{} ({}) may not do this; it needs one of: {}",
            user.name,
            user.kinds(),
            roles.join(", ")
        )));
    }
    Ok(Some(user))
}

/// The session id, session and user of the request's cookie, if all are
/// valid now.
fn signed_in(
    app: &App,
    headers: &HeaderMap,
) -> Result<Option<(String, SessionRecord, UserRecord)>, ApiErr> {
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let now = app.clock.now();
    let found = app.state.read(|txn| {
        let Some(session) = sessions::find(txn, id, now)? else {
            return Ok(None);
        };
        Ok(users::get(txn, &session.user)?.map(|u| (session, u)))
    })?;
    Ok(found
        .filter(|(_, u)| !u.disabled)
        .map(|(s, u)| (id.to_string(), s, u)))
}

/// Idle expiry restarts; written at most once a minute per session.
async fn touch(app: &Arc<App>, id: &str, session: &SessionRecord) {
    let now = app.clock.now();
    if !sessions::needs_touch(session, now) {
        return;
    }
    let id = id.to_string();
    if let Err(e) = app
        .state
        .write_blocking(move |txn| sessions::touch(txn, &id, now))
        .await
    {
        tracing::warn!(error = %e, "could not record a console session's last use");
    }
}

/// Not signed in: a page view goes to the login form (and back after);
/// a POST is refused.
fn not_signed_in(req: &Request, lang: Lang, is_post: bool) -> Response {
    if is_post {
        return super::page::refusal(StatusCode::FORBIDDEN, lang, "error.signed_out");
    }
    let next = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/console/fleet");
    let location = format!(
        "/console/login?lang={}&next={}",
        lang.code(),
        super::page::url_encode(next)
    );
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// Reads the body (at most [`FORM_LIMIT`]), checks its `csrf` field or the
/// header, and gives the request back with the same body.
pub async fn check_csrf(req: Request, expected: &str, lang: Lang) -> Result<Request, Response> {
    let header_token = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
        super::page::refusal(StatusCode::PAYLOAD_TOO_LARGE, lang, "error.too_large")
    })?;
    let field = form_field(&bytes, "csrf");
    let sent = header_token.or(field).unwrap_or_default();
    if !same_token(&sent, expected) {
        return Err(super::page::refusal(
            StatusCode::FORBIDDEN,
            lang,
            "error.csrf",
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// One field of an `application/x-www-form-urlencoded` body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}
