//! One PD: its sites, agents and sources, snapshot history at both sites,
//! recent jobs, and the policy in force with its next runs (`policies`
//! `explain`). A custodian of another PD gets 403 here, not an empty page.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;

use super::i18n::{self, Catalogue};
use super::jobs::{job_row, JobRow};
use super::page::{self, Frame};
use super::session::ConsoleSession;
use crate::api::{ApiErr, App};
use crate::state::jobs::{self, JobFilter};
use crate::state::pds;

/// Snapshots listed (newest first); older ones are counted.
pub const MAX_SNAPSHOTS: usize = 150;
pub const MAX_JOBS: usize = 50;
pub const NEXT_RUNS: usize = 3;

pub struct SiteRow {
    pub name: String,
    pub lag: String,
    pub rpo_ok: bool,
}

pub struct SourceRow {
    pub host: String,
    pub source: String,
    pub last_success: String,
    pub outcome: String,
    pub rpo_ok: bool,
    pub connected: bool,
}

pub struct SnapshotRow {
    pub id: String,
    pub host: String,
    pub source: String,
    pub time: String,
    pub files: u64,
    pub size: String,
    pub at_dr: bool,
}

pub struct PlanRow {
    pub kind: String,
    pub name: String,
    pub schedule: String,
    pub detail: String,
    pub next: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/pd.html")]
struct PdPage<'a> {
    t: &'a Catalogue,
    f: Frame,
    pd: String,
    alerts: Vec<String>,
    sites: Vec<SiteRow>,
    sources: Vec<SourceRow>,
    snapshots: Vec<SnapshotRow>,
    more_snapshots: usize,
    jobs: Vec<JobRow>,
    plan: Vec<PlanRow>,
    zone: String,
}

#[utoipa::path(get, path = "/console/pds/{pd}", tag = "console", params(("pd" = String, Path, description = "PD code")), responses((status = 200, description = "HTML page", content_type = "text/html", body = String), (status = 303, description = "Not signed in: to the login page"), (status = 403, description = "Role or PD not allowed (HTML page)")))]
pub async fn page(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
    Path(pd): Path<String>,
) -> Result<Response, ApiErr> {
    if !s.user.covers_pd(&pd) {
        return Ok(page::refusal(
            StatusCode::FORBIDDEN,
            s.lang,
            "error.not_your_pd",
        ));
    }
    let t = i18n::catalogue(s.lang);
    let status = crate::fleet::status(&app, |p| p == pd)?;
    let Some(st) = status.pds.into_iter().next() else {
        return Ok(page::refusal(
            StatusCode::NOT_FOUND,
            s.lang,
            "error.no_such_pd",
        ));
    };
    let signals = super::fleet::Signals::read(&app)?;
    let (alerts, _) = super::fleet::alerts(t, &st, &signals);
    let filter = JobFilter {
        pd: Some(pd.clone()),
        limit: MAX_JOBS,
        ..Default::default()
    };
    let (snaps, job_list) = app.state.read(|txn| {
        Ok((
            pds::snapshots(txn, &pd)?,
            jobs::list(txn, &filter, |_| true)?,
        ))
    })?;
    let replicated = st
        .sites
        .iter()
        .find(|x| x.site == "dr")
        .and_then(|x| x.last_replication);
    let mut snaps = snaps;
    snaps.sort_by_key(|b| std::cmp::Reverse(b.time));
    let more_snapshots = snaps.len().saturating_sub(MAX_SNAPSHOTS);
    let snapshots = snaps
        .into_iter()
        .take(MAX_SNAPSHOTS)
        .map(|x| SnapshotRow {
            at_dr: replicated.is_some_and(|r| x.time <= r),
            time: page::when(&app, Some(x.time)),
            size: bytes(x.bytes_read),
            id: x.id.chars().take(12).collect(),
            host: x.host,
            source: x.source,
            files: x.files,
        })
        .collect();
    let sites = st
        .sites
        .iter()
        .map(|x| SiteRow {
            name: t.m(&format!("site.{}", x.site)),
            lag: page::span(t, x.lag_seconds),
            rpo_ok: x.rpo_ok,
        })
        .collect();
    let app_ref = &app;
    let sources = st
        .agents
        .iter()
        .flat_map(|a| {
            a.sources.iter().map(move |src| SourceRow {
                host: a.host.clone(),
                source: src.source.clone(),
                last_success: page::when(app_ref, src.last_success),
                outcome: src.last_outcome.clone().unwrap_or_default(),
                rpo_ok: src.rpo_ok,
                connected: a.connected,
            })
        })
        .collect();
    let (plan, zone) = plan(&app, t, &pd);
    let p = PdPage {
        t,
        f: Frame::new(
            &s,
            &format!("/console/pds/{}", page::url_encode(&pd)),
            "pd.title",
        ),
        pd,
        alerts,
        sites,
        sources,
        snapshots,
        more_snapshots,
        jobs: job_list.iter().map(|j| job_row(&app, t, j)).collect(),
        plan,
        zone,
    };
    Ok(page::render(&s, &p))
}

/// The policy in force and the next runs of each of its jobs.
fn plan(app: &App, t: &Catalogue, pd: &str) -> (Vec<PlanRow>, String) {
    let Some(set) = app.policies() else {
        return (Vec::new(), String::new());
    };
    let Some(ex) = cadang_policies::explain::explain(&set, pd, app.clock.now(), NEXT_RUNS) else {
        return (Vec::new(), String::new());
    };
    let rows = ex
        .jobs
        .iter()
        .map(|j| PlanRow {
            kind: t.m(&format!(
                "plan.{}",
                serde_json::to_value(j.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )),
            name: j.name.clone(),
            schedule: j.schedule.clone(),
            detail: j.detail.clone(),
            next: j
                .runs
                .iter()
                .map(|r| match &r.end {
                    Some(e) => format!("{} – {}", r.start.local, e.local),
                    None => r.start.local.clone(),
                })
                .collect(),
        })
        .collect();
    (rows, format!("{} ({})", ex.zone, ex.abbreviation))
}

/// `1.2 GB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
