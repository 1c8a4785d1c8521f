//! Restore requests (permintaan pemulihan): the list, a request's page,
//! the filing form for operators, reject (with a reason) for the PD's Wali
//! Data, cancel for operators. Approval itself happens in the Wali Data's
//! browser (`assets/js/approve.js`): this page gives that script what it
//! needs in `data-*` attributes and never sees the passphrase.
//!
//! Every step goes through the restore module (`crate::restore`), the same
//! code as the API, so the same role and state checks apply.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Form};
use cadang_proto::restore::{paths, FileRestore, RestoreRequest, RestoreState, RestoreWhat};
use serde::Deserialize;

use super::i18n::{self, Catalogue};
use super::page::{self, Frame};
use super::session::ConsoleSession;
use crate::api::{ApiErr, App};

pub struct Row {
    pub id: String,
    pub href: String,
    pub pd: String,
    pub snapshot: String,
    pub agent: String,
    pub state: String,
    pub open: bool,
    pub filed: String,
    pub filed_by: String,
    pub expires: String,
    pub reason: String,
}

fn state_word(t: &Catalogue, s: RestoreState) -> String {
    t.m_or(&format!("restore.state_{}", s.name()), s.name())
}

fn row(app: &App, t: &Catalogue, r: &RestoreRequest) -> Row {
    Row {
        id: r.id.clone(),
        href: format!("/console/restores/{}", page::url_encode(&r.id)),
        pd: r.pd.clone(),
        snapshot: r.snapshot.chars().take(12).collect(),
        agent: r.agent_host.clone(),
        state: state_word(t, r.state),
        open: matches!(
            r.state,
            RestoreState::Pending | RestoreState::Approved | RestoreState::Running
        ),
        filed: page::when(app, Some(r.filed.at)),
        filed_by: r.filed.name.clone(),
        expires: page::when(app, Some(r.expires)),
        reason: r.reason.clone(),
    }
}

#[derive(Template)]
#[template(path = "console/restores.html")]
struct RestoresPage<'a> {
    t: &'a Catalogue,
    f: Frame,
    rows: Vec<Row>,
    /// Operators (and admins) file requests.
    can_file: bool,
    agents: Vec<String>,
    pds: Vec<String>,
}

#[utoipa::path(get, path = "/console/restores", tag = "console", responses((status = 200, description = "HTML page", content_type = "text/html", body = String), (status = 303, description = "Not signed in: to the login page")))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
) -> Result<Response, ApiErr> {
    let t = i18n::catalogue(s.lang);
    let requests = match crate::restore::list(&app, &s.user).await {
        Ok(r) => r,
        Err(e) => return Ok(page::api_refusal(s.lang, e)),
    };
    let can_file = s.user.has_any(&["admin", "operator"]);
    let (agents, pds) = if can_file {
        let all = app.state.read(crate::state::agents::all)?;
        let mut hosts: Vec<String> = all
            .iter()
            .filter(|a| a.revoked.is_none())
            .map(|a| a.host.clone())
            .collect();
        hosts.sort();
        hosts.dedup();
        let pds = app
            .policies()
            .map(|p| p.pds.keys().cloned().collect())
            .unwrap_or_default();
        (hosts, pds)
    } else {
        (Vec::new(), Vec::new())
    };
    let p = RestoresPage {
        t,
        f: Frame::new(&s, "/console/restores", "restore.title"),
        rows: requests.iter().map(|r| row(&app, t, r)).collect(),
        can_file,
        agents,
        pds,
    };
    Ok(page::render(&s, &p))
}

#[derive(Template)]
#[template(path = "console/restore.html")]
struct RestorePage<'a> {
    t: &'a Catalogue,
    f: Frame,
    r: Row,
    fields: Vec<(String, String)>,
    message: String,
    /// The PD's Wali Data, on a pending request: approve / reject.
    can_decide: bool,
    /// Operators, while the envelope has not reached the agent.
    can_cancel: bool,
    material_href: String,
    approve_href: String,
    /// Reload after this many seconds (see [`refreshes`]).
    refresh: Option<u32>,
}

