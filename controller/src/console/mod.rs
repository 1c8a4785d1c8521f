//! The web console: server-rendered HTML pages (askama templates in
//! `controller/templates/console/`, compiled into the binary) in Bahasa
//! Indonesia (default) and English, served by the controller under
//! `/console/` on the same HTTPS listener as the API.
//!
//! Who may open which page is decided in the one route table
//! (`api::auth::ROUTES`, `Access::Session` / `Access::Public`); the pages
//! narrow further per PD with the API's role logic (`UserRecord::covers_pd`),
//! so a custodian of one PD gets 403 on another's page, not only a hidden
//! link. No CDN, no external fonts, one small stylesheet, no script except
//! where a page needs one (the approval page, `assets/js/`).

pub mod audit;
pub mod fleet;
pub mod i18n;
pub mod jobs;
pub mod login;
pub mod oidc;
pub mod page;
pub mod password;
pub mod pd;
pub mod reports;
pub mod restores;
pub mod scripts;
pub mod session;
pub mod users;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::api::App;

/// What can go wrong in the console's own logic (login, people).
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(
        "a password needs at least {min} characters; choose a longer one (a sentence is fine)"
    )]
    WeakPassword { min: usize },
    #[error("password hashing failed: {0}")]
    Password(String),
    #[error("the page could not be rendered: {0}; this is a bug in cadang, report it with the page's address")]
    Render(String),
}

/// The console's routes (each one is in `api::auth::ROUTES`; the API
/// router merges these under its authorisation layer). The scripts
/// (`scripts.rs`) and single sign-on (`oidc.rs`) have their own.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/assets/console.css", get(page::stylesheet))
        .route("/console", get(fleet::home))
        .route("/console/logout", post(login::logout))
        .route("/console/fleet", get(fleet::page))
        .route("/console/pds/{pd}", get(pd::page))
        .route("/console/jobs", get(jobs::list))
        .route("/console/jobs/{id}", get(jobs::detail))
        .route(
            "/console/restores",
            get(restores::list).post(restores::file),
        )
        .route("/console/restores/{id}", get(restores::detail))
        .route("/console/restores/{id}/reject", post(restores::reject))
        .route("/console/restores/{id}/cancel", post(restores::cancel))
        .route("/console/reports", get(reports::list))
        .route("/console/audit", get(audit::page))
        .route("/console/audit/export", get(audit::export))
        .route("/console/users", get(users::page).post(users::add))
        .route("/console/users/{name}", post(users::change))
}
