//! Single sign-on: OpenID Connect authorization code flow with PKCE (S256),
//! state and nonce, the ID token verified against the provider's published
//! keys. Optional (`[sso]` in controller.toml); local accounts always work.
//!
//! Who gets in (roles are always granted in cadang, never by the provider):
//! - an ID token with the NIP claim signs in the cadang user with that NIP,
//!   with that user's roles;
//! - an ID token without an NIP claim can only sign in a cadang user that
//!   has no NIP and holds no role but auditor, matched by the token's
//!   verified e-mail address to the user's name. Operators and custodians
//!   must have an NIP (so they are never matched this way), and an admin
//!   without an NIP signs in with the local password. Anyone else is
//!   refused and the refusal is audited.
//!
//! Routes: `GET /console/sso/login` (to the provider) and
//! `GET /console/sso/callback` (back from it). The flow's state travels in
//! a short-lived cookie bound to this browser (login CSRF).

mod http;
mod identity;
mod provider;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use sha2::Digest;

use crate::api::App;
use crate::audit::NewEntry;
use crate::config::SsoSettings;
use crate::report::Lang;
use crate::state::users::UserRecord;
use crate::state::{sessions, users};

pub use identity::{match_user, pkce_challenge, SsoIdentity};
pub use provider::{Discovery, Provider};

pub const LOGIN_PATH: &str = "/console/sso/login";
pub const CALLBACK_PATH: &str = "/console/sso/callback";
/// Where a signed-in person lands.
const AFTER_LOGIN: &str = "/console/fleet";
/// Holds the flow's `state` between the two routes.
const FLOW_COOKIE: &str = "cadang_sso";
/// A login must come back from the provider within this.
const FLOW_MINUTES: i64 = 10;
/// Logins in flight kept at most (a flood of /login cannot fill memory).
const MAX_PENDING: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("single sign-on is not set up right: {0}; fix [sso] in controller.toml and restart the controller")]
    Setup(String),
    #[error("the SSO provider at {url} cannot be reached: {message}; check that it runs and that the controller can reach it (proxy, firewall, DNS)")]
    Unreachable { url: String, message: String },
    #[error("the SSO provider answered something unusable: {0}")]
    Provider(String),
    #[error("the SSO login was refused: its ID token is not valid: {0}")]
    Token(String),
    #[error("this SSO login expired or did not start here; start again from the login page")]
    Flow,
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotSetUp(String),
    #[error("the controller state: {0}")]
    State(#[from] crate::error::Error),
}

/// A login in flight, keyed by the SHA-256 of its `state`.
struct Pending {
    nonce: String,
    verifier: String,
    started: DateTime<Utc>,
}

/// The SSO side of the console: settings, the provider (discovered on
/// first use, so the controller starts while the provider is down) and the
/// logins in flight.
pub struct Sso {
    app: Arc<App>,
    settings: SsoSettings,
    http: http::Http,
    provider: tokio::sync::Mutex<Option<Provider>>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Sso {
    /// `None` when `[sso]` is absent.
    pub fn from_app(app: Arc<App>) -> Result<Option<Arc<Sso>>, OidcError> {
        let Some(settings) = app.config.sso.clone() else {
            return Ok(None);
        };
        check_settings(&settings)?;
        let bundle = match &settings.ca_file {
            Some(p) => app.config.resolve(p),
            None => http::SYSTEM_BUNDLE.into(),
        };
        let http = http::Http::new(&bundle)?;
        Ok(Some(Arc::new(Sso {
            app,
            settings,
            http,
            provider: tokio::sync::Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
        })))
    }

    /// The discovered provider (discovering it now if not yet).
    async fn provider(&self) -> Result<Provider, OidcError> {
        let mut slot = self.provider.lock().await;
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let p = Provider::discover(&self.http, &self.settings.issuer).await?;
        *slot = Some(p.clone());
        Ok(p)
    }

    /// Stage 1: a fresh state, nonce and PKCE verifier, remembered; the URL
    /// of the provider's login page and the state for the flow cookie.
    async fn begin(&self) -> Result<(String, String), OidcError> {
        let p = self.provider().await?;
        let state = sessions::random_secret()?;
        let nonce = sessions::random_secret()?;
        let verifier = sessions::random_secret()?;
        let mut url = provider::parse_url(&p.meta.authorization_endpoint)?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &self.settings.redirect_url)
            .append_pair("scope", &self.settings.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &pkce_challenge(&verifier))
            .append_pair("code_challenge_method", "S256");
        self.remember(&state, nonce, verifier);
        Ok((url.to_string(), state))
    }

