//! Ransomware early-warning routes (issue 10): the flags, holds and last
//! clean snapshots per source, and the two-person clearing of a hold. Who
//! may call each is in `auth::ROUTES`; custodians see and clear only their
//! own PDs.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use cadang_proto::api::ApiError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::{ApiErr, ApiResult, App};
use crate::anomaly::clear::{self, ClearError};
use crate::state::anomalies::{self, HoldRecord, SourceStatus};

pub const ANOMALIES: &str = "/api/v1/anomalies";
pub const CLEAR: &str = "/api/v1/anomalies/clear";

/// The routes of this module, merged into the API router.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(ANOMALIES, get(list))
        .route(CLEAR, post(clear_hold))
}

/// `GET /api/v1/anomalies`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnomalyList {
    pub sources: Vec<SourceAnomalies>,
}

/// One measured source: its newest verdict, flags, hold and the snapshot
/// to restore.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SourceAnomalies {
    pub pd: String,
    pub host: String,
    pub source: String,
    pub last_snapshot: Option<String>,
    pub last_time: Option<DateTime<Utc>>,
    /// Whether the newest measured backup was flagged.
    pub last_flagged: bool,
    /// "cadangan bersih terakhir": the newest snapshot from before the damage.
    pub last_clean: Option<String>,
    pub flags: Vec<FlagView>,
    /// The newest hold (active or cleared).
    pub hold: Option<HoldView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlagView {
    pub snapshot: String,
    pub time: DateTime<Utc>,
    pub reasons: Vec<ReasonView>,
    /// For a slow attack: the snapshot where the damage probably began.
    pub onset: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReasonView {
    /// e.g. `entropy-transitions`, `known-extensions`, `ransom-notes`.
    pub kind: String,
    pub files: u64,
    pub english: String,
    pub indonesian: String,
}

/// A retention hold ("penahanan retensi").
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HoldView {
    pub active: bool,
    pub created: DateTime<Utc>,
    /// Snapshots of the source taken before this are kept at both sites.
    pub since: DateTime<Utc>,
    pub flagged_snapshots: Vec<String>,
    pub last_clean: Option<String>,
    /// The user names who agreed to clear it so far.
    pub operator_agreed: Option<String>,
    pub custodian_agreed: Option<String>,
    pub cleared: Option<DateTime<Utc>>,
}

/// `POST /api/v1/anomalies/clear`: one person's agreement to end a hold.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClearHold {
    pub pd: String,
    pub host: String,
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClearHoldResponse {
    /// True when this agreement ended the hold.
    pub cleared: bool,
    /// `operator` or `custodian`: whose agreement is still missing.
    pub waiting_for: Option<String>,
    pub hold: HoldView,
    pub message: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AnomalyQuery {
    /// Only this PD's sources.
    pub pd: Option<String>,
}

pub fn hold_view(h: &HoldRecord) -> HoldView {
    HoldView {
        active: h.active(),
        created: h.created,
        since: h.since,
        flagged_snapshots: h.flagged_snapshots.clone(),
        last_clean: h.last_clean.clone(),
        operator_agreed: h.operator_clear.as_ref().map(|a| a.user.clone()),
        custodian_agreed: h.custodian_clear.as_ref().map(|a| a.user.clone()),
        cleared: h.cleared,
    }
}

fn source_view(s: SourceStatus, hold: Option<&HoldRecord>) -> SourceAnomalies {
    SourceAnomalies {
        flags: s
            .flags
            .into_iter()
            .map(|f| FlagView {
                snapshot: f.snapshot,
                time: f.time,
                onset: f.onset,
                reasons: f
                    .reasons
                    .into_iter()
                    .map(|r| ReasonView {
                        kind: serde_json::to_value(r.kind)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        files: r.files,
                        english: r.english,
                        indonesian: r.indonesian,
                    })
                    .collect(),
            })
            .collect(),
        hold: hold.map(hold_view),
        pd: s.pd,
        host: s.host,
        source: s.source,
        last_snapshot: s.last_snapshot,
        last_time: s.last_time,
        last_flagged: s.last_flagged,
        last_clean: s.last_clean,
    }
}

#[utoipa::path(get, path = "/api/v1/anomalies", tag = "anomalies", security(("bearer" = [])), params(AnomalyQuery),
    responses((status = 200, description = "Every measured source the caller may see: flags with reasons, holds, last clean snapshots", body = AnomalyList),
        (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AnomalyQuery>,
) -> ApiResult<AnomalyList> {
    let user = caller.person()?.clone();
    let pd = q.pd.as_deref();
    let (statuses, holds) = app
        .state
        .read(|txn| Ok((anomalies::statuses(txn, pd)?, anomalies::holds(txn, pd)?)))?;
    let sources = statuses
        .into_iter()
        .filter(|s| user.covers_pd(&s.pd))
        .map(|s| {
            let hold = holds
                .iter()
                .find(|h| h.pd == s.pd && h.host == s.host && h.source == s.source);
            source_view(s, hold)
        })
        .collect();
    Ok(Json(AnomalyList { sources }))
}

#[utoipa::path(post, path = "/api/v1/anomalies/clear", tag = "anomalies", security(("bearer" = [])),
    request_body = ClearHold,
    responses(
        (status = 200, description = "Agreement recorded; the hold ends once an operator and the PD's Wali Data have both agreed", body = ClearHoldResponse),
        (status = 403, description = "An auditor, a custodian of another PD, or the same person agreeing twice", body = ApiError),
        (status = 404, description = "No hold in force on that source", body = ApiError),
        (status = 401, body = ApiError)))]
pub async fn clear_hold(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<ClearHold>,
) -> ApiResult<ClearHoldResponse> {
    let user = caller.person()?.clone();
    let app2 = app.clone();
    // A refusal comes back as `Ok(Err(..))`: `clear` changes nothing
    // before its checks pass, so committing that transaction is harmless.
    let result = app
        .state
        .write_blocking(move |txn| {
            Ok(clear::clear(
                &app2,
                txn,
                &user,
                &body.pd,
                &body.host,
                &body.source,
            ))
        })
        .await?;
    let done = result.map_err(|e| match e {
        ClearError::NoHold(_) => ApiErr::not_found(e.to_string()),
        ClearError::Forbidden(_) => ApiErr::forbidden(e.to_string()),
        ClearError::State(e) => ApiErr::from(e),
    })?;
    let key = anomalies::source_key(&done.hold.pd, &done.hold.host, &done.hold.source);
    let message = match done.waiting_for {
        None => format!("the retention hold on {key} is cleared; retention follows the keep policy again from its next run"),
        Some(side) => format!(
            "agreement recorded; the hold on {key} stays until the {} agrees too (cadang anomalies clear)",
            match side {
                clear::Side::Operator => "operator",
                clear::Side::Custodian => "PD's Wali Data (custodian)",
            }
        ),
    };
    Ok(Json(ClearHoldResponse {
        cleared: done.cleared,
        waiting_for: done.waiting_for.map(|s| s.name().to_string()),
        hold: hold_view(&done.hold),
        message,
    }))
}
