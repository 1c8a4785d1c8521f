//! Signing in and out: the login form (its own CSRF token, double submit),
//! password check with lockout, the session cookie, logout. Every attempt
//! is audited: `user.login` ok/refused, `user.lockout`, `user.logout`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::json;

use super::i18n::{self, Catalogue, Lang};
use super::page::{self, html};
use super::session::{self, same_token, set_cookie, ConsoleSession, LOGIN_COOKIE, SESSION_COOKIE};
use crate::api::{ApiErr, App};
use crate::audit::NewEntry;
use crate::state::sessions::{self as store, ABSOLUTE_HOURS};
use crate::state::users::{self, Failure, UserRecord};

#[derive(Debug, Deserialize, Default)]
pub struct LoginQuery {
    pub next: Option<String>,
    pub lang: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub next: String,
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    t: &'a Catalogue,
    lang: &'static str,
    csrf: String,
    next: String,
    user: String,
    error: Option<String>,
    sso_label: Option<String>,
    other_lang_href: String,
    other_lang_label: &'static str,
}

/// Only console paths, never another site (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console/") && !n.contains("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/console/fleet".into(),
    }
}

fn login_page(
    app: &App,
    lang: Lang,
    next: &str,
    user: &str,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let token = store::random_secret().unwrap_or_default();
    let other = if lang == Lang::Id { Lang::En } else { Lang::Id };
    let p = LoginPage {
        t: i18n::catalogue(lang),
        lang: lang.code(),
        csrf: token.clone(),
        next: next.to_string(),
        user: user.to_string(),
        error,
        sso_label: app.config.sso.as_ref().map(|s| s.label.clone()),
        other_lang_href: format!(
            "/console/login?lang={}&next={}",
            other.code(),
            page::url_encode(next)
        ),
        other_lang_label: if other == Lang::En {
            "English"
        } else {
            "Bahasa Indonesia"
        },
    };
    let body = p.render().unwrap_or_default();
    let mut resp = html(status, body, Some(lang));
    if let Ok(v) = HeaderValue::from_str(&set_cookie(LOGIN_COOKIE, &token, 3600)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[utoipa::path(get, path = "/console/login", tag = "console", responses((status = 200, description = "The login form", content_type = "text/html", body = String)))]
pub async fn form(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let lang = q
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .unwrap_or_else(|| i18n::from_request(None, &headers));
    login_page(
        &app,
        lang,
        &safe_next(q.next.as_deref()),
        "",
        None,
        StatusCode::OK,
    )
}

/// Why a login was refused, for the audit entry and the page.
enum Refused {
    Unknown,
    Disabled,
    Locked(chrono::DateTime<chrono::Utc>),
    NoPassword,
    Wrong,
}

#[utoipa::path(post, path = "/console/login", tag = "console", responses((status = 303, description = "Signed in: session cookie set"), (status = 401, description = "Refused (wrong password, locked, disabled)"), (status = 403, description = "The login form's CSRF token is missing")))]
pub async fn submit(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
    Form(f): Form<LoginForm>,
) -> Result<Response, ApiErr> {
    let lang = q
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .unwrap_or_else(|| i18n::from_request(None, &headers));
    let t = i18n::catalogue(lang);
    let next = safe_next(Some(&f.next));
    // Stage 1: the form's own CSRF token (cookie and field must agree).
    let cookie_token = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !same_token(cookie_token, &f.csrf) {
        return Ok(page::refusal(StatusCode::FORBIDDEN, lang, "error.csrf"));
    }
    let name: String = f.user.trim().chars().take(200).collect();
    // Stage 2: the account, and the password (off the async threads:
    // argon2 is deliberately slow).
    let now = app.clock.now();
    let user = app.state.read(|txn| users::get(txn, &name))?;
    let verdict = check(user.as_ref(), f.password, now).await;
    // Stage 3: record the outcome (with the lockout, in one commit) and answer.
    match verdict {
        Ok(()) => {
            let user =
                user.ok_or_else(|| ApiErr::from(crate::Error::Invalid("user vanished".into())))?;
            open_session(&app, &user, "password", &next).await
        }
        Err(why) => {
            let failure = record_refusal(&app, &name, user.as_ref(), &why).await?;
            let message = match (why, failure) {
                (_, Some(Failure::LockedNow(until))) | (Refused::Locked(until), _) => {
                    t.f("login.locked", &[("until", &page::when(&app, Some(until)))])
                }
                (Refused::Disabled, _) => t.m("login.disabled"),
                (Refused::NoPassword, _) => t.m("login.no_password"),
                _ => t.m("login.wrong"),
            };
            Ok(login_page(
                &app,
                lang,
                &next,
                &name,
                Some(message),
                StatusCode::UNAUTHORIZED,
            ))
        }
    }
}

async fn check(
    user: Option<&UserRecord>,
    password: String,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Refused> {
    let Some(user) = user else {
        let _ = tokio::task::spawn_blocking(move || super::password::verify_dummy(&password)).await;
        return Err(Refused::Unknown);
    };
    if user.disabled {
        return Err(Refused::Disabled);
    }
    if let Some(until) = user.locked_at(now) {
        return Err(Refused::Locked(until));
    }
    let Some(stored) = user.password.clone() else {
        return Err(Refused::NoPassword);
    };
    let ok = tokio::task::spawn_blocking(move || super::password::verify(&password, &stored))
        .await
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(Refused::Wrong)
    }
}

/// Counts a wrong password and writes `user.login` refused (and
/// `user.lockout` when this failure locks the account) in one commit.
async fn record_refusal(
    app: &Arc<App>,
    name: &str,
    user: Option<&UserRecord>,
    why: &Refused,
) -> Result<Option<Failure>, ApiErr> {
    let reason = match why {
        Refused::Unknown => "unknown user",
        Refused::Disabled => "account disabled",
        Refused::Locked(_) => "account locked",
        Refused::NoPassword => "no password set",
        Refused::Wrong => "wrong password",
    };
    let counts = matches!(why, Refused::Wrong) && user.is_some();
    let actor = user
        .map(UserRecord::actor)
        .unwrap_or_else(|| name.to_string());
    let subject = format!("user:{name}");
    let (a, n, now) = (app.clone(), name.to_string(), app.clock.now());
    let failure = app
        .state
        .write_blocking(move |txn| {
            let failure = if counts {
                Some(users::login_failed(txn, &n, now)?)
            } else {
                None
            };
            a.record_in(
                txn,
                NewEntry::new(&actor, "user.login", &subject, "refused")
                    .detail(json!({ "reason": reason, "method": "password" })),
            )?;
            if let Some(Failure::LockedNow(until)) = failure {
                a.record_in(
                    txn,
                    NewEntry::new("controller", "user.lockout", &subject, "ok").detail(json!({
                        "until": until,
                        "after_failures": users::LOCKOUT_AFTER,
                    })),
                )?;
            }
            Ok(failure)
        })
        .await?;
    Ok(failure)
}

/// Opens a session for `user` (signed in by `method`: `password` or
/// `sso`), audits `user.login` ok, sets the session cookie and sends the
/// browser to `next`. The single sign-on callback calls this too.
pub async fn open_session(
    app: &Arc<App>,
    user: &UserRecord,
    method: &str,
    next: &str,
) -> Result<Response, ApiErr> {
    let (a, u, m, now) = (
        app.clone(),
        user.clone(),
        method.to_string(),
        app.clock.now(),
    );
    let (id, _) = app
        .state
        .write_blocking(move |txn| {
            if m == "password" {
                users::login_succeeded(txn, &u.name)?;
            }
            let opened = store::create(txn, &u.name, &m, now)?;
            a.record_in(
                txn,
                NewEntry::new(&u.actor(), "user.login", &format!("user:{}", u.name), "ok")
                    .detail(json!({ "method": m })),
            )?;
            Ok(opened)
        })
        .await?;
    let mut resp = page::see_other(&safe_next(Some(next)));
    let h = resp.headers_mut();
    for c in [
        set_cookie(SESSION_COOKIE, &id, ABSOLUTE_HOURS * 3600),
        set_cookie(LOGIN_COOKIE, "", 0),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

#[utoipa::path(post, path = "/console/logout", tag = "console", responses((status = 303, description = "Done: to the next page"), (status = 400, description = "Refused, with the reason (HTML page)"), (status = 403, description = "No session, role not allowed, or CSRF token missing")))]
pub async fn logout(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
    headers: HeaderMap,
) -> Result<Response, ApiErr> {
    let id = session::cookie(&headers, SESSION_COOKIE)
        .unwrap_or_default()
        .to_string();
    let (a, u) = (app.clone(), s.user.clone());
    app.state
        .write_blocking(move |txn| {
            store::remove(txn, &id)?;
            a.record_in(
                txn,
                NewEntry::new(&u.actor(), "user.logout", &format!("user:{}", u.name), "ok"),
            )?;
            Ok(())
        })
        .await?;
    let mut resp = page::see_other(&format!("/console/login?lang={}", s.lang.code()));
    if let Ok(v) = HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", 0)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}