    fn remember(&self, state: &str, nonce: String, verifier: String) {
        let now = self.app.clock.now();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| now - p.started < Duration::minutes(FLOW_MINUTES));
        if pending.len() >= MAX_PENDING {
            // Under a flood the oldest logins in flight go first.
            if let Some(k) = pending
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| k.clone())
            {
                pending.remove(&k);
            }
        }
        pending.insert(
            hex::encode(sha2::Sha256::digest(state.as_bytes())),
            Pending {
                nonce,
                verifier,
                started: now,
            },
        );
    }

    /// Takes the login `state` names, once, if the cookie carries the same
    /// state and it is recent.
    fn take(&self, state: &str, cookie: Option<&str>) -> Result<Pending, OidcError> {
        let same =
            cookie.is_some_and(|c| provider::constant_time_eq(c.as_bytes(), state.as_bytes()));
        if !same {
            return Err(OidcError::Flow);
        }
        let key = hex::encode(sha2::Sha256::digest(state.as_bytes()));
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let p = pending.remove(&key).ok_or(OidcError::Flow)?;
        if self.app.clock.now() - p.started >= Duration::minutes(FLOW_MINUTES) {
            return Err(OidcError::Flow);
        }
        Ok(p)
    }

    /// Stage 2: the code for tokens (with the PKCE verifier), the ID token
    /// verified; its claims.
    async fn redeem(
        &self,
        code: &str,
        pending: &Pending,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        let mut p = self.provider().await?;
        let url = provider::parse_url(&p.meta.token_endpoint)?;
        let (status, body) = self
            .http
            .post_form(
                &url,
                (&self.settings.client_id, &self.settings.client_secret),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", &self.settings.redirect_url),
                    ("code_verifier", &pending.verifier),
                ],
            )
            .await?;
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if status != 200 {
            return Err(OidcError::Provider(format!(
                "the token endpoint refused the code (HTTP {status}: {}); if it says invalid_client, check [sso] client_id and client_secret",
                answer["error_description"].as_str().or(answer["error"].as_str()).unwrap_or("no reason given")
            )));
        }
        let id_token = answer["id_token"].as_str().ok_or_else(|| {
            OidcError::Provider(
                "the token answer holds no id_token (is `openid` in [sso] scopes?)".into(),
            )
        })?;
        if !p.knows_key_of(id_token) {
            // The provider may have rotated its keys since discovery.
            p.refresh_keys(&self.http).await?;
            *self.provider.lock().await = Some(p.clone());
        }
        p.verify(
            id_token,
            &self.settings.client_id,
            &pending.nonce,
            self.app.clock.now(),
        )
    }

    /// Stage 3: the cadang user this person is, or the refusal (audited
    /// here; an admitted login is audited with its session, by
    /// `login::open_session`).
    async fn admit(&self, who: &SsoIdentity) -> Result<UserRecord, OidcError> {
        let all = self.app.state.read(users::all)?;
        match match_user(&all, who) {
            Ok(u) => Ok(u),
            Err(reason) => {
                let (app, who2, why) = (self.app.clone(), who.clone(), reason.clone());
                self.app
                    .state
                    .write_blocking(move |txn| {
                        app.record_in(
                            txn,
                            NewEntry::new(&who2.actor(), "user.login", &who2.actor(), "refused")
                                .detail(serde_json::json!({"method": "sso", "sub": who2.sub, "reason": why})),
                        )
                        .map(|_| ())
                    })
                    .await?;
                Err(OidcError::Refused(reason))
            }
        }
    }
}

