//! Report routes: make a compliance summary from the state
//! (`POST /api/v1/reports/compliance`), list the signed reports
//! (`GET /api/v1/reports`: compliance summaries and drill reports) and
//! download a summary as JSON, PDF or HTML (`GET /api/v1/reports/{id}`;
//! drill reports keep their own `/api/v1/drills/{id}/report.*`, which the
//! list links to). Custodians see and make their PDs' only.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Caller;
use super::{ApiErr, ApiResult, App};
use crate::audit::events::person_actor;
use crate::audit::{AuditLog, NewEntry};
use crate::report::compliance::{self, Inputs};
use crate::report::stored::{self, StoredReport};
use crate::report::{Lang, SignedDocument, SigningKey};
use crate::state::drills::{DrillRecord, DrillState};
use crate::state::jobs::{self, JobFilter};
use crate::state::pds;
use crate::state::users::UserRecord;

pub const REPORTS_PATH: &str = "/api/v1/reports";
pub const REPORT_PATH: &str = "/api/v1/reports/{id}";
pub const COMPLIANCE_PATH: &str = "/api/v1/reports/compliance";

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(REPORTS_PATH, get(list))
        .route(REPORT_PATH, get(download))
        .route(COMPLIANCE_PATH, post(compliance))
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComplianceRequest {
    /// One PD; none: the regency (every PD).
    #[serde(default)]
    pub pd: Option<String>,
    /// The period: `YYYY-MM-DD` (from its start) or RFC 3339.
    pub from: String,
    /// `YYYY-MM-DD` (to its end) or RFC 3339.
    pub to: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublishedAt {
    pub store: String,
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportMade {
    pub id: String,
    pub kind: String,
    pub pd: Option<String>,
    /// The signed JSON file.
    pub json: String,
    pub published: Vec<PublishedAt>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportItem {
    /// The report id; for a drill report, the drill's id.
    pub id: String,
    /// `compliance-summary` or `drill-report`.
    pub kind: String,
    pub pd: Option<String>,
    /// When it was made; for a drill report, when the drill finished.
    pub generated: DateTime<Utc>,
    /// Who asked for it (audit actor); for a drill report, the runner agent.
    pub by: String,
    /// Stores that hold it. Not recorded for drill reports (written to the
    /// PD's repository at both sites; a failure is logged).
    pub published: Vec<String>,
    /// Drill reports: whether the drill passed. `None` for other kinds.
    #[serde(default)]
    pub passed: Option<bool>,
    /// Where the signed JSON is downloaded (add `?format=pdf|html` for a
    /// summary; a drill report has `report.pdf` and `report.html` beside it).
    #[serde(default)]
    pub download: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportList {
    pub reports: Vec<ReportItem>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct DownloadQuery {
    /// `json` (default), `pdf` or `html`.
    pub format: Option<String>,
    /// `id` (default) or `en`, for PDF and HTML.
    pub lang: Option<String>,
}

fn may_see(user: &UserRecord, pd: Option<&str>) -> bool {
    match pd {
        Some(pd) => user.covers_pd(pd),
        // The regency's summary: everyone but a custodian-only user.
        None => user.has_any(&["admin", "operator", "auditor"]),
    }
}

#[utoipa::path(post, path = "/api/v1/reports/compliance", tag = "reports", security(("bearer" = [])),
    request_body = ComplianceRequest,
    responses((status = 200, description = "Signed, stored and published to the stores", body = ReportMade),
        (status = 400, body = cadang_proto::api::ApiError), (status = 403, body = cadang_proto::api::ApiError)))]
pub async fn compliance(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<ComplianceRequest>,
) -> ApiResult<ReportMade> {
    let user = caller.person()?.clone();
    let from = super::audit::parse_time(&req.from, false)?;
    let to = super::audit::parse_time(&req.to, true)?;
    if to <= from {
        return Err(ApiErr::bad_request(
            "the end of the report period (to) must be after its start (from)",
        ));
    }
    if !may_see(&user, req.pd.as_deref()) {
        return Err(ApiErr::forbidden(format!(
            "{} may not make this summary (a custodian makes their own PDs' summaries only)",
            user.name
        )));
    }
    let set = app.policies().ok_or_else(|| {
        ApiErr::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the controller has no valid policy set loaded; fix the policies and reload",
        )
    })?;
    let pds: Vec<String> = match &req.pd {
        Some(pd) if set.pds.contains_key(pd) => vec![pd.clone()],
        Some(pd) => return Err(ApiErr::not_found(format!("PD {pd} has no policy"))),
        None => set.pds.keys().cloned().collect(),
    };
    let a = app.clone();
    let list = pds.clone();
    let inputs = tokio::task::spawn_blocking(move || read_inputs(&a, &list, to))
        .await
        .map_err(|e| ApiErr::from(crate::error::Error::State(e.to_string())))??;
    let now = app.clock.now();
    let summary = compliance::summary(&set, &pds, &inputs, from, to, now);
    let key = SigningKey::from_hex(&hex::encode(app.signing_secret))
        .map_err(|e| ApiErr::from(crate::error::Error::State(e.to_string())))?;
    let doc = SignedDocument::sign_summary(&summary, &key)
        .map_err(|e| ApiErr::from(crate::error::Error::State(e.to_string())))?;
    let record = StoredReport {
        id: summary.summary_id.clone(),
        kind: doc.kind.clone(),
        pd: req.pd.clone(),
        generated: now,
        by: person_actor(&user),
        json: String::from_utf8_lossy(&doc.to_bytes()).into_owned(),
        published: Vec::new(),
    };
    save_with_entry(&app, &record, from, to).await?;
    let published = publish(&app, &record, &doc).await;
    Ok(Json(ReportMade {
        id: record.id,
        kind: record.kind,
        pd: record.pd,
        json: record.json,
        published,
    }))
}

/// The report and its `report.compliance` entry, in one transaction.
async fn save_with_entry(
    app: &Arc<App>,
    r: &StoredReport,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(), ApiErr> {
    let entry = NewEntry::new(
        &r.by,
        "report.compliance",
        &format!("{}/reports/{}", r.pd.as_deref().unwrap_or("regency"), r.id),
        "ok",
    )
    .detail(json!({
        "id": r.id, "pd": r.pd, "from": from, "to": to,
        "blake3": blake3::hash(r.json.as_bytes()).to_hex().to_string(),
    }));
    let (me, rec) = (app.clone(), r.clone());
    app.state
        .write_blocking(move |txn| {
            stored::save(txn, &rec)?;
            me.record_in(txn, entry)?;
            Ok(())
        })
        .await?;
    Ok(())
}

/// To the stores; what took it is remembered with the report.
async fn publish(app: &Arc<App>, r: &StoredReport, doc: &SignedDocument) -> Vec<PublishedAt> {
    let placed = match crate::publish::put_report(app, r.pd.as_deref(), doc).await {
        Ok(p) => p,
        Err(e) => {
            return vec![PublishedAt {
                store: "-".into(),
                ok: false,
                error: Some(e.to_string()),
            }]
        }
    };
    // A store holds the report when every file of it got there.
    let mut by_store: BTreeMap<String, Option<String>> = BTreeMap::new();
    for p in placed {
        let slot = by_store.entry(p.store).or_insert(None);
        if let Err(e) = p.outcome {
            slot.get_or_insert(e);
        }
    }
    let ok: Vec<String> = by_store
        .iter()
        .filter(|(_, e)| e.is_none())
        .map(|(s, _)| s.clone())
        .collect();
    let id = r.id.clone();
    if let Err(e) = app
        .state
        .write_blocking(move |txn| stored::set_published(txn, &id, ok))
        .await
    {
        tracing::warn!(error = %e, "could not remember where a report was published");
    }
    by_store
        .into_iter()
        .map(|(store, error)| PublishedAt {
            store,
            ok: error.is_none(),
            error,
        })
        .collect()
}

/// Catalogue, backup jobs and the audit log up to `to`, per PD.
fn read_inputs(
    app: &App,
    pds: &[String],
    to: DateTime<Utc>,
) -> Result<BTreeMap<String, Inputs>, ApiErr> {
    let entries: Vec<_> = app
        .audit
        .log()
        .entries(1, u64::MAX)
        .map_err(|e| ApiErr::from(crate::error::Error::State(e.to_string())))?
        .into_iter()
        .filter(|e| e.time <= to)
        .collect();
    let first_start = app
        .runbook
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .first_start;
    let now = app.clock.now();
    let mut out = BTreeMap::new();
    for pd in pds {
        let filter = JobFilter {
            failed: false,
            pd: Some(pd.clone()),
            kind: Some("backup".into()),
            limit: usize::MAX,
        };
        let (snapshots, jobs) = app.state.read(|txn| {
            Ok((
                pds::snapshots(txn, pd)?,
                jobs::list(txn, &filter, |_| true)?,
            ))
        })?;
        out.insert(
            pd.clone(),
            Inputs {
                snapshots,
                jobs,
                entries: entries.clone(),
                first_start,
                now,
            },
        );
    }
    Ok(out)
}

#[utoipa::path(get, path = "/api/v1/reports", tag = "reports", security(("bearer" = [])),
    responses((status = 200, description = "Signed reports the caller may see (compliance summaries and drill reports), newest first", body = ReportList)))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<ReportList> {
    let user = caller.person()?.clone();
    let summaries = app.state.read(stored::list)?;
    let drills = crate::drill::list(&app, &user)?;
    let mut reports: Vec<ReportItem> = summaries
        .into_iter()
        .filter(|r| may_see(&user, r.pd.as_deref()))
        .map(summary_item)
        .chain(drills.iter().filter_map(drill_item))
        .collect();
    reports.sort_by(|a, b| b.generated.cmp(&a.generated).then(b.id.cmp(&a.id)));
    Ok(Json(ReportList { reports }))
}

fn summary_item(r: StoredReport) -> ReportItem {
    ReportItem {
        download: REPORT_PATH.replace("{id}", &r.id),
        id: r.id,
        kind: r.kind,
        pd: r.pd,
        generated: r.generated,
        by: r.by,
        published: r.published,
        passed: None,
    }
}

/// A drill that has its signed report (a queued drill, or one that failed
/// before it ran, has none yet and is not a report).
fn drill_item(d: &DrillRecord) -> Option<ReportItem> {
    if !d.has_report {
        return None;
    }
    Some(ReportItem {
        id: d.id.clone(),
        kind: crate::report::signed::KIND_DRILL.into(),
        pd: Some(d.pd.clone()),
        generated: d.finished.unwrap_or(d.created),
        by: d
            .runner_agent_id
            .as_deref()
            .map(crate::audit::entry::agent_actor)
            .unwrap_or_else(|| d.runner.clone()),
        published: Vec::new(),
        passed: Some(d.state == DrillState::Passed),
        download: super::drills::REPORT_JSON.replace("{id}", &d.id),
    })
}

#[utoipa::path(get, path = "/api/v1/reports/{id}", tag = "reports", security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id"), DownloadQuery),
    responses((status = 200, description = "The signed JSON, or its PDF or HTML rendering", content_type = "application/octet-stream", body = String),
        (status = 404, body = cadang_proto::api::ApiError)))]
pub async fn download(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, ApiErr> {
    let user = caller.person()?.clone();
    let r = app
        .state
        .read(|txn| stored::get(txn, &id))?
        .filter(|r| may_see(&user, r.pd.as_deref()))
        .ok_or_else(|| ApiErr::not_found(format!("no report {id} (or not one you may see)")))?;
    let lang = match q.lang.as_deref() {
        None => Lang::Id,
        Some(l) => {
            Lang::parse(l).ok_or_else(|| ApiErr::bad_request(format!("lang {l}: use id or en")))?
        }
    };
    let render_err =
        |e: crate::report::ReportError| ApiErr::from(crate::error::Error::State(e.to_string()));
    let (content_type, body) = match q.format.as_deref().unwrap_or("json") {
        "json" => ("application/json", r.json.into_bytes()),
        "pdf" => (
            "application/pdf",
            crate::report::render_pdf(&r.document()?, lang).map_err(render_err)?,
        ),
        "html" => (
            "text/html; charset=utf-8",
            crate::report::render_html(&r.document()?, lang)
                .map_err(render_err)?
                .into_bytes(),
        ),
        f => {
            return Err(ApiErr::bad_request(format!(
                "format {f}: use json, pdf or html"
            )))
        }
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}
