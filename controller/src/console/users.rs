//! People (admin only): the list, adding a user, disabling and enabling,
//! a new password, roles. Every change is audited (`user.add`,
//! `user.disable`, `user.enable`, `user.password`, `user.roles`) in the
//! commit that makes it, and ends the person's open sessions when it
//! takes rights away.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Form};
use cadang_proto::api::Role;
use serde::Deserialize;
use serde_json::json;

use super::i18n::{self, Catalogue};
use super::page::{self, Frame};
use super::session::ConsoleSession;
use crate::api::{ApiErr, App};
use crate::audit::NewEntry;
use crate::state::sessions;
use crate::state::users::{self, UserRecord};

/// `admin`, `operator`, `auditor`, `custodian:PD1,PD2` (as `cadang user
/// add --role` takes it).
pub fn parse_role(text: &str) -> Result<Role, String> {
    let text = text.trim();
    match text.split_once(':') {
        None => match text {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "auditor" => Ok(Role::Auditor),
            "custodian" => Err("a custodian role names its PDs: custodian:DUKCAPIL,DINKES".into()),
            other => Err(format!(
                "unknown role {other:?}; roles are admin, operator, custodian:PD[,PD...], auditor"
            )),
        },
        Some(("custodian", pds)) => Ok(Role::Custodian { pds: pd_list(pds) }),
        Some((other, _)) => Err(format!(
            "only the custodian role takes PDs (custodian:DUKCAPIL), not {other:?}"
        )),
    }
}

/// `DUKCAPIL, dinkes` → `["DUKCAPIL", "DINKES"]` (PD codes are upper case).
pub fn pd_list(text: &str) -> Vec<String> {
    let mut pds: Vec<String> = text
        .split([',', ' '])
        .map(|p| p.trim().to_uppercase())
        .filter(|p| !p.is_empty())
        .collect();
    pds.sort();
    pds.dedup();
    pds
}

/// The roles a form's checkboxes and custodian field ask for.
fn form_roles(f: &UserForm) -> Vec<Role> {
    let mut roles = Vec::new();
    let on = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
    if on(&f.admin) {
        roles.push(Role::Admin);
    }
    if on(&f.operator) {
        roles.push(Role::Operator);
    }
    let pds = pd_list(f.custodian.as_deref().unwrap_or_default());
    if !pds.is_empty() {
        roles.push(Role::Custodian { pds });
    }
    if on(&f.auditor) {
        roles.push(Role::Auditor);
    }
    roles
}

#[derive(Debug, Deserialize, Default)]
pub struct UserForm {
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub nip: String,
    #[serde(default)]
    pub password: String,
    pub admin: Option<String>,
    pub operator: Option<String>,
    pub auditor: Option<String>,
    /// PD codes the user is Wali Data of (comma separated).
    pub custodian: Option<String>,
}

pub struct Row {
    pub name: String,
    pub href: String,
    pub nip: String,
    pub roles: String,
    pub status: String,
    pub active: bool,
    pub has_password: bool,
    pub admin: bool,
    pub operator: bool,
    pub auditor: bool,
    pub custodian: String,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage<'a> {
    t: &'a Catalogue,
    f: Frame,
    rows: Vec<Row>,
    message: Option<String>,
    error: Option<String>,
}

fn rows(app: &App, t: &Catalogue) -> Result<Vec<Row>, ApiErr> {
    let now = app.clock.now();
    let all = app.state.read(users::all)?;
    Ok(all
        .into_iter()
        .map(|u| {
            let status = if u.disabled {
                t.m("users.disabled")
            } else if let Some(until) = u.locked_at(now) {
                t.f("users.locked", &[("until", &page::when(app, Some(until)))])
            } else {
                t.m("users.active")
            };
            Row {
                href: format!("/console/users/{}", page::url_encode(&u.name)),
                nip: u.nip.clone().unwrap_or_else(|| "—".into()),
                roles: page::role_names(t, &u),
                active: !u.disabled,
                has_password: u.password.is_some(),
                admin: u.has("admin"),
                operator: u.has("operator"),
                auditor: u.has("auditor"),
                custodian: u.custodian_pds().join(", "),
                name: u.name,
                status,
            }
        })
        .collect())
}

