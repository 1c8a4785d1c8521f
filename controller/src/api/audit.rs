//! `GET /api/v1/audit`: the audit log for the console and auditors.
//! Auditors, admins and operators read every entry; custodians the
//! entries of their PDs (by the entry's `detail.pd`, or the PD its subject
//! starts with).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::{ApiErr, ApiResult, App};
use crate::audit::{AuditEntry, AuditLog, Checkpoint};

pub const AUDIT_PATH: &str = "/api/v1/audit";
/// The most entries one answer carries (page on with `after`).
pub const MAX_LIMIT: usize = 5000;

pub fn routes() -> Router<Arc<App>> {
    Router::new().route(AUDIT_PATH, get(list))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// From this time (RFC 3339, or a date `YYYY-MM-DD` = its start, UTC).
    pub from: Option<String>,
    /// Up to this time (RFC 3339, or a date = its end, UTC).
    pub to: Option<String>,
    /// Only entries after this seq (paging).
    pub after: Option<u64>,
    pub actor: Option<String>,
    /// An action (`restore.approve`) or a prefix ending in `.` (`restore.`).
    pub action: Option<String>,
    /// Entries whose subject starts with this.
    pub subject: Option<String>,
    pub limit: Option<usize>,
}

/// One page of entries, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// The newest entry in the log (not only in this page).
    pub last_seq: u64,
    /// The newest signed checkpoint.
    pub last_checkpoint: Option<Checkpoint>,
    /// More entries match after the last one here (ask with `after`).
    pub more: bool,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, description = "Entries oldest first, with the last seq and checkpoint", content_type = "application/json", body = Object),
        (status = 400, body = cadang_proto::api::ApiError), (status = 401, body = cadang_proto::api::ApiError), (status = 403, body = cadang_proto::api::ApiError)))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<AuditPage> {
    let user = caller.person()?.clone();
    let filter = Filter::from_query(&q)?;
    let limit = q.limit.unwrap_or(500).clamp(1, MAX_LIMIT);
    let a = app.clone();
    let page = tokio::task::spawn_blocking(move || -> Result<AuditPage, ApiErr> {
        let log = a.audit.log();
        let last_seq = log.last().map_err(internal)?.map_or(0, |e| e.seq);
        let mut checkpoints = log.checkpoints().map_err(internal)?;
        checkpoints.sort_by_key(|c| c.seq);
        // Custodians see their PDs only; everyone else with access all.
        let sees_all = user.has_any(&["admin", "auditor", "operator"]);
        let mut entries = Vec::new();
        let mut more = false;
        let mut from = q.after.unwrap_or(0) + 1;
        // Read in slices so a narrow filter over a long log holds little.
        while from <= last_seq && !more {
            let to = from.saturating_add(2000).min(last_seq);
            for e in log.entries(from, to).map_err(internal)? {
                if !filter.matches(&e)
                    || !(sees_all || entry_pd(&e).is_some_and(|p| user.covers_pd(&p)))
                {
                    continue;
                }
                if entries.len() == limit {
                    more = true;
                    break;
                }
                entries.push(e);
            }
            from = to + 1;
        }
        Ok(AuditPage {
            entries,
            last_seq,
            last_checkpoint: checkpoints.pop(),
            more,
        })
    })
    .await
    .map_err(|e| internal(e.to_string()))??;
    Ok(Json(page))
}

fn internal(e: impl std::fmt::Display) -> ApiErr {
    ApiErr::from(crate::error::Error::State(format!(
        "the audit log cannot be read: {e}"
    )))
}

/// The PD an entry concerns: `detail.pd`, or the first part of its
/// subject when that is a PD-style path (`DINKES/web01`).
pub fn entry_pd(e: &AuditEntry) -> Option<String> {
    if let Some(pd) = e.detail.get("pd").and_then(|v| v.as_str()) {
        return Some(pd.to_string());
    }
    e.subject
        .split_once('/')
        .map(|(pd, _)| pd.to_string())
        .or_else(|| (!e.subject.is_empty()).then(|| e.subject.clone()))
}

/// The query's conditions.
#[derive(Debug, Default)]
pub struct Filter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub subject: Option<String>,
}

impl Filter {
    pub fn from_query(q: &AuditQuery) -> Result<Filter, ApiErr> {
        Ok(Filter {
            from: q
                .from
                .as_deref()
                .map(|t| parse_time(t, false))
                .transpose()?,
            to: q.to.as_deref().map(|t| parse_time(t, true)).transpose()?,
            actor: q.actor.clone().filter(|s| !s.is_empty()),
            action: q.action.clone().filter(|s| !s.is_empty()),
            subject: q.subject.clone().filter(|s| !s.is_empty()),
        })
    }

    pub fn matches(&self, e: &AuditEntry) -> bool {
        self.from.is_none_or(|t| e.time >= t)
            && self.to.is_none_or(|t| e.time <= t)
            && self.actor.as_ref().is_none_or(|a| &e.actor == a)
            && self.action.as_ref().is_none_or(|a| {
                if a.ends_with('.') {
                    e.action.starts_with(a.as_str())
                } else {
                    &e.action == a
                }
            })
            && self
                .subject
                .as_ref()
                .is_none_or(|s| e.subject.starts_with(s.as_str()))
    }
}

/// RFC 3339, or a date: its first instant (`end` = false) or its last.
pub fn parse_time(s: &str, end: bool) -> Result<DateTime<Utc>, ApiErr> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        ApiErr::bad_request(format!(
            "{s:?} is not a time: use YYYY-MM-DD or RFC 3339 (2026-12-03T10:00:00+07:00)"
        ))
    })?;
    let t = if end {
        d.and_hms_milli_opt(23, 59, 59, 999)
    } else {
        d.and_hms_opt(0, 0, 0)
    };
    Ok(t.unwrap_or_default().and_utc())
}
