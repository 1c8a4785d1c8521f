//! Authentication and authorisation, decided for every route in one table.
//!
//! Agents authenticate with the client certificate of their connection,
//! looked up in the state on every request (so a revocation takes effect at
//! the next request); people with `Authorization: Bearer <token>`. A route
//! missing from [`ROUTES`] is refused: the table fails closed.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiErr, App};
use crate::state::agents::{self, AgentRecord};
use crate::state::users::{self, UserRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Enrollment: no certificate yet; the one-time token in the body
    /// authenticates the agent.
    EnrollToken,
    /// A valid, not revoked agent client certificate.
    Agent,
    /// A person holding one of these roles.
    People(&'static [&'static str]),
    /// The console: a person signed in with a session cookie holding one
    /// of these roles; a POST also needs the session's CSRF token
    /// (`controller/src/console/session.rs`).
    Session(&'static [&'static str]),
    /// No caller identity: the console's login page and its stylesheet.
    /// A POST here still carries a CSRF token (the login form's own).
    Public,
}

#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

const EVERYONE: &[&str] = &["admin", "operator", "custodian", "auditor"];
const STAFF: &[&str] = &["admin", "operator"];
/// The role names a person can hold (for tests walking the table).
pub const ROLE_NAMES: &[&str] = EVERYONE;

