//! Drill routes: grant material and sealed grants (the PD's custodian),
//! grant revocation, drills and their signed reports (JSON, PDF, HTML).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cadang_proto::api::ApiError;
use cadang_proto::drill::{DrillList, DrillView, GrantList, GrantMaterial, GrantUpload, GrantView};
use serde::Deserialize;

use super::auth::Caller;
use super::{ApiErr, ApiResult, App};
use crate::drill;
use crate::report::{render_html, render_pdf, Lang, SignedDocument};
use crate::state::drills;

pub const MATERIAL: &str = "/api/v1/pds/{pd}/drill-grant-material";
pub const GRANTS_OF_PD: &str = "/api/v1/pds/{pd}/drill-grants";
pub const GRANTS: &str = "/api/v1/drill-grants";
pub const REVOKE: &str = "/api/v1/drill-grants/{id}/revoke";
pub const DRILLS: &str = "/api/v1/drills";
pub const DRILL: &str = "/api/v1/drills/{id}";
pub const REPORT_JSON: &str = "/api/v1/drills/{id}/report.json";
pub const REPORT_PDF: &str = "/api/v1/drills/{id}/report.pdf";
pub const REPORT_HTML: &str = "/api/v1/drills/{id}/report.html";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct MaterialQuery {
    /// The drill runner's host name.
    pub runner: String,
}

#[utoipa::path(get, path = "/api/v1/pds/{pd}/drill-grant-material", tag = "drills", security(("bearer" = [])),
    params(("pd" = String, Path, description = "PD code"), MaterialQuery),
    responses((status = 200, body = GrantMaterial), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn material(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(pd): Path<String>,
    Query(q): Query<MaterialQuery>,
) -> ApiResult<GrantMaterial> {
    let user = caller.person()?.clone();
    Ok(Json(
        drill::grant::material(&app, &user, &pd, &q.runner).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/pds/{pd}/drill-grants", tag = "drills", security(("bearer" = [])),
    params(("pd" = String, Path, description = "PD code")), request_body = GrantUpload,
    responses((status = 200, body = GrantView), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
pub async fn grant(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(pd): Path<String>,
    Json(body): Json<GrantUpload>,
) -> ApiResult<GrantView> {
    let user = caller.person()?.clone();
    Ok(Json(drill::grant::accept(&app, &user, &pd, body).await?))
}

#[utoipa::path(get, path = "/api/v1/drill-grants", tag = "drills", security(("bearer" = [])),
    responses((status = 200, body = GrantList), (status = 401, body = ApiError)))]
pub async fn grants(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<GrantList> {
    let user = caller.person()?.clone();
    Ok(Json(GrantList {
        grants: drill::grant::list(&app, &user)?,
    }))
}

#[utoipa::path(post, path = "/api/v1/drill-grants/{id}/revoke", tag = "drills", security(("bearer" = [])),
    params(("id" = String, Path, description = "Grant id")),
    responses((status = 200, body = GrantView), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn revoke(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<GrantView> {
    let user = caller.person()?.clone();
    Ok(Json(drill::grant::revoke(&app, &user, &id).await?))
}

#[utoipa::path(get, path = "/api/v1/drills", tag = "drills", security(("bearer" = [])),
    responses((status = 200, body = DrillList), (status = 401, body = ApiError)))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<DrillList> {
    let user = caller.person()?.clone();
    Ok(Json(DrillList {
        drills: drill::list(&app, &user)?.iter().map(|d| d.view()).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/drills/{id}", tag = "drills", security(("bearer" = [])),
    params(("id" = String, Path, description = "Drill id")),
    responses((status = 200, body = DrillView), (status = 404, body = ApiError)))]
pub async fn show(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<DrillView> {
    let user = caller.person()?.clone();
    drill::get(&app, &user, &id)?
        .map(|d| Json(d.view()))
        .ok_or_else(|| not_found(&id))
}

fn not_found(id: &str) -> ApiErr {
    ApiErr::not_found(format!(
        "there is no drill {id} that you may see; check the id against your list of drills (Reports in the console, or `cadang drill list`)"
    ))
}

/// The stored signed report of a drill the caller may see.
fn signed(app: &App, caller: &Caller, id: &str) -> Result<Vec<u8>, ApiErr> {
    let user = caller.person()?;
    drill::get(app, user, id)?.ok_or_else(|| not_found(id))?;
    app.state
        .read(|txn| drills::report(txn, id))?
        .ok_or_else(|| {
            ApiErr::not_found(format!(
                "drill {id} has no signed report: it failed before it ran, and its failure reason is in the drill's details"
            ))
        })
}

fn document(bytes: &[u8]) -> Result<SignedDocument, ApiErr> {
    SignedDocument::parse(bytes).map_err(|e| {
        ApiErr::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("the stored report cannot be read back: {e}"),
        )
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LangQuery {
    /// `id` (Bahasa Indonesia, the default) or `en`.
    pub lang: Option<String>,
}

fn lang(q: &LangQuery) -> Lang {
    match q.lang.as_deref() {
        Some("en") => Lang::En,
        _ => Lang::Id,
    }
}

#[utoipa::path(get, path = "/api/v1/drills/{id}/report.json", tag = "drills", security(("bearer" = [])),
    params(("id" = String, Path, description = "Drill id")),
    responses((status = 200, description = "The signed report, byte for byte", content_type = "application/json", body = Object), (status = 404, body = ApiError)))]
pub async fn report_json(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiErr> {
    let bytes = signed(&app, &caller, &id)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

#[utoipa::path(get, path = "/api/v1/drills/{id}/report.pdf", tag = "drills", security(("bearer" = [])),
    params(("id" = String, Path, description = "Drill id"), LangQuery),
    responses((status = 200, description = "The PDF rendering, carrying the signed JSON", content_type = "application/pdf", body = Vec<u8>), (status = 404, body = ApiError)))]
pub async fn report_pdf(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Result<Response, ApiErr> {
    let doc = document(&signed(&app, &caller, &id)?)?;
    let pdf = render_pdf(&doc, lang(&q)).map_err(|e| ApiErr::bad_request(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response())
}

#[utoipa::path(get, path = "/api/v1/drills/{id}/report.html", tag = "drills", security(("bearer" = [])),
    params(("id" = String, Path, description = "Drill id"), LangQuery),
    responses((status = 200, description = "The HTML rendering", content_type = "text/html", body = String), (status = 404, body = ApiError)))]
pub async fn report_html(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Result<Response, ApiErr> {
    let doc = document(&signed(&app, &caller, &id)?)?;
    let html = render_html(&doc, lang(&q)).map_err(|e| ApiErr::bad_request(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

/// The drill routes (every one is in `auth::ROUTES`).
pub fn routes() -> axum::Router<Arc<App>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(MATERIAL, get(material))
        .route(GRANTS_OF_PD, post(grant))
        .route(GRANTS, get(grants))
        .route(REVOKE, post(revoke))
        .route(DRILLS, get(list))
        .route(DRILL, get(show))
        .route(REPORT_JSON, get(report_json))
        .route(REPORT_PDF, get(report_pdf))
        .route(REPORT_HTML, get(report_html))
}
