//! Jobs, newest first, with filters (failed, PD, kind), and one job's page
//! with its log (the message the agent or the site job reported).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;

use super::i18n::{self, Catalogue};
use super::page::{self, Frame};
use super::session::ConsoleSession;
use crate::api::{ApiErr, App};
use crate::state::jobs::{self, JobFilter, JobRecord};

/// Rows per listing: enough for a shift, small enough for a slow link.
pub const PAGE_ROWS: usize = 100;
pub const KINDS: [&str; 7] = [
    "backup",
    "replicate",
    "verify",
    "retention",
    "repair",
    "restore",
    "drill",
];

#[derive(Debug, Deserialize, Default)]
pub struct JobQuery {
    #[serde(default)]
    pub failed: Option<String>,
    #[serde(default)]
    pub pd: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

pub struct JobRow {
    pub id: String,
    pub href: String,
    pub kind: String,
    pub pd: String,
    pub target: String,
    pub state: String,
    pub failed: bool,
    pub created: String,
    pub finished: String,
    pub message: String,
}

pub fn job_row(app: &App, t: &Catalogue, j: &JobRecord) -> JobRow {
    let target = match (&j.host, &j.source, &j.site) {
        (Some(h), Some(s), _) => format!("{h}/{s}"),
        (Some(h), None, _) => h.clone(),
        (_, _, Some(site)) => t.m_or(&format!("site.{site}"), site),
        _ => String::new(),
    };
    let state = j
        .outcome
        .clone()
        .unwrap_or_else(|| j.state.name().to_string());
    JobRow {
        href: format!("/console/jobs/{}", page::url_encode(&j.id)),
        id: j.id.clone(),
        kind: t.m_or(&format!("kind.{}", j.kind), &j.kind),
        pd: j.pd.clone(),
        target,
        state: t.m_or(&format!("jobstate.{state}"), &state),
        failed: j.failed(),
        created: page::when(app, Some(j.created)),
        finished: page::when(app, j.finished),
        message: j.message.chars().take(160).collect(),
    }
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "console/jobs.html")]
struct JobsPage<'a> {
    t: &'a Catalogue,
    f: Frame,
    jobs: Vec<JobRow>,
    failed: bool,
    pds: Vec<Choice>,
    kinds: Vec<Choice>,
    full: bool,
}

#[utoipa::path(get, path = "/console/jobs", tag = "console", responses((status = 200, description = "HTML page", content_type = "text/html", body = String), (status = 303, description = "Not signed in: to the login page"), (status = 403, description = "Role or PD not allowed (HTML page)")))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
    Query(q): Query<JobQuery>,
) -> Result<Response, ApiErr> {
    let t = i18n::catalogue(s.lang);
    let pd = q.pd.filter(|p| !p.is_empty());
    let kind = q.kind.filter(|k| KINDS.contains(&k.as_str()));
    if let Some(p) = &pd {
        if !s.user.covers_pd(p) {
            return Ok(page::refusal(
                StatusCode::FORBIDDEN,
                s.lang,
                "error.not_your_pd",
            ));
        }
    }
    let failed = q
        .failed
        .is_some_and(|v| v == "1" || v == "on" || v == "true");
    let filter = JobFilter {
        failed,
        pd: pd.clone(),
        kind: kind.clone(),
        limit: PAGE_ROWS,
    };
    let user = s.user.clone();
    let list = app
        .state
        .read(|txn| jobs::list(txn, &filter, |p| user.covers_pd(p)))?;
    let visible_pds: Vec<String> = crate::fleet::status(&app, |p| user.covers_pd(p))?
        .pds
        .into_iter()
        .map(|p| p.pd)
        .collect();
    let p = JobsPage {
        t,
        f: Frame::new(&s, "/console/jobs", "jobs.title"),
        full: list.len() >= PAGE_ROWS,
        jobs: list.iter().map(|j| job_row(&app, t, j)).collect(),
        failed,
        pds: visible_pds
            .into_iter()
            .map(|p| Choice {
                selected: pd.as_deref() == Some(p.as_str()),
                label: p.clone(),
                value: p,
            })
            .collect(),
        kinds: KINDS
            .iter()
            .map(|k| Choice {
                value: k.to_string(),
                label: t.m(&format!("kind.{k}")),
                selected: kind.as_deref() == Some(*k),
            })
            .collect(),
    };
    Ok(page::render(&s, &p))
}

#[derive(Template)]
#[template(path = "console/job.html")]
struct JobPage<'a> {
    t: &'a Catalogue,
    f: Frame,
    job: JobRow,
    fields: Vec<(String, String)>,
    log: String,
}

#[utoipa::path(get, path = "/console/jobs/{id}", tag = "console", params(("id" = String, Path, description = "Job id")), responses((status = 200, description = "HTML page", content_type = "text/html", body = String), (status = 303, description = "Not signed in: to the login page"), (status = 403, description = "Role or PD not allowed (HTML page)")))]
pub async fn detail(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
    Path(id): Path<String>,
) -> Result<Response, ApiErr> {
    let t = i18n::catalogue(s.lang);
    let Some(j) = app.state.read(|txn| jobs::get(txn, &id))? else {
        return Ok(page::refusal(
            StatusCode::NOT_FOUND,
            s.lang,
            "error.no_such_job",
        ));
    };
    if !s.user.covers_pd(&j.pd) {
        return Ok(page::refusal(
            StatusCode::FORBIDDEN,
            s.lang,
            "error.not_your_pd",
        ));
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let fields = vec![
        (t.m("term.pd"), j.pd.clone()),
        (t.m("job.host"), opt(&j.host)),
        (t.m("job.source"), opt(&j.source)),
        (t.m("job.site"), opt(&j.site)),
        (t.m("job.agent"), opt(&j.agent_id)),
        (t.m("job.created"), page::when(&app, Some(j.created))),
        (t.m("job.due"), page::when(&app, j.due_at)),
        (t.m("job.delivered"), page::when(&app, j.delivered)),
        (t.m("job.started"), page::when(&app, j.started)),
        (t.m("job.finished"), page::when(&app, j.finished)),
        (t.m("job.attempts"), j.attempts.to_string()),
        (t.m("term.snapshot"), opt(&j.snapshot)),
    ];
    let p = JobPage {
        t,
        f: Frame::new(
            &s,
            &format!("/console/jobs/{}", page::url_encode(&id)),
            "job.title",
        ),
        job: job_row(&app, t, &j),
        fields,
        log: j.message.clone(),
    };
    Ok(page::render(&s, &p))
}