/// How often a restore request's page reloads itself while it moves.
pub const REFRESH_SECONDS: u32 = 10;

/// Whether the page of a request in `state` reloads itself: while it waits
/// for the Wali Data, for the agent, or runs, so that whoever watches sees
/// it move without pressing F5. Never while the page shows the approve and
/// reject forms (`deciding`): a reload would wipe a passphrase or a reason
/// being typed. A `<meta http-equiv="refresh">`, so no script is needed and
/// the console's CSP stays as it is.
pub fn refreshes(state: RestoreState, deciding: bool) -> bool {
    let moving = matches!(
        state,
        RestoreState::Pending | RestoreState::Approved | RestoreState::Running
    );
    moving && !deciding
}

#[utoipa::path(get, path = "/console/restores/{id}", tag = "console", params(("id" = String, Path, description = "Request id")), responses((status = 200, description = "HTML page", content_type = "text/html", body = String), (status = 403, description = "Another PD's request")))]
pub async fn detail(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
    Path(id): Path<String>,
) -> Result<Response, ApiErr> {
    let t = i18n::catalogue(s.lang);
    let r = match crate::restore::show(&app, &s.user, &id).await {
        Ok(r) => r,
        Err(e) => return Ok(page::api_refusal(s.lang, e)),
    };
    let what = match &r.what {
        RestoreWhat::Whole => t.m("restore.what_whole"),
        RestoreWhat::Paths { paths } => paths.join("\n"),
        RestoreWhat::Dump { stream, pipe } => match pipe {
            Some(p) => format!("{stream} | {p}"),
            None => stream.clone(),
        },
    };
    let signoff = |s: &Option<cadang_proto::restore::Signoff>| {
        s.as_ref()
            .map(|x| {
                format!(
                    "{} ({}) · {}",
                    x.name,
                    x.actor,
                    page::when(&app, Some(x.at))
                )
            })
            .unwrap_or_else(|| "—".into())
    };
    let mut fields = vec![
        (t.m("term.pd"), r.pd.clone()),
        (t.m("term.snapshot"), r.snapshot.clone()),
        (
            t.m("restore.snapshot_time"),
            page::when(&app, r.snapshot_time),
        ),
        (t.m("restore.what"), what),
        (t.m("restore.agent"), r.agent_host.clone()),
        (t.m("restore.target"), r.target.clone()),
        (
            t.m("restore.in_place"),
            t.m(if r.in_place {
                "common.yes"
            } else {
                "common.no"
            }),
        ),
        (t.m("restore.reason"), r.reason.clone()),
        (t.m("restore.filed"), signoff(&Some(r.filed.clone()))),
        (t.m("restore.expires"), page::when(&app, Some(r.expires))),
        (t.m("restore.approved"), signoff(&r.approved)),
        (t.m("restore.rejected"), signoff(&r.rejected)),
    ];
    if let Some(why) = &r.reject_reason {
        fields.push((t.m("restore.reject_reason"), why.clone()));
    }
    fields.push((t.m("restore.delivered"), page::when(&app, r.delivered)));
    fields.push((t.m("restore.finished"), page::when(&app, r.finished)));
    if let Some(rep) = &r.report {
        fields.push((
            t.m("restore.report"),
            serde_json::to_string_pretty(rep).unwrap_or_default(),
        ));
    }
    let pending = r.state == RestoreState::Pending;
    let can_decide = pending && s.user.is_custodian_of(&r.pd);
    let p = RestorePage {
        t,
        f: Frame::new(
            &s,
            &format!("/console/restores/{}", page::url_encode(&id)),
            "restore.one",
        ),
        can_decide,
        refresh: refreshes(r.state, can_decide).then_some(REFRESH_SECONDS),
        can_cancel: s.user.has_any(&["admin", "operator"])
            && (pending || (r.state == RestoreState::Approved && r.delivered.is_none())),
        material_href: paths::with_id(paths::MATERIAL, &r.id),
        approve_href: paths::with_id(paths::APPROVE, &r.id),
        message: r.message.clone(),
        r: row(&app, t, &r),
        fields,
    };
    Ok(page::render(&s, &p))
}

