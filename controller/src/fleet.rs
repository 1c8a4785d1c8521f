//! Fleet status: per PD and agent, the newest backup of each source, RPO
//! status and how far behind each site is. Computed from the state on
//! request (the API and the metrics share it).

use std::collections::BTreeMap;

use cadang_policies::model::PolicySet;
use cadang_proto::api::{AgentStatus, FleetStatus, PdStatus, SiteStatus, SourceStatus};
use chrono::{DateTime, Utc};

use crate::api::{App, CONNECTED_SECONDS};
use crate::engine::RunBook;
use crate::error::Result;
use crate::state::agents::{self, AgentRecord};
use crate::state::jobs::{self, LastRun};
use crate::state::pds;

/// How new a source's copy at a site is.
type NewestAt<'a> = dyn Fn(&(String, String)) -> Option<DateTime<Utc>> + 'a;

pub fn status(app: &App, visible: impl Fn(&str) -> bool) -> Result<FleetStatus> {
    let now = app.clock.now();
    let set = app.policies();
    let book = app
        .runbook
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let (agents, runs, registered) = app.state.read(|txn| {
        Ok((
            agents::all(txn)?,
            jobs::last_runs(txn, None)?,
            pds::all(txn)?,
        ))
    })?;
    let mut codes: Vec<String> = registered.iter().map(|p| p.pd.clone()).collect();
    if let Some(set) = &set {
        codes.extend(set.pds.keys().cloned());
    }
    codes.extend(agents.iter().map(|a| a.pd.clone()));
    codes.sort();
    codes.dedup();
    let pds = codes
        .into_iter()
        .filter(|pd| visible(pd))
        .map(|pd| {
            let is_registered = registered.iter().any(|r| r.pd == pd);
            pd_status(
                app,
                set.as_deref(),
                &book,
                &agents,
                &runs,
                &pd,
                is_registered,
                now,
            )
        })
        .collect();
    Ok(FleetStatus {
        generated: Some(now),
        pds,
    })
}

#[allow(clippy::too_many_arguments)]
fn pd_status(
    app: &App,
    set: Option<&PolicySet>,
    book: &RunBook,
    agents: &[AgentRecord],
    runs: &[LastRun],
    pd: &str,
    registered: bool,
    now: DateTime<Utc>,
) -> PdStatus {
    let rpo = set
        .and_then(|s| s.pds.get(pd))
        .map(|p| p.rpo)
        .unwrap_or(std::time::Duration::from_secs(24 * 3600));
    let rpo_s = rpo.as_secs() as i64;
    let pd_runs: Vec<&LastRun> = runs.iter().filter(|r| r.pd == pd).collect();
    let expected = expected_sources(set, pd);
    let fresh = |t: Option<DateTime<Utc>>| t.is_some_and(|t| (now - t).num_seconds() < rpo_s);
    let onsite_newest = |src: &(String, String)| {
        pd_runs
            .iter()
            .find(|r| r.host == src.0 && r.source == src.1)
            .and_then(|r| r.last_success)
    };
    let replication = book.last_replication.get(pd).copied();
    // The DR copy of a source is as new as its newest backup that ended
    // before the last replication started (an upper bound: see docs).
    let dr_newest = |src: &(String, String)| match (onsite_newest(src), replication) {
        (Some(b), Some(r)) => Some(b.min(r)),
        _ => None,
    };
    let site = |name: &str, newest: &NewestAt| {
        let times: Vec<Option<DateTime<Utc>>> = expected.iter().map(newest).collect();
        let oldest = times
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().min());
        SiteStatus {
            site: name.into(),
            lag_seconds: oldest.map(|t| (now - t).num_seconds()),
            rpo_ok: !times.is_empty() && times.iter().all(|t| fresh(*t)),
            last_replication: if name == "dr" { replication } else { None },
        }
    };
    let sites = vec![site("onsite", &onsite_newest), site("dr", &dr_newest)];
    let agents = agents
        .iter()
        .filter(|a| a.pd == pd)
        .map(|a| {
            let seen = app.last_seen(&a.id).or(a.last_seen);
            let sources = pd_runs
                .iter()
                .filter(|r| r.host == a.host)
                .map(|r| SourceStatus {
                    source: r.source.clone(),
                    last_success: r.last_success,
                    last_outcome: r.last_outcome.clone(),
                    last_duration_seconds: r.duration_seconds,
                    rpo_ok: fresh(r.last_success),
                })
                .collect();
            AgentStatus {
                agent_id: a.id.clone(),
                host: a.host.clone(),
                role: match a.role {
                    cadang_proto::agent::AgentRole::Backup => "backup".into(),
                    cadang_proto::agent::AgentRole::DrillRunner => "drill-runner".into(),
                },
                connected: a.revoked.is_none()
                    && seen.is_some_and(|t| (now - t).num_seconds() < CONNECTED_SECONDS),
                last_seen: seen,
                revoked: a.revoked.is_some(),
                sources,
            }
        })
        .collect();
    PdStatus {
        pd: pd.to_string(),
        registered,
        rpo_seconds: rpo.as_secs(),
        sites,
        agents,
    }
}

/// (host, source) pairs the PD's policy backs up; without a policy, the
/// sources that reported.
pub fn expected_sources(set: Option<&PolicySet>, pd: &str) -> Vec<(String, String)> {
    let mut out: BTreeMap<(String, String), ()> = BTreeMap::new();
    if let Some(p) = set.and_then(|s| s.pds.get(pd)) {
        for h in &p.hosts {
            for s in &h.sources {
                out.insert((h.name.clone(), s.name.clone()), ());
            }
        }
    }
    out.into_keys().collect()
}
