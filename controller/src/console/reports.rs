//! Drill reports and compliance summaries: list, download (JSON/PDF from
//! the API with the session), signature status.
//!
//! The documents come from the drill reports (`state::drills`) and the
//! stored reports (`report::stored`); [`documents`] reads both.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;

use super::i18n::{self, Catalogue};
use super::page::{self, Frame};
use super::session::ConsoleSession;
use crate::api::{ApiErr, App};
use crate::state::drills::DrillState;
use crate::state::users::UserRecord;

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
    pub json_href: Option<String>,
    pub pdf_href: Option<String>,
}

/// The signed documents the person may see, newest first: drill reports
/// (`drill_reports`, the drill module) and the summaries and reports the
/// report routes stored (`report::stored`), each with its signature
/// checked against this controller's key.
pub fn documents(app: &App, user: &UserRecord) -> Result<Vec<Document>, ApiErr> {
    let key = app.audit.public_key();
    let signed_ok = |bytes: &[u8]| {
        crate::report::SignedDocument::parse(bytes)
            .and_then(|d| d.verify(Some(&key)))
            .is_ok()
    };
    let drills = crate::drill::list(app, user)?;
    let mut out: Vec<Document> = Vec::new();
    for d in drills {
        let signed = if d.has_report {
            app.state
                .read(|txn| crate::state::drills::report(txn, &d.id))?
                .is_some_and(|b| signed_ok(&b))
        } else {
            false
        };
        let id = page::url_encode(&d.id);
        out.push(Document {
            kind: "drill".into(),
            pd: Some(d.pd.clone()),
            time: d.finished.or(d.started).or(Some(d.created)),
            passed: match d.state {
                DrillState::Passed => Some(true),
                DrillState::Failed => Some(false),
                DrillState::Queued => None,
            },
            restore_seconds: d.result.as_ref().map(|r| r.total_seconds() as i64),
            rto_seconds: Some(d.rto_seconds as i64),
            signature_ok: signed,
            json_href: d
                .has_report
                .then(|| crate::api::drills::REPORT_JSON.replace("{id}", &id)),
            pdf_href: d
                .has_report
                .then(|| crate::api::drills::REPORT_PDF.replace("{id}", &id)),
            id: d.id,
        });
    }
    let stored = app.state.read(crate::report::stored::list)?;
    for r in stored {
        if !r.pd.as_deref().is_none_or(|pd| user.covers_pd(pd)) {
            continue;
        }
        let id = page::url_encode(&r.id);
        let base = crate::api::reports::REPORT_PATH.replace("{id}", &id);
        out.push(Document {
            kind: if r.kind.starts_with("drill") {
                "drill".into()
            } else {
                "compliance".into()
            },
            pd: r.pd.clone(),
            time: Some(r.generated),
            passed: None,
            restore_seconds: None,
            rto_seconds: None,
            signature_ok: signed_ok(r.json.as_bytes()),
            json_href: Some(format!("{base}?format=json")),
            pdf_href: Some(format!("{base}?format=pdf")),
            id: r.id,
        });
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.time));
    Ok(out)
}

/// `lulus · 42 m / RTO 4 j` for the fleet row, or `—`.
pub fn last_drill_text(app: &App, t: &Catalogue, pd: &str) -> String {
    let everyone = UserRecord::new(
        "fleet",
        None,
        vec![cadang_proto::api::Role::Auditor],
        app.clock.now(),
    );
    let Ok(docs) = documents(app, &everyone) else {
        return "—".into();
    };
    let Some(d) = docs
        .into_iter()
        .find(|d| d.kind == "drill" && d.pd.as_deref() == Some(pd) && d.passed.is_some())
    else {
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
    pub has_report: bool,
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
    let items = documents(&app, &s.user)?
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
            has_report: d.json_href.is_some(),
            json_href: d.json_href.unwrap_or_default(),
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