fn check_settings(s: &SsoSettings) -> Result<(), OidcError> {
    let issuer = provider::parse_url(&s.issuer)?;
    http::check_scheme(&issuer).map_err(OidcError::Setup)?;
    let redirect = provider::parse_url(&s.redirect_url)?;
    if redirect.path() != CALLBACK_PATH {
        return Err(OidcError::Setup(format!(
            "redirect_url must end in {CALLBACK_PATH} (got {})",
            s.redirect_url
        )));
    }
    if !s.scopes.iter().any(|x| x == "openid") {
        return Err(OidcError::Setup("scopes must include \"openid\"".into()));
    }
    if s.client_id.is_empty() || s.nip_claim.is_empty() {
        return Err(OidcError::Setup(
            "client_id and nip_claim must not be empty".into(),
        ));
    }
    Ok(())
}

/// What the SSO routes serve from: the set-up provider, or why there is
/// none (no `[sso]`, or a broken one: the controller still starts, local
/// accounts work, and the login page says what is wrong).
pub type SsoSlot = Arc<Result<Arc<Sso>, String>>;

/// The SSO routes (always present, in `api::auth::ROUTES` as public).
pub fn routes(app: Arc<App>) -> axum::Router<Arc<App>> {
    use axum::routing::get;
    let slot: SsoSlot = Arc::new(match Sso::from_app(app) {
        Ok(Some(sso)) => Ok(sso),
        Ok(None) => Err("single sign-on is not set up on this controller ([sso] in controller.toml); sign in with your cadang password".into()),
        Err(e) => {
            tracing::error!(error = %e, "single sign-on disabled");
            Err(e.to_string())
        }
    });
    axum::Router::new()
        .route(LOGIN_PATH, get(login))
        .route(CALLBACK_PATH, get(callback))
        .with_state(slot)
}

/// The label of the login page's SSO button, when SSO is set up.
pub fn button_label(app: &App) -> Option<String> {
    app.config.sso.as_ref().map(|s| s.label.clone())
}

fn ready(slot: &SsoSlot) -> Result<Arc<Sso>, OidcError> {
    slot.as_ref().clone().map_err(OidcError::NotSetUp)
}

/// `GET /console/sso/login`: to the provider.
#[utoipa::path(get, path = "/console/sso/login", tag = "console", responses((status = 303, description = "To the OpenID provider's login page (flow cookie set)"), (status = 404, description = "Single sign-on is not set up"), (status = 502, description = "The provider cannot be reached or answers nonsense")))]
pub async fn login(State(slot): State<SsoSlot>, uri: Uri, headers: HeaderMap) -> Response {
    let lang = super::i18n::from_request(uri.query(), &headers);
    let begun = match ready(&slot) {
        Ok(sso) => sso.begin().await,
        Err(e) => Err(e),
    };
    match begun {
        Ok((url, state)) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, url),
                (header::SET_COOKIE, flow_cookie(&state, FLOW_MINUTES * 60)),
                (header::CACHE_CONTROL, "no-store".into()),
            ],
        )
            .into_response(),
        Err(e) => failure(e, lang),
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    /// RFC 9207: the issuer of this answer, when the provider says it.
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// `GET /console/sso/callback`: back from the provider.
#[utoipa::path(get, path = "/console/sso/callback", tag = "console", responses((status = 200, description = "Signed in: session cookie set, the page moves on to the console"), (status = 400, description = "The login expired or did not start in this browser"), (status = 403, description = "Refused: invalid ID token, or no cadang user for this person (audited)")))]
pub async fn callback(
    State(slot): State<SsoSlot>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let lang = super::i18n::from_request(uri.query(), &headers);
    let finished = match ready(&slot) {
        Ok(sso) => finish(&sso, &headers, q).await,
        Err(e) => Err(e),
    };
    let user = match finished {
        Ok(u) => u,
        Err(e) => return failure(e, lang),
    };
    let Ok(sso) = ready(&slot) else {
        return failure(OidcError::Flow, lang);
    };
    match super::login::open_session(&sso.app, &user, "sso", AFTER_LOGIN).await {
        Ok(opened) => landing(opened, lang),
        Err(e) => e.into_response(),
    }
}