/// Who may call what. Custodians are further limited to their own PDs by
/// the handlers (`Role::covers_pd`).
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        method: "POST",
        path: cadang_proto::paths::ENROLL,
        access: Access::EnrollToken,
    },
    RouteSpec {
        method: "POST",
        path: cadang_proto::paths::POLL,
        access: Access::Agent,
    },
    RouteSpec {
        method: "POST",
        path: cadang_proto::paths::REPORTS,
        access: Access::Agent,
    },
    RouteSpec {
        method: "GET",
        path: "/api/v1/fleet",
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: "/api/v1/jobs",
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "POST",
        path: "/api/v1/hosts/{host}/backup-now",
        access: Access::People(STAFF),
    },
    RouteSpec {
        method: "POST",
        path: "/api/v1/hosts/{host}/revoke",
        access: Access::People(STAFF),
    },
    RouteSpec {
        method: "POST",
        path: "/api/v1/pds",
        access: Access::People(&["admin", "custodian"]),
    },
    RouteSpec {
        method: "GET",
        path: "/api/v1/pds/{pd}/snapshots",
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "POST",
        path: "/api/v1/policies/reload",
        access: Access::People(STAFF),
    },
    RouteSpec {
        method: "POST",
        path: "/api/v1/users",
        access: Access::People(&["admin"]),
    },
    RouteSpec {
        method: "POST",
        path: "/api/v1/enroll-tokens",
        access: Access::People(STAFF),
    },
    RouteSpec {
        method: "GET",
        path: cadang_proto::paths::OPENAPI,
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: cadang_proto::paths::METRICS,
        access: Access::People(&["admin", "operator", "auditor"]),
    },
    // restores (issue 8): controller/src/api/restores.rs; custodians are
    // limited to their PDs, approve/reject to the PD's Wali Data, in the handlers
    RouteSpec {
        method: "POST",
        path: cadang_proto::restore::paths::RESTORES,
        access: Access::People(STAFF),
    },
    RouteSpec {
        method: "GET",
        path: cadang_proto::restore::paths::RESTORES,
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: cadang_proto::restore::paths::RESTORE,
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: cadang_proto::restore::paths::MATERIAL,
        access: Access::People(&["custodian"]),
    },
    RouteSpec {
        method: "POST",
        path: cadang_proto::restore::paths::APPROVE,
        access: Access::People(&["custodian"]),
    },
    RouteSpec {
        method: "POST",
        path: cadang_proto::restore::paths::REJECT,
        access: Access::People(&["custodian"]),
    },
    RouteSpec {
        method: "POST",
        path: cadang_proto::restore::paths::CANCEL,
        access: Access::People(STAFF),
    },
    // console (controller/src/console/): pages for people signed in with a session
    RouteSpec {
        method: "GET",
        path: "/console/login",
        access: Access::Public,
    },
    RouteSpec {
        method: "POST",
        path: "/console/login",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/console/assets/console.css",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/console",
        access: Access::Session(EVERYONE),
    },
    RouteSpec {
        method: "POST",
        path: "/console/logout",
        access: Access::Session(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: "/console/fleet",
        access: Access::Session(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: "/console/pds/{pd}",
        access: Access::Session(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: "/console/jobs",
        access: Access::Session(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: "/console/jobs/{id}",
        access: Access::Session(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: "/console/restores",
        access: Access::Session(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: "/console/reports",
        access: Access::Session(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: "/console/audit",
        access: Access::Session(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: "/console/audit/export",
        access: Access::Session(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: "/console/users",
        access: Access::Session(&["admin"]),
    },
    RouteSpec {
        method: "POST",
        path: "/console/users",
        access: Access::Session(&["admin"]),
    },
    RouteSpec {
        method: "POST",
        path: "/console/users/{name}",
        access: Access::Session(&["admin"]),
    },
    RouteSpec {
        method: "GET",
        path: "/console/restores/{id}",
        access: Access::Session(EVERYONE),
    },
    RouteSpec {
        method: "POST",
        path: "/console/restores",
        access: Access::Session(STAFF),
    },
    RouteSpec {
        method: "POST",
        path: "/console/restores/{id}/reject",
        access: Access::Session(&["custodian"]),
    },
    RouteSpec {
        method: "POST",
        path: "/console/restores/{id}/cancel",
        access: Access::Session(STAFF),
    },
    // single sign-on and the approval scripts (console/oidc.rs, console/scripts.rs):
    // public, the provider's signed answer or nothing secret
    RouteSpec {
        method: "GET",
        path: "/console/sso/login",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/console/sso/callback",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/console/assets/js/age.js",
        access: Access::Public,
    },
    RouteSpec {
        method: "GET",
        path: "/console/assets/js/approve.js",
        access: Access::Public,
    },
    // ransomware early warning (issue 10): api/anomalies.rs; custodians
    // see and clear their own PDs only, clearing needs operator + custodian
    RouteSpec {
        method: "GET",
        path: "/api/v1/anomalies",
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "POST",
        path: "/api/v1/anomalies/clear",
        access: Access::People(&["admin", "operator", "custodian"]),
    },
    // audit log and reports (issue 8): api/audit.rs, api/reports.rs;
    // custodians see their own PDs' entries and reports only
    RouteSpec {
        method: "GET",
        path: "/api/v1/audit",
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: "/api/v1/reports",
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: "/api/v1/reports/{id}",
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "POST",
        path: "/api/v1/reports/compliance",
        access: Access::People(EVERYONE),
    },
    // drills (issue 8): api/drills.rs; grants are the PD's Wali Data's
    // alone (checked in the handlers), revocation also an admin's
    RouteSpec {
        method: "GET",
        path: super::drills::MATERIAL,
        access: Access::People(&["custodian"]),
    },
    RouteSpec {
        method: "POST",
        path: super::drills::GRANTS_OF_PD,
        access: Access::People(&["custodian"]),
    },
    RouteSpec {
        method: "GET",
        path: super::drills::GRANTS,
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "POST",
        path: super::drills::REVOKE,
        access: Access::People(&["admin", "custodian"]),
    },
    RouteSpec {
        method: "GET",
        path: super::drills::DRILLS,
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: super::drills::DRILL,
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: super::drills::REPORT_JSON,
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: super::drills::REPORT_PDF,
        access: Access::People(EVERYONE),
    },
    RouteSpec {
        method: "GET",
        path: super::drills::REPORT_HTML,
        access: Access::People(EVERYONE),
    },
];

/// The SHA-256 (hex) of the client certificate the connection presented,
/// put on every request by the server.
#[derive(Debug, Clone, Default)]
pub struct PeerCert(pub Option<String>);

/// The authenticated caller, for handlers.
#[derive(Debug, Clone)]
pub enum Caller {
    Enrolling,
    Agent(AgentRecord),
    Person(UserRecord),
    /// A public console route (login page, stylesheet).
    Public,
}

impl Caller {
    pub fn agent(&self) -> Result<&AgentRecord, ApiErr> {
        match self {
            Caller::Agent(a) => Ok(a),
            _ => Err(ApiErr::forbidden("this route is for agents")),
        }
    }
    pub fn person(&self) -> Result<&UserRecord, ApiErr> {
        match self {
            Caller::Person(u) => Ok(u),
            _ => Err(ApiErr::forbidden("this route is for people")),
        }
    }
}

pub fn spec_for(method: &str, path: &str) -> Option<&'static RouteSpec> {
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}

pub async fn authorise(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let Some(spec) = spec_for(req.method().as_str(), &path) else {
        tracing::error!(%path, "route missing from the authorisation table");
        return ApiErr::forbidden("this route is not in the authorisation table").into_response();
    };
    let caller = match spec.access {
        Access::EnrollToken => Ok(Caller::Enrolling),
        Access::Agent => {
            let fp = req.extensions().get::<PeerCert>().and_then(|p| p.0.clone());
            agent_caller(&app, fp.as_deref()).map(Caller::Agent)
        }
        Access::People(roles) => person_caller(&app, &req, roles).map(Caller::Person),
        Access::Public => Ok(Caller::Public),
        Access::Session(roles) => {
            return match crate::console::session::authorise(&app, req, roles).await {
                Ok(req) => next.run(req).await,
                Err(refusal) => refusal,
            }
        }
    };
    match caller {
        Ok(c) => {
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

fn agent_caller(app: &App, fingerprint: Option<&str>) -> Result<AgentRecord, ApiErr> {
    let fp = fingerprint.ok_or_else(|| {
        ApiErr::new(
            StatusCode::UNAUTHORIZED,
            "this route needs the agent's client certificate (enroll the agent first)",
        )
    })?;
    let agent = app
        .state
        .read(|txn| agents::by_cert(txn, fp))?
        .ok_or_else(|| ApiErr::forbidden("this client certificate belongs to no enrolled agent; enroll again with a new token"))?;
    if let Some(t) = agent.revoked {
        return Err(ApiErr::forbidden(format!(
            "agent {} ({}) was revoked at {t}; enroll it again with a new token if it should work",
            agent.id, agent.host
        )));
    }
    Ok(agent)
}

fn person_caller(app: &App, req: &Request, roles: &[&str]) -> Result<UserRecord, ApiErr> {
    let unauthorized = |m: &str| ApiErr::new(StatusCode::UNAUTHORIZED, m);
    // The console's pages and scripts call the API with the session cookie
    // (POSTs with the X-CSRF-Token header) instead of a bearer token.
    if req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .is_none()
    {
        if let Some(user) = crate::console::session::api_caller(app, req, roles)? {
            return Ok(user);
        }
    }
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| {
            unauthorized(
                "this route needs `Authorization: Bearer <token>` (set CADANG_TOKEN for the CLI)",
            )
        })?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    let user = app
        .state
        .read(|txn| users::by_token(txn, token))?
        .ok_or_else(|| unauthorized("this API token is unknown; ask an administrator for one"))?;
    if !user.has_any(roles) {
        return Err(ApiErr::forbidden(format!(
            "{} ({}) may not do this; it needs one of: {}",
            user.name,
            user.kinds(),
            roles.join(", ")
        )));
    }
    Ok(user)
}
