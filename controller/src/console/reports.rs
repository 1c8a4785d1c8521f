//! Drill reports and compliance summaries: list, download (JSON/PDF from
//! the API with the session), signature status.
//!
//! The documents come from the drill and audit engineers' tables; until
//! those land, [`documents`] is the one place that reads them and gives an
//! empty list.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;

use super::i18n::{self, Catalogue};
use super::page::{self, Frame};
use super::session::ConsoleSession;
use crate::api::{ApiErr, App};

/// One signed document as the list shows it.
#[derive(Debug, Clone)]
pub struct Document {
    pub id: String,
    /// `drill` or `compliance`.
    pub kind: String,
    pub pd: Option<String>,
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    /// Drills: passed or not.
    pub passed: Option<bool>,
    /// Drills: the restore time against the objective, seconds.
    pub restore_seconds: Option<i64>,
    pub rto_seconds: Option<i64>,
    /// Whether the signature checks with the controller's key.
    pub signature_ok: bool,
    pub json_href: String,
    pub pdf_href: Option<String>,
}

/// The signed documents the person may see, newest first.
pub fn documents(_app: &App, visible: impl Fn(&str) -> bool) -> Result<Vec<Document>, ApiErr> {
    let docs: Vec<Document> = Vec::new();
    Ok(docs
        .into_iter()
        .filter(|d| d.pd.as_deref().is_none_or(&visible))
        .collect())
}

/// `lulus · 42 m / RTO 4 j` for the fleet row, or `—`.
pub fn last_drill_text(app: &App, t: &Catalogue, pd: &str) -> String {
    let Ok(docs) = documents(app, |p| p == pd) else {
        return "—".into();
    };
    let Some(d) = docs.into_iter().find(|d| d.kind == "drill") else {
        return "—".into();
    };
    let verdict = match d.passed {
        Some(true) => t.m("status.passed"),
        Some(false) => t.m("status.failed"),
        None => "—".into(),
    };
    format!(
        "{verdict} · {} · {} / {} {}",
        page::when(app, d.time),
        page::span(t, d.restore_seconds),
        t.m("term.rto_short"),
        page::span(t, d.rto_seconds)
    )
}

pub struct Item {
    pub kind: String,
    pub pd: String,
    pub time: String,
    pub verdict: String,
    pub verdict_ok: bool,
    pub rto: String,
    pub signature_ok: bool,
    pub json_href: String,
    pub pdf_href: Option<String>,
}

#[derive(Template)]
#[template(path = "console/reports.html")]
struct ReportsPage<'a> {
    t: &'a Catalogue,
    f: Frame,
    items: Vec<Item>,
}

#[utoipa::path(get, path = "/console/reports", tag = "console", responses((status = 200, description = "HTML page", content_type = "text/html", body = String), (status = 303, description = "Not signed in: to the login page"), (status = 403, description = "Role or PD not allowed (HTML page)")))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
) -> Result<Response, ApiErr> {
    let t = i18n::catalogue(s.lang);
    let user = s.user.clone();
    let items = documents(&app, |pd| user.covers_pd(pd))?
        .into_iter()
        .map(|d| Item {
            kind: t.m(&format!("reports.kind_{}", d.kind)),
            pd: d.pd.clone().unwrap_or_else(|| t.m("reports.all_pds")),
            time: page::when(&app, d.time),
            verdict: match d.passed {
                Some(true) => t.m("status.passed"),
                Some(false) => t.m("status.failed"),
                None => "—".into(),
            },
            verdict_ok: d.passed != Some(false),
            rto: format!(
                "{} / {}",
                page::span(t, d.restore_seconds),
                page::span(t, d.rto_seconds)
            ),
            signature_ok: d.signature_ok,
            json_href: d.json_href,
            pdf_href: d.pdf_href,
        })
        .collect();
    let p = ReportsPage {
        t,
        f: Frame::new(&s, "/console/reports", "reports.title"),
        items,
    };
    Ok(page::render(&s, &p))
}
