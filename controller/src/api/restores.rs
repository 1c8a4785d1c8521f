//! Restore request routes (people, bearer token). Who may call each one is
//! in `auth::ROUTES`; custodians are further limited here to their own PDs,
//! and approving or rejecting is for the PD's Wali Data alone.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use cadang_proto::api::ApiError;
use cadang_proto::restore::{
    paths, ApprovalMaterial, ApproveRestore, FileRestore, RejectRestore, RestoreList,
    RestoreRequest,
};

use super::auth::Caller;
use super::{ApiResult, App};
use crate::restore;

/// The routes of this module, merged into the API router.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(paths::RESTORES, post(file).get(list))
        .route(paths::RESTORE, get(show))
        .route(paths::MATERIAL, get(material))
        .route(paths::APPROVE, post(approve))
        .route(paths::REJECT, post(reject))
        .route(paths::CANCEL, post(cancel))
}

#[utoipa::path(post, path = "/api/v1/restores", tag = "restores", security(("bearer" = [])),
    request_body = FileRestore,
    responses(
        (status = 200, description = "Filed: pending until the PD's Wali Data approves or rejects it", body = RestoreRequest),
        (status = 400, description = "Bad body, unknown snapshot, or the agent is not of this PD", body = ApiError),
        (status = 403, description = "Not an operator or administrator", body = ApiError),
    ))]
pub async fn file(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<FileRestore>,
) -> ApiResult<RestoreRequest> {
    let user = caller.person()?.clone();
    restore::file(&app, &user, body).await.map(Json)
}

#[utoipa::path(get, path = "/api/v1/restores", tag = "restores", security(("bearer" = [])),
    responses((status = 200, description = "Requests the caller may see, newest first", body = RestoreList),
        (status = 401, body = ApiError)))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<RestoreList> {
    let user = caller.person()?.clone();
    let requests = restore::list(&app, &user).await?;
    Ok(Json(RestoreList { requests }))
}

#[utoipa::path(get, path = "/api/v1/restores/{id}", tag = "restores", security(("bearer" = [])),
    params(("id" = String, Path, description = "Restore request id (rr-...)")),
    responses((status = 200, body = RestoreRequest), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn show(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<RestoreRequest> {
    let user = caller.person()?.clone();
    restore::show(&app, &user, &id).await.map(Json)
}

#[utoipa::path(get, path = "/api/v1/restores/{id}/approval-material", tag = "restores", security(("bearer" = [])),
    params(("id" = String, Path, description = "Restore request id")),
    responses(
        (status = 200, description = "The request, the agent's age recipient and the passphrase-wrapped identity", body = ApprovalMaterial),
        (status = 403, description = "Not the PD's Wali Data", body = ApiError),
        (status = 409, description = "Not pending (approved, rejected, cancelled or expired)", body = ApiError),
    ))]
pub async fn material(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<ApprovalMaterial> {
    let user = caller.person()?.clone();
    restore::approval_material(&app, &user, &id).await.map(Json)
}

#[utoipa::path(post, path = "/api/v1/restores/{id}/approve", tag = "restores", security(("bearer" = [])),
    params(("id" = String, Path, description = "Restore request id")),
    request_body = ApproveRestore,
    responses(
        (status = 200, description = "Approved: the envelope is queued for the agent", body = RestoreRequest),
        (status = 400, description = "Not an armored envelope, or it holds an AGE-SECRET-KEY", body = ApiError),
        (status = 403, description = "Not the PD's Wali Data", body = ApiError),
        (status = 409, description = "Not pending or expired", body = ApiError),
    ))]
pub async fn approve(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<ApproveRestore>,
) -> ApiResult<RestoreRequest> {
    let user = caller.person()?.clone();
    restore::approve(&app, &user, &id, body.envelope)
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/api/v1/restores/{id}/reject", tag = "restores", security(("bearer" = [])),
    params(("id" = String, Path, description = "Restore request id")),
    request_body = RejectRestore,
    responses((status = 200, body = RestoreRequest), (status = 403, body = ApiError), (status = 409, body = ApiError)))]
pub async fn reject(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<RejectRestore>,
) -> ApiResult<RestoreRequest> {
    let user = caller.person()?.clone();
    restore::reject(&app, &user, &id, body.reason)
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/api/v1/restores/{id}/cancel", tag = "restores", security(("bearer" = [])),
    params(("id" = String, Path, description = "Restore request id")),
    responses((status = 200, body = RestoreRequest), (status = 403, body = ApiError), (status = 409, body = ApiError)))]
pub async fn cancel(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<RestoreRequest> {
    let user = caller.person()?.clone();
    restore::cancel(&app, &user, &id).await.map(Json)
}
