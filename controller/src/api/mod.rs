//! The HTTPS API: agent routes (client certificate), people routes (bearer
//! token), metrics and the OpenAPI document. Who may call what is decided in
//! one table, [`auth::ROUTES`].

pub mod agent;
pub mod anomalies;
pub mod audit;
pub mod auth;
pub mod drills;
pub mod openapi;
pub mod people;
pub mod reports;
pub mod restores;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cadang_policies::model::PolicySet;
use cadang_proto::api::ApiError;
use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify};

use crate::ca::Ca;
use crate::config::Config;
use crate::engine::{Clock, RunBook};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::policy::PolicyLoader;
use crate::state::State;

/// The longest a poll is held open.
pub const POLL_CAP_SECONDS: u32 = 30;
/// An agent counts as connected when it polled this recently.
pub const CONNECTED_SECONDS: i64 = 90;

/// What every handler shares.
pub struct App {
    pub state: Arc<State>,
    pub config: Config,
    pub ca: Ca,
    /// The controller's ed25519 secret: certifies agents' signing keys.
    pub signing_secret: [u8; 32],
    pub clock: Arc<dyn Clock>,
    pub policies: RwLock<Option<Arc<PolicySet>>>,
    pub loader: PolicyLoader,
    /// The engine's memory, shared by the dispatcher and report handling;
    /// written to the state in the same transaction as what changed it.
    pub runbook: Mutex<RunBook>,
    pub live: Mutex<HashMap<String, Live>>,
    pub metrics: Metrics,
    /// Wakes the dispatcher early (reload, report, backup-now).
    pub wake: Notify,
    /// Becomes true at shutdown: held polls answer at once.
    pub stopping: watch::Sender<bool>,
    /// The tamper-evident audit log (hash chain in the state file, signed
    /// checkpoints with the controller's key). Record through [`App::record`].
    pub audit: crate::audit::Auditor<Arc<crate::audit::RedbAuditLog>>,
    // controller performance (issue 7)
    /// Group commit for the hot writes (polls, reports, dispatch, site-job
    /// results): see `state::writer`.
    pub writer: crate::state::writer::Writer,
    /// Fleet status from memory, kept current by the writer's commits.
    pub fleet: crate::fleet::FleetView,
}

/// What the controller knows of an agent only in memory.
#[derive(Default, Clone)]
pub struct Live {
    pub notify: Arc<Notify>,
    pub last_seen: Option<DateTime<Utc>>,
    /// Not yet written to the state.
    pub dirty: bool,
    /// The agent's policy for the policy set of this fingerprint: built
    /// once per set, not on each of its polls.
    pub policy: Option<(String, Arc<cadang_proto::agent::AgentPolicy>)>,
}

impl App {
    /// Appends an audit entry at the clock's time. An entry that cannot be
    /// written fails the caller: an action the log does not hold must not
    /// look done.
    pub fn record(&self, entry: crate::audit::NewEntry) -> Result<crate::audit::AuditEntry, Error> {
        self.audit
            .record(entry, self.clock.now())
            .map_err(|e| Error::State(format!("the audit log cannot be written: {e}")))
    }

    /// Appends an audit entry inside the caller's write transaction, so
    /// the change and its entry commit together.
    pub fn record_in(
        &self,
        txn: &redb::WriteTransaction,
        entry: crate::audit::NewEntry,
    ) -> Result<crate::audit::AuditEntry, Error> {
        self.audit.record_in(txn, entry, self.clock.now())
    }

    pub fn policies(&self) -> Option<Arc<PolicySet>> {
        self.policies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The agent's notifier (made on first use).
    pub fn notifier(&self, agent_id: &str) -> Arc<Notify> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.entry(agent_id.to_string()).or_default().notify.clone()
    }

    /// The current policy of an agent (cached per policy set).
    pub fn agent_policy(
        &self,
        agent_id: &str,
        pd: &str,
        host: &str,
    ) -> Option<Arc<cadang_proto::agent::AgentPolicy>> {
        let set = self.policies()?;
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let l = live.entry(agent_id.to_string()).or_default();
        match &l.policy {
            Some((fp, p)) if *fp == set.fingerprint => Some(p.clone()),
            _ => {
                let p = Arc::new(crate::enroll::agent_policy(&set, pd, host));
                l.policy = Some((set.fingerprint.clone(), p.clone()));
                Some(p)
            }
        }
    }

