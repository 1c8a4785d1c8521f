//! People routes: fleet, jobs, backup-now, snapshots, PD registration,
//! policy reload, users, enrollment tokens, revocation, metrics.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cadang_proto::api::{
    ApiError, BackupNowRequest, BackupNowResponse, CreateUser, CreateUserResponse,
    EnrollTokenRequest, EnrollTokenResponse, FleetStatus, JobList, JobView, RegisterPd,
    RegisterPdResponse, ReloadResponse, RevokeResponse, SnapshotList, SnapshotView,
};
use serde::Deserialize;

use serde_json::json;

use super::auth::Caller;
use super::{ApiErr, ApiResult, App};
use crate::audit::events::person_actor;
use crate::audit::NewEntry;
use crate::state::jobs::{self, JobFilter, JobRecord};
use crate::state::users::UserRecord;
use crate::state::{agents, pds, users};

fn covers(user: &UserRecord, pd: &str) -> Result<(), ApiErr> {
    if user.covers_pd(pd) {
        Ok(())
    } else {
        Err(ApiErr::forbidden(format!(
            "{} is not the custodian of PD {pd}",
            user.name
        )))
    }
}

#[utoipa::path(get, path = "/api/v1/fleet", tag = "people", security(("bearer" = [])),
    responses((status = 200, body = FleetStatus), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub async fn fleet(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiErr> {
    let user = caller.person()?.clone();
    let json = crate::fleet::document::status_json(&app, |pd| user.covers_pd(pd))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct JobQuery {
    /// Only jobs that did not succeed.
    #[serde(default)]
    pub failed: Option<bool>,
    pub pd: Option<String>,
    /// `backup`, `replicate`, `verify`, `retention`, `repair`, `restore`.
    pub kind: Option<String>,
    pub limit: Option<usize>,
}

pub fn job_view(j: &JobRecord) -> JobView {
    JobView {
        id: j.id.clone(),
        kind: j.kind.clone(),
        pd: j.pd.clone(),
        host: j.host.clone(),
        source: j.source.clone(),
        site: j.site.clone(),
        state: j.state.name().into(),
        outcome: j.outcome.clone(),
        message: j.message.clone(),
        created: j.created,
        started: j.started,
        finished: j.finished,
        attempts: j.attempts,
        slot: j.slot,
        snapshot: j.snapshot.clone(),
    }
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "people", security(("bearer" = [])), params(JobQuery),
    responses((status = 200, body = JobList), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub async fn jobs(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<JobQuery>,
) -> ApiResult<JobList> {
    let user = caller.person()?.clone();
    let filter = JobFilter {
        failed: q.failed.unwrap_or(false),
        pd: q.pd,
        kind: q.kind,
        limit: q.limit.unwrap_or(200).min(5000),
    };
    let list = app
        .state
        .read(|txn| jobs::list(txn, &filter, |pd| user.covers_pd(pd)))?;
    Ok(Json(JobList {
        jobs: list.iter().map(job_view).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/hosts/{host}/backup-now", tag = "people", security(("bearer" = [])),
    params(("host" = String, Path, description = "The PD server's host name")),
    request_body = BackupNowRequest,
    responses((status = 200, body = BackupNowResponse), (status = 404, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub async fn backup_now(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(host): Path<String>,
    Json(req): Json<BackupNowRequest>,
) -> ApiResult<BackupNowResponse> {
    let actor = person_actor(caller.person()?);
    let agent = app
        .state
        .read(|txn| agents::active_for_host(txn, &host))?
        .ok_or_else(|| ApiErr::not_found(format!("no enrolled agent serves host {host}")))?;
    let policy = app
        .policies()
        .map(|set| crate::enroll::agent_policy(&set, &agent.pd, &agent.host));
    let known: Vec<String> = policy
        .map(|p| p.sources.into_iter().map(|s| s.name).collect())
        .unwrap_or_default();
    let wanted = match req.source {
        Some(s) if known.contains(&s) => vec![s],
        Some(s) => {
            return Err(ApiErr::not_found(format!(
                "host {host} has no source {s} in its policy (it has: {})",
                known.join(", ")
            )))
        }
        None => known,
    };
    let now = app.clock.now();
    let a = agent.clone();
    let me = app.clone();
    let (queued, busy) = app
        .state
        .write_blocking(move |txn| {
            let (mut queued, mut busy) = (Vec::new(), Vec::new());
            for s in wanted {
                match jobs::create(txn, jobs::backup_job(&a, &s, None, now))? {
                    Some(j) => queued.push(j.id),
                    None => busy.push(s),
                }
            }
            let subject = format!("{}/{}", a.pd, a.host);
            me.record_in(
                txn,
                NewEntry::new(&actor, "backup.now", &subject, "ok")
                    .detail(json!({ "agent": a.id, "jobs": queued, "busy": busy })),
            )?;
            Ok((queued, busy))
        })
        .await?;
    app.notifier(&agent.id).notify_one();
    Ok(Json(BackupNowResponse { jobs: queued, busy }))
}

#[utoipa::path(post, path = "/api/v1/hosts/{host}/revoke", tag = "people", security(("bearer" = [])),
    params(("host" = String, Path, description = "The PD server's host name")),
    responses((status = 200, body = RevokeResponse), (status = 404, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub async fn revoke(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(host): Path<String>,
) -> ApiResult<RevokeResponse> {
    let actor = person_actor(caller.person()?);
    let now = app.clock.now();
    let h = host.clone();
    let me = app.clone();
    let revoked = app
        .state
        .write_blocking(move |txn| {
            let revoked = agents::revoke_host(txn, &h, now)?;
            if !revoked.is_empty() {
                me.record_in(
                    txn,
                    NewEntry::new(&actor, "agent.revoke", &h, "ok")
                        .detail(json!({ "host": h, "agents": revoked })),
                )?;
            }
            Ok(revoked)
        })
        .await?;
    app.fleet.agents_changed(); // fleet status reads the agents again (issue 7)
    if revoked.is_empty() {
        return Err(ApiErr::not_found(format!(
            "no agent of host {host} is enrolled (or it is revoked already)"
        )));
    }
    for id in &revoked {
        app.notifier(id).notify_one();
    }
    Ok(Json(RevokeResponse {
        host,
        agents: revoked,
    }))
}

#[utoipa::path(get, path = "/api/v1/pds/{pd}/snapshots", tag = "people", security(("bearer" = [])),
    params(("pd" = String, Path, description = "PD code")),
    responses((status = 200, body = SnapshotList), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub async fn snapshots(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(pd): Path<String>,
) -> ApiResult<SnapshotList> {
    covers(caller.person()?, &pd)?;
    let list = app.state.read(|txn| pds::snapshots(txn, &pd))?;
    Ok(Json(SnapshotList {
        snapshots: list
            .into_iter()
            .map(|s| SnapshotView {
                id: s.id,
                pd: s.pd,
                host: s.host,
                source: s.source,
                time: s.time,
                files: s.files,
                bytes_read: s.bytes_read,
                bytes_added: s.bytes_added,
            })
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/pds", tag = "people", security(("bearer" = [])),
    request_body = RegisterPd,
    responses((status = 200, body = RegisterPdResponse), (status = 400, body = ApiError), (status = 409, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub async fn register_pd(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<RegisterPd>,
) -> ApiResult<RegisterPdResponse> {
    let user = caller.person()?.clone();
    covers(&user, &req.pd)?;
    crate::registration::check(&req).map_err(ApiErr::bad_request)?;
    let now = app.clock.now();
    let me = app.clone();
    let result = app
        .state
        .write_blocking(move |txn| {
            let result = crate::registration::register(txn, &req, &user.name, now)?;
            me.record_in(
                txn,
                crate::registration::entry(&req, &person_actor(&user), &result),
            )?;
            Ok(result)
        })
        .await?;
    app.fleet.agents_changed(); // fleet status reads the PDs again (issue 7)
    result
        .map(Json)
        .map_err(|m| ApiErr::new(StatusCode::CONFLICT, m))
}

#[utoipa::path(post, path = "/api/v1/policies/reload", tag = "people", security(("bearer" = [])),
    responses(
        (status = 200, description = "The new set runs", body = ReloadResponse),
        (status = 422, description = "Refused with every located error; the running set stays", body = ApiError),
        (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub async fn reload(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<ReloadResponse> {
    let actor = person_actor(caller.person()?);
    crate::daemon::reload_policies_by(&app, &actor)
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/api/v1/users", tag = "people", security(("bearer" = [])),
    request_body = CreateUser,
    responses((status = 200, description = "The user and its API token (shown once)", body = CreateUserResponse),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub async fn create_user(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<CreateUser>,
) -> ApiResult<CreateUserResponse> {
    let actor = person_actor(caller.person()?);
    let role = req.role.kind().to_string();
    let rec = UserRecord::new(&req.name, req.nip, vec![req.role], app.clock.now());
    let name = rec.name.clone();
    let me = app.clone();
    let token = app
        .state
        .write_blocking(move |txn| {
            let token = users::create(txn, &rec)?;
            // The token itself never goes into the log.
            me.record_in(
                txn,
                NewEntry::new(&actor, "user.create", &rec.name, "ok")
                    .detail(json!({ "user": rec.name, "nip": rec.nip, "role": role, "api_token": "issued" })),
            )?;
            Ok(token)
        })
        .await?;
    Ok(Json(CreateUserResponse { name, token }))
}

#[utoipa::path(post, path = "/api/v1/enroll-tokens", tag = "people", security(("bearer" = [])),
    request_body = EnrollTokenRequest,
    responses((status = 200, description = "A one-time token (shown once)", body = EnrollTokenResponse),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub async fn enroll_token(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<EnrollTokenRequest>,
) -> ApiResult<EnrollTokenResponse> {
    let ttl = chrono::Duration::seconds(req.ttl_seconds.min(i64::MAX as u64) as i64);
    let actor = person_actor(caller.person()?);
    let record = |txn: &redb::WriteTransaction, e| app.record_in(txn, e).map(|_| ());
    let (token, expires) = crate::enroll::issue_token_by(
        &app.state,
        &record,
        &actor,
        app.ca.fingerprint,
        &req.host,
        &req.pd,
        req.role,
        ttl,
        app.clock.now(),
    )?;
    Ok(Json(EnrollTokenResponse {
        token: token.to_string(),
        expires,
    }))
}

#[utoipa::path(get, path = "/metrics", tag = "people", security(("bearer" = [])),
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String),
        (status = 401, body = ApiError), (status = 403, body = ApiError)))]
pub async fn metrics(State(app): State<Arc<App>>) -> Result<Response, ApiErr> {
    let text = app.metrics.render(&app)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
