//! The fleet overview: one row per PD the person may see, worst first —
//! last backup, RPO status, replication lag, the last drill and its RTO,
//! alerts. The same figures as `GET /api/v1/fleet` (`crate::fleet`).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use cadang_proto::api::PdStatus;

use super::i18n::{self, Catalogue};
use super::page::{self, Frame};
use super::session::ConsoleSession;
use crate::api::{ApiErr, App};
use crate::state::anomalies;

pub struct Row {
    pub pd: String,
    pub href: String,
    pub last_backup: String,
    pub rpo_ok: bool,
    pub onsite_lag: String,
    pub dr_lag: String,
    pub last_replication: String,
    pub drill: String,
    pub alerts: Vec<String>,
    /// Higher is worse; rows are sorted by it.
    pub severity: u32,
}

#[derive(Template)]
#[template(path = "console/fleet.html")]
struct FleetPage<'a> {
    t: &'a Catalogue,
    f: Frame,
    rows: Vec<Row>,
    generated: String,
}

#[utoipa::path(get, path = "/console", tag = "console", responses((status = 303, description = "To the fleet overview")))]
pub async fn home() -> Response {
    page::see_other("/console/fleet")
}

#[utoipa::path(get, path = "/console/fleet", tag = "console", responses((status = 200, description = "HTML page", content_type = "text/html", body = String), (status = 303, description = "Not signed in: to the login page"), (status = 403, description = "Role or PD not allowed (HTML page)")))]
pub async fn page(
    State(app): State<Arc<App>>,
    Extension(s): Extension<ConsoleSession>,
) -> Result<Response, ApiErr> {
    let t = i18n::catalogue(s.lang);
    let user = s.user.clone();
    let status = crate::fleet::status(&app, |pd| user.covers_pd(pd))?;
    let signals = Signals::read(&app)?;
    let mut rows: Vec<Row> = status
        .pds
        .iter()
        .map(|p| row(&app, t, p, &signals))
        .collect();
    rows.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.pd.cmp(&b.pd)));
    let p = FleetPage {
        t,
        f: Frame::new(&s, "/console/fleet", "fleet.title"),
        rows,
        generated: page::when(&app, status.generated),
    };
    Ok(page::render(&s, &p))
}

/// Early-warning signals per PD (ransomware suspected, retention holds).
pub struct Signals {
    flagged: Vec<String>,
    held: Vec<String>,
}

impl Signals {
    pub fn read(app: &App) -> Result<Signals, ApiErr> {
        let (statuses, holds) = app.state.read(|txn| {
            Ok((
                anomalies::statuses(txn, None)?,
                anomalies::holds(txn, None)?,
            ))
        })?;
        Ok(Signals {
            flagged: statuses
                .into_iter()
                .filter(|s| s.last_flagged)
                .map(|s| s.pd)
                .collect(),
            held: holds
                .into_iter()
                .filter(|h| h.active())
                .map(|h| h.pd)
                .collect(),
        })
    }
}

/// The alerts of one PD, worst first, with the severity they add up to.
pub fn alerts(t: &Catalogue, p: &PdStatus, signals: &Signals) -> (Vec<String>, u32) {
    let mut out: Vec<(u32, String)> = Vec::new();
    if signals.flagged.contains(&p.pd) {
        out.push((100, t.m("alert.ransomware")));
    }
    if signals.held.contains(&p.pd) {
        out.push((40, t.m("alert.hold")));
    }
    for site in &p.sites {
        if !site.rpo_ok {
            let key = if site.site == "dr" {
                "alert.rpo_dr"
            } else {
                "alert.rpo_onsite"
            };
            out.push((30, t.m(key)));
        }
    }
    let down = p
        .agents
        .iter()
        .filter(|a| !a.revoked && !a.connected)
        .count();
    if down > 0 {
        out.push((
            20,
            t.f("alert.agents_down", &[("count", &down.to_string())]),
        ));
    }
    if !p.registered {
        out.push((10, t.m("alert.unregistered")));
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.0));
    let severity = out.iter().map(|(w, _)| w).sum();
    (out.into_iter().map(|(_, m)| m).collect(), severity)
}

fn row(app: &App, t: &Catalogue, p: &PdStatus, signals: &Signals) -> Row {
    let last_backup = p
        .agents
        .iter()
        .flat_map(|a| a.sources.iter())
        .filter_map(|s| s.last_success)
        .max();
    let site = |name: &str| p.sites.iter().find(|s| s.site == name);
    let (alerts, severity) = alerts(t, p, signals);
    Row {
        pd: p.pd.clone(),
        href: format!("/console/pds/{}", page::url_encode(&p.pd)),
        last_backup: page::when(app, last_backup),
        rpo_ok: p.sites.iter().all(|s| s.rpo_ok),
        onsite_lag: page::span(t, site("onsite").and_then(|s| s.lag_seconds)),
        dr_lag: page::span(t, site("dr").and_then(|s| s.lag_seconds)),
        last_replication: page::when(app, site("dr").and_then(|s| s.last_replication)),
        drill: super::reports::last_drill_text(app, t, &p.pd),
        alerts,
        severity,
    }
}