    pub fn touch(&self, agent_id: &str, now: DateTime<Utc>) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let l = live.entry(agent_id.to_string()).or_default();
        l.last_seen = Some(now);
        l.dirty = true;
    }

    pub fn last_seen(&self, agent_id: &str) -> Option<DateTime<Utc>> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(agent_id).and_then(|l| l.last_seen)
    }

    pub fn connected_count(&self, now: DateTime<Utc>) -> usize {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.values()
            .filter(|l| {
                l.last_seen
                    .is_some_and(|t| (now - t).num_seconds() < CONNECTED_SECONDS)
            })
            .count()
    }

    /// Last-contact times not yet in the state, marking them written.
    pub fn take_dirty_seen(&self) -> Vec<(String, DateTime<Utc>)> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.iter_mut()
            .filter(|(_, l)| l.dirty)
            .filter_map(|(id, l)| {
                l.dirty = false;
                l.last_seen.map(|t| (id.clone(), t))
            })
            .collect()
    }
}

/// An error answer: status and a sentence for a person.
#[derive(Debug)]
pub struct ApiErr {
    pub status: StatusCode,
    pub error: String,
    pub details: Vec<String>,
}

impl ApiErr {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiErr {
        ApiErr {
            status,
            error: error.into(),
            details: Vec::new(),
        }
    }
    pub fn forbidden(error: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::FORBIDDEN, error)
    }
    pub fn bad_request(error: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::BAD_REQUEST, error)
    }
    pub fn not_found(error: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::NOT_FOUND, error)
    }
}

impl From<Error> for ApiErr {
    fn from(e: Error) -> ApiErr {
        let status = match &e {
            Error::Invalid(_) | Error::Certificate(_) => StatusCode::BAD_REQUEST,
            Error::Store { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "request failed");
        }
        ApiErr::new(status, e.to_string())
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ApiError {
                error: self.error,
                details: self.details,
            }),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<Json<T>, ApiErr>;

/// Every route. [`auth::ROUTES`] must list each one (the authorisation
/// layer refuses a route it does not find there).
pub fn router(app: Arc<App>) -> Router {
    use cadang_proto::paths;
    Router::new()
        .route(paths::ENROLL, post(agent::enroll))
        .route(paths::POLL, post(agent::poll))
        .route(paths::REPORTS, post(agent::reports))
        .route("/api/v1/fleet", get(people::fleet))
        .route("/api/v1/jobs", get(people::jobs))
        .route("/api/v1/hosts/{host}/backup-now", post(people::backup_now))
        .route("/api/v1/hosts/{host}/revoke", post(people::revoke))
        .route("/api/v1/pds", post(people::register_pd))
        .route("/api/v1/pds/{pd}/snapshots", get(people::snapshots))
        .route("/api/v1/policies/reload", post(people::reload))
        .route("/api/v1/users", post(people::create_user))
        .route("/api/v1/enroll-tokens", post(people::enroll_token))
        .route(paths::OPENAPI, get(openapi::document))
        .route(paths::METRICS, get(people::metrics))
        // console: server-rendered pages (controller/src/console/)
        .merge(crate::console::routes())
        // single sign-on and the approval scripts (console/oidc.rs, console/scripts.rs)
        .merge(crate::console::oidc::routes(app.clone()))
        .merge(crate::console::scripts::routes())
        // restores (issue 8): controller/src/api/restores.rs
        .merge(restores::routes())
        // ransomware early warning (issue 10): controller/src/api/anomalies.rs
        .merge(anomalies::routes())
        // audit log and reports (issue 8): api/audit.rs, api/reports.rs
        .merge(audit::routes())
        .merge(reports::routes())
        // drills (issue 8): controller/src/api/drills.rs
        .merge(drills::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::authorise,
        ))
        .fallback(|| async { ApiErr::not_found("no such route") })
        .with_state(app)
}
