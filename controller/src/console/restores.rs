//! Restore requests (permintaan pemulihan): the list, a request's page
//! with what the approval script needs in `data-*` attributes, the filing
//! form for operators and the reject form for the PD's Wali Data.
//!
//! The requests live in the restore engineer's state module; until it
//! lands, [`requests`] is the one place that reads them and gives an empty
//! list.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;

use super::i18n::{self, Catalogue};
use super::page::{self, Frame};
use super::session::ConsoleSession;
use crate::api::{ApiErr, App};

/// One request as the list shows it.
#[derive(Debug, Clone)]
pub struct RequestView {
    pub id: String,
    pub pd: String,
    pub snapshot: String,
    pub agent: String,
    pub state: String,
    pub filed_by: String,
    pub filed: Option<chrono::DateTime<chrono::Utc>>,
    pub expires: Option<chrono::DateTime<chrono::Utc>>,
    pub reason: String,
}

/// The requests the person may see, newest first.
pub fn requests(_app: &App, visible: impl Fn(&str) -> bool) -> Result<Vec<RequestView>, ApiErr> {
    let all: Vec<RequestView> = Vec::new();
    Ok(all.into_iter().filter(|r| visible(&r.pd)).collect())
}

pub struct Row {
    pub id: String,
    pub pd: String,
    pub snapshot: String,
    pub agent: String,
    pub state: String,
    pub filed: String,
    pub filed_by: String,
    pub expires: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "console/restores.html")]
struct RestoresPage<'a> {
    t: &'a Catalogue,
    f: Frame,
    rows: Vec<Row>,
    /// Operators (and admins) file requests.
    can_file: bool,
}

#[utoipa::path(get, path = "/console/restores", tag = "console", responses((status = 200, description = "HTML page", content_type = "text/html", body = String), (status = 303, description = "Not signed in: to the login page"), (status = 403, description = "Role or PD not allowed (HTML page)")))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
) -> Result<Response, ApiErr> {
    let t = i18n::catalogue(s.lang);
    let user = s.user.clone();
    let rows = requests(&app, |pd| user.covers_pd(pd))?
        .into_iter()
        .map(|r| Row {
            state: t.m(&format!("restore.state_{}", r.state)),
            filed: page::when(&app, r.filed),
            expires: page::when(&app, r.expires),
            id: r.id,
            pd: r.pd,
            snapshot: r.snapshot,
            agent: r.agent,
            filed_by: r.filed_by,
            reason: r.reason,
        })
        .collect();
    let p = RestoresPage {
        t,
        f: Frame::new(&s, "/console/restores", "restore.title"),
        rows,
        can_file: s.user.has_any(&["admin", "operator"]),
    };
    Ok(page::render(&s, &p))
}