#[derive(Debug, Deserialize, Default)]
pub struct FileForm {
    #[serde(default)]
    pub pd: String,
    #[serde(default)]
    pub snapshot: String,
    #[serde(default)]
    pub agent: String,
    #[serde(default)]
    pub target: String,
    /// `whole`, `paths` or `dump`.
    #[serde(default)]
    pub what: String,
    /// One absolute path a line (`what = paths`).
    #[serde(default)]
    pub paths: String,
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub pipe: String,
    pub in_place: Option<String>,
    #[serde(default)]
    pub reason: String,
    /// Hours the request stays valid (default 24).
    #[serde(default)]
    pub hours: String,
}

impl FileForm {
    fn body(&self) -> FileRestore {
        let what = match self.what.as_str() {
            "paths" => RestoreWhat::Paths {
                paths: self
                    .paths
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect(),
            },
            "dump" => RestoreWhat::Dump {
                stream: self.stream.trim().to_string(),
                pipe: Some(self.pipe.trim().to_string()).filter(|p| !p.is_empty()),
            },
            _ => RestoreWhat::Whole,
        };
        let snapshot = match self.snapshot.trim() {
            "" => "latest".to_string(),
            s => s.to_string(),
        };
        FileRestore {
            pd: self.pd.trim().to_uppercase(),
            snapshot,
            source_host: None,
            what,
            agent: self.agent.trim().to_string(),
            target: self.target.trim().to_string(),
            in_place: self.in_place.as_deref().is_some_and(|v| !v.is_empty()),
            reason: self.reason.trim().to_string(),
            expires_seconds: self
                .hours
                .trim()
                .parse::<u64>()
                .ok()
                .map(|h| h.saturating_mul(3600)),
        }
    }
}

#[utoipa::path(post, path = "/console/restores", tag = "console", responses((status = 303, description = "Filed: to the request's page"), (status = 400, description = "Refused, with the reason (HTML page)"), (status = 403, description = "No session, not an operator, or CSRF token missing")))]
pub async fn file(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
    Form(f): Form<FileForm>,
) -> Result<Response, ApiErr> {
    match crate::restore::file(&app, &s.user, f.body()).await {
        Ok(r) => Ok(page::see_other(&format!(
            "/console/restores/{}",
            page::url_encode(&r.id)
        ))),
        Err(e) => Ok(page::api_refusal(s.lang, e)),
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct RejectForm {
    #[serde(default)]
    pub reason: String,
}

#[utoipa::path(post, path = "/console/restores/{id}/reject", tag = "console", params(("id" = String, Path, description = "Request id")), responses((status = 303, description = "Rejected: back to the request"), (status = 400, description = "No reason given"), (status = 403, description = "Not this PD's Wali Data, or CSRF token missing")))]
pub async fn reject(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
    Path(id): Path<String>,
    Form(f): Form<RejectForm>,
) -> Result<Response, ApiErr> {
    match crate::restore::reject(&app, &s.user, &id, f.reason).await {
        Ok(r) => Ok(page::see_other(&format!(
            "/console/restores/{}",
            page::url_encode(&r.id)
        ))),
        Err(e) => Ok(page::api_refusal(s.lang, e)),
    }
}

#[utoipa::path(post, path = "/console/restores/{id}/cancel", tag = "console", params(("id" = String, Path, description = "Request id")), responses((status = 303, description = "Cancelled: back to the request"), (status = 403, description = "Not an operator, or CSRF token missing"), (status = 409, description = "Already handed to the agent")))]
pub async fn cancel(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
    Path(id): Path<String>,
) -> Result<Response, ApiErr> {
    match crate::restore::cancel(&app, &s.user, &id).await {
        Ok(r) => Ok(page::see_other(&format!(
            "/console/restores/{}",
            page::url_encode(&r.id)
        ))),
        Err(e) => Ok(page::api_refusal(s.lang, e)),
    }
}