fn show(
    app: &App,
    s: &ConsoleSession,
    message: Option<String>,
    error: Option<String>,
) -> Result<Response, ApiErr> {
    let t = i18n::catalogue(s.lang);
    let p = UsersPage {
        t,
        f: Frame::new(s, "/console/users", "users.title"),
        rows: rows(app, t)?,
        message,
        error,
    };
    let mut resp = page::render(s, &p);
    if p.error.is_some() {
        *resp.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(resp)
}

#[utoipa::path(get, path = "/console/users", tag = "console", responses((status = 200, description = "HTML page", content_type = "text/html", body = String), (status = 303, description = "Not signed in: to the login page"), (status = 403, description = "Role or PD not allowed (HTML page)")))]
pub async fn page(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
) -> Result<Response, ApiErr> {
    show(&app, &s, None, None)
}

/// `POST /console/users`: a new user (with a password: they sign in to
/// the console; API tokens come from `cadang user add --token`).
#[utoipa::path(post, path = "/console/users", tag = "console", responses((status = 303, description = "Done: to the next page"), (status = 400, description = "Refused, with the reason (HTML page)"), (status = 403, description = "No session, role not allowed, or CSRF token missing")))]
pub async fn add(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
    Form(f): Form<UserForm>,
) -> Result<Response, ApiErr> {
    let t = i18n::catalogue(s.lang);
    let nip = Some(f.nip.trim().to_string()).filter(|n| !n.is_empty());
    let mut user = UserRecord::new(&f.name, nip, form_roles(&f), app.clock.now());
    let hashed = {
        let pw = f.password.clone();
        tokio::task::spawn_blocking(move || super::password::hash(&pw))
            .await
            .map_err(|e| ApiErr::from(crate::Error::State(e.to_string())))?
    };
    match hashed {
        Ok(h) => user.password = Some(h),
        Err(e) => return show(&app, &s, None, Some(e.to_string())),
    }
    let (a, admin, u) = (app.clone(), s.user.actor(), user.clone());
    let created = app
        .state
        .write_blocking(move |txn| {
            users::create(txn, &u)?;
            a.record_in(
                txn,
                NewEntry::new(&admin, "user.add", &format!("user:{}", u.name), "ok")
                    .detail(json!({ "nip": u.nip, "roles": u.roles })),
            )?;
            Ok(())
        })
        .await;
    match created {
        Ok(()) => show(
            &app,
            &s,
            Some(t.f("users.added", &[("name", &user.name)])),
            None,
        ),
        Err(crate::Error::Invalid(m)) => show(&app, &s, None, Some(m)),
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/users/{name}` with `action` = `disable`, `enable`,
/// `password` or `roles`.
#[utoipa::path(post, path = "/console/users/{name}", tag = "console", params(("name" = String, Path, description = "User name")), responses((status = 303, description = "Done: to the next page"), (status = 400, description = "Refused, with the reason (HTML page)"), (status = 403, description = "No session, role not allowed, or CSRF token missing")))]
pub async fn change(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
    Path(name): Path<String>,
    Form(f): Form<UserForm>,
) -> Result<Response, ApiErr> {
    let t = i18n::catalogue(s.lang);
    let action = f.action.clone();
    let password = match action.as_str() {
        "password" => {
            let pw = f.password.clone();
            let h = tokio::task::spawn_blocking(move || super::password::hash(&pw))
                .await
                .map_err(|e| ApiErr::from(crate::Error::State(e.to_string())))?;
            match h {
                Ok(h) => Some(h),
                Err(e) => return show(&app, &s, None, Some(e.to_string())),
            }
        }
        "disable" | "enable" | "roles" => None,
        _ => return show(&app, &s, None, Some(t.m("users.bad_action"))),
    };
    if action == "disable" && name == s.user.name {
        return show(&app, &s, None, Some(t.m("users.not_yourself")));
    }
    let roles = form_roles(&f);
    let (a, admin, n, act) = (app.clone(), s.user.actor(), name.clone(), action.clone());
    let done = app
        .state
        .write_blocking(move |txn| {
            let updated = users::update(txn, &n, |u| match act.as_str() {
                "disable" => u.disabled = true,
                "enable" => {
                    u.disabled = false;
                    u.failed_logins = 0;
                    u.locked_until = None;
                }
                "password" => {
                    u.password = password;
                    u.failed_logins = 0;
                    u.locked_until = None;
                }
                _ => u.roles = roles,
            })?;
            // Rights taken away take effect now, not at the session's end.
            let ended = if act == "enable" {
                0
            } else {
                sessions::remove_user(txn, &n)?
            };
            let detail = match act.as_str() {
                "roles" => json!({ "roles": updated.roles, "sessions_ended": ended }),
                _ => json!({ "sessions_ended": ended }),
            };
            a.record_in(
                txn,
                NewEntry::new(&admin, &format!("user.{act}"), &format!("user:{n}"), "ok")
                    .detail(detail),
            )?;
            Ok(())
        })
        .await;
    match done {
        Ok(()) => show(
            &app,
            &s,
            Some(t.f(&format!("users.done_{action}"), &[("name", &name)])),
            None,
        ),
        Err(crate::Error::Invalid(m)) => show(&app, &s, None, Some(m)),
        Err(e) => Err(e.into()),
    }
}
