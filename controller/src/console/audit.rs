//! The audit log (log audit / jejak audit): newest first, filtered by
//! time, actor, action and subject; exported as CSV or JSON with the same
//! filters. Custodians see the entries about their PDs only.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::i18n::{self, Catalogue};
use super::page::{self, Frame};
use super::session::ConsoleSession;
use crate::api::{ApiErr, App};
use crate::audit::{AuditEntry, AuditLog};
use crate::state::users::UserRecord;

/// Entries on one page (newest first); the export has no limit.
pub const PAGE_ROWS: usize = 100;
/// Entries read from the log at a time, walking back from the newest.
const WINDOW: u64 = 2000;

#[derive(Debug, Deserialize, Default, Clone)]
pub struct AuditQuery {
    /// `YYYY-MM-DD`, inclusive, UTC.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    /// An action or its prefix (`restore.` for every restore step).
    #[serde(default)]
    pub action: Option<String>,
    /// Part of the subject (`DUKCAPIL`).
    #[serde(default)]
    pub subject: Option<String>,
    /// `csv` or `json` (export).
    #[serde(default)]
    pub format: Option<String>,
}

/// The filters, parsed once.
pub struct Filter {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    actor: Option<String>,
    action: Option<String>,
    subject: Option<String>,
    /// Custodian-only users: the PDs whose entries they see.
    pds: Option<Vec<String>>,
}

fn day(s: &Option<String>, end: bool) -> Option<DateTime<Utc>> {
    let d = NaiveDate::parse_from_str(s.as_deref()?.trim(), "%Y-%m-%d").ok()?;
    let t = if end {
        d.and_hms_opt(23, 59, 59)?
    } else {
        d.and_hms_opt(0, 0, 0)?
    };
    Some(t.and_utc())
}

fn text(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl Filter {
    pub fn new(q: &AuditQuery, user: &UserRecord) -> Filter {
        // Someone who is only a custodian sees their PDs' entries; any
        // other role reads the whole log.
        let only_custodian = !user.has_any(&["admin", "operator", "auditor"]);
        Filter {
            from: day(&q.from, false),
            to: day(&q.to, true),
            actor: text(&q.actor),
            action: text(&q.action),
            subject: text(&q.subject),
            pds: only_custodian.then(|| user.custodian_pds()),
        }
    }

    pub fn matches(&self, e: &AuditEntry) -> bool {
        self.from.is_none_or(|f| e.time >= f)
            && self.to.is_none_or(|t| e.time <= t)
            && self.actor.as_deref().is_none_or(|a| e.actor == a)
            && self
                .action
                .as_deref()
                .is_none_or(|a| e.action.starts_with(a))
            && self
                .subject
                .as_deref()
                .is_none_or(|s| e.subject.contains(s))
            && self
                .pds
                .as_ref()
                .is_none_or(|pds| pds.iter().any(|p| about_pd(e, p)))
    }
}

/// Whether an entry is about PD `pd`: named in its subject or its
/// detail's `pd` field.
fn about_pd(e: &AuditEntry, pd: &str) -> bool {
    e.subject
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
        .any(|w| w == pd)
        || e.detail.get("pd").and_then(|v| v.as_str()) == Some(pd)
}

/// Up to `limit` matching entries, newest first, reading the log
/// backwards a window at a time.
pub fn newest(app: &App, f: &Filter, limit: usize) -> Result<Vec<AuditEntry>, ApiErr> {
    let log = app.audit.log();
    let err = |e: crate::audit::AuditError| ApiErr::from(crate::Error::State(e.to_string()));
    let Some(last) = log.last().map_err(err)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut hi = last.seq;
    while hi >= 1 && out.len() < limit {
        let lo = hi.saturating_sub(WINDOW - 1).max(1);
        let mut chunk = log.entries(lo, hi).map_err(err)?;
        chunk.reverse();
        out.extend(chunk.into_iter().filter(|e| f.matches(e)));
        if lo == 1 {
            break;
        }
        hi = lo - 1;
    }
    out.truncate(limit);
    Ok(out)
}

pub struct Row {
    pub seq: u64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub outcome: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage<'a> {
    t: &'a Catalogue,
    f: Frame,
    rows: Vec<Row>,
    q: AuditQuery,
    export_query: String,
    full: bool,
}

#[utoipa::path(get, path = "/console/audit", tag = "console", responses((status = 200, description = "HTML page", content_type = "text/html", body = String), (status = 303, description = "Not signed in: to the login page"), (status = 403, description = "Role or PD not allowed (HTML page)")))]
pub async fn page(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiErr> {
    let t = i18n::catalogue(s.lang);
    let filter = Filter::new(&q, &s.user);
    let entries = newest(&app, &filter, PAGE_ROWS)?;
    let rows = entries
        .iter()
        .map(|e| Row {
            seq: e.seq,
            time: page::when(&app, Some(e.time)),
            actor: e.actor.clone(),
            action: e.action.clone(),
            subject: e.subject.clone(),
            ok: e.outcome == "ok",
            outcome: e.outcome.clone(),
            detail: if e.detail.is_null() {
                String::new()
            } else {
                e.detail.to_string().chars().take(200).collect()
            },
        })
        .collect();
    let p = AuditPage {
        t,
        f: Frame::new(&s, "/console/audit", "audit.title"),
        full: entries.len() >= PAGE_ROWS,
        rows,
        export_query: export_query(&q),
        q,
    };
    Ok(page::render(&s, &p))
}

/// The filters as a query string for the export links.
fn export_query(q: &AuditQuery) -> String {
    [
        ("from", &q.from),
        ("to", &q.to),
        ("actor", &q.actor),
        ("action", &q.action),
        ("subject", &q.subject),
    ]
    .iter()
    .filter_map(|(k, v)| text(v).map(|v| format!("&{k}={}", page::url_encode(&v))))
    .collect()
}

/// `GET /console/audit/export?format=csv|json&...`: every matching entry,
/// oldest first, with the hashes (so an export can be checked against
/// the chain).
#[utoipa::path(get, path = "/console/audit/export", tag = "console", responses((status = 200, description = "CSV or JSON of the matching entries", content_type = "text/csv", body = String), (status = 303, description = "Not signed in")))]
pub async fn export(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiErr> {
    let filter = Filter::new(&q, &s.user);
    let mut entries = newest(&app, &filter, usize::MAX)?;
    entries.reverse();
    let (body, kind, ext) = match q.format.as_deref() {
        Some("json") => (
            serde_json::to_string_pretty(&entries)
                .map_err(|e| ApiErr::from(crate::Error::State(e.to_string())))?,
            "application/json",
            "json",
        ),
        _ => (csv(&entries), "text/csv; charset=utf-8", "csv"),
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"cadang-audit.{ext}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    page::security_headers(h);
    Ok(resp)
}

/// RFC 4180 CSV; a cell starting with `=`, `+`, `-` or `@` gets a quote
/// mark first, so a spreadsheet does not run it as a formula.
pub fn csv(entries: &[AuditEntry]) -> String {
    fn cell(s: &str) -> String {
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_string()
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let mut out = String::from("seq,time,actor,action,subject,outcome,detail,hash\r\n");
    for e in entries {
        let detail = if e.detail.is_null() {
            String::new()
        } else {
            e.detail.to_string()
        };
        let cells = [
            e.seq.to_string(),
            e.time.to_rfc3339(),
            e.actor.clone(),
            e.action.clone(),
            e.subject.clone(),
            e.outcome.clone(),
            detail,
            e.hash.clone(),
        ];
        let line: Vec<String> = cells.iter().map(|c| cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}