/// The signed-in answer as a page that moves on by itself, not a redirect:
/// the browser came here from the provider's site, and in a redirect chain
/// that started on another site a `SameSite=Strict` cookie is not sent, so
/// a 303 to the fleet page would arrive without the new session. A
/// navigation this page starts is same-site, and carries it.
fn landing(opened: Response, lang: Lang) -> Response {
    let cookies: Vec<header::HeaderValue> = opened
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    let t = super::i18n::catalogue(lang);
    let body = format!(
        "<!doctype html><html lang=\"{}\"><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={AFTER_LOGIN}\"><title>cadang</title>\
         <p><a href=\"{AFTER_LOGIN}\">{}</a></p></html>",
        lang.code(),
        escape(&t.m("login.sso_continue"))
    );
    let mut resp = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response();
    let h = resp.headers_mut();
    for c in cookies {
        h.append(header::SET_COOKIE, c);
    }
    // The flow is over: its cookie goes.
    if let Ok(v) = header::HeaderValue::from_str(&flow_cookie("", 0)) {
        h.append(header::SET_COOKIE, v);
    }
    resp
}

async fn finish(sso: &Sso, headers: &HeaderMap, q: CallbackQuery) -> Result<UserRecord, OidcError> {
    let state = q.state.as_deref().unwrap_or_default();
    let pending = sso.take(state, cookie(headers, FLOW_COOKIE).as_deref())?;
    if let Some(err) = q.error {
        return Err(OidcError::Refused(format!(
            "the SSO provider did not sign you in ({err}: {})",
            q.error_description.unwrap_or_default()
        )));
    }
    if let Some(iss) = &q.iss {
        // An answer from another provider (a mix-up attack) is refused.
        if iss.trim_end_matches('/') != sso.settings.issuer.trim_end_matches('/') {
            return Err(OidcError::Refused(format!(
                "the answer came from issuer {iss:?}, not from the configured {:?}",
                sso.settings.issuer
            )));
        }
    }
    let code = q
        .code
        .ok_or_else(|| OidcError::Provider("the provider sent no code".into()))?;
    let claims = sso.redeem(&code, &pending).await?;
    let who = SsoIdentity::from_claims(&claims, &sso.settings.nip_claim);
    sso.admit(&who).await
}

/// `SameSite=Lax`: the provider sends the browser back with a top-level
/// GET from another site, on which a Strict cookie would not come along.
fn flow_cookie(state: &str, max_age: i64) -> String {
    format!("{FLOW_COOKIE}={state}; Path=/console/sso; HttpOnly; Secure; SameSite=Lax; Max-Age={max_age}")
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[derive(askama::Template)]
#[template(path = "console/sso_refusal.html")]
struct SsoRefusal<'a> {
    t: &'a super::i18n::Catalogue,
    lang: &'static str,
    /// The error, as written for the operator (and the audit log).
    message: String,
}

/// A refusal page in the browser's language (`?lang=`, the language
/// cookie, else Indonesian): what happened, and the way back to the
/// password login.
fn failure(e: OidcError, lang: Lang) -> Response {
    let status = match &e {
        OidcError::Refused(_) | OidcError::Token(_) => StatusCode::FORBIDDEN,
        OidcError::Flow => StatusCode::BAD_REQUEST,
        OidcError::NotSetUp(_) => StatusCode::NOT_FOUND,
        OidcError::Unreachable { .. } | OidcError::Provider(_) => StatusCode::BAD_GATEWAY,
        OidcError::Setup(_) | OidcError::State(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::warn!(error = %e, "SSO login failed");
    let page = SsoRefusal {
        t: super::i18n::catalogue(lang),
        lang: lang.code(),
        message: e.to_string(),
    };
    // Askama escapes `message`; the fallback is plain text, escaped here.
    let body = askama::Template::render(&page).unwrap_or_else(|_| escape(&e.to_string()));
    super::page::html(status, body, None)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests;
