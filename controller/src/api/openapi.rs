//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{agent, people, App};

#[derive(OpenApi)]
#[openapi(
    info(title = "cadang controller", description = "Agents (client certificate) and people (bearer token). Who may call what: controller/src/api/auth.rs ROUTES."),
    paths(
        agent::enroll, agent::poll, agent::reports,
        people::fleet, people::jobs, people::backup_now, people::revoke, people::snapshots,
        people::register_pd, people::reload, people::create_user, people::enroll_token,
        people::metrics, document,
        // console
        crate::console::login::form, crate::console::login::submit, crate::console::page::stylesheet,
        crate::console::fleet::home, crate::console::login::logout, crate::console::fleet::page,
        crate::console::pd::page, crate::console::jobs::list, crate::console::jobs::detail,
        crate::console::restores::list, crate::console::reports::list, crate::console::audit::page,
        crate::console::audit::export, crate::console::users::page, crate::console::users::add,
        crate::console::users::change, crate::console::restores::detail, crate::console::restores::file,
        crate::console::restores::reject, crate::console::restores::cancel,
        // single sign-on and the approval scripts
        crate::console::oidc::login, crate::console::oidc::callback,
        crate::console::scripts::age, crate::console::scripts::approve,
        // restores
        super::restores::file, super::restores::list, super::restores::show,
        super::restores::material, super::restores::approve, super::restores::reject,
        super::restores::cancel,
        // ransomware early warning
        super::anomalies::list, super::anomalies::clear_hold,
        // drills
        super::drills::material, super::drills::grant, super::drills::grants,
        super::drills::revoke, super::drills::list, super::drills::show,
        super::drills::report_json, super::drills::report_pdf, super::drills::report_html,
        // audit log and reports
        super::audit::list, super::reports::compliance, super::reports::list,
        super::reports::download,
    ),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "people", security(("bearer" = [])),
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn document(State(_app): State<Arc<App>>) -> Response {
    let text = spec().to_pretty_json().unwrap_or_default();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response()
}
