//! Fleet status: per PD and agent, the newest backup of each source, RPO
//! status and how far behind each site is (the API and the metrics share
//! it).
//!
//! Computed from an in-memory [`FleetView`], not by walking the state per
//! call: at 10,000 agents that walk (every agent and every last run
//! decoded, then matched agent by agent) took ~150 ms a call. The view is
//! loaded from the state at start; the state writer keeps the last runs
//! current after each committed report batch; the agents and registered
//! PDs are read again when something says they changed
//! ([`FleetView::agents_changed`]: enrollment, revocation, registration)
//! and every 30 s in the background, so a change made by a path that does
//! not say so shows within half a minute.

pub mod document;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use cadang_policies::model::PolicySet;
use cadang_proto::agent::AgentRole;
use cadang_proto::api::{AgentStatus, FleetStatus, PdStatus, SiteStatus, SourceStatus};
use chrono::{DateTime, Utc};

use crate::api::{App, CONNECTED_SECONDS};
use crate::error::Result;
use crate::state::agents::{self, AgentRecord};
use crate::state::jobs::{self, LastRun};
use crate::state::{pds, State};

/// What fleet status shows of an agent (its keys stay in the state).
#[derive(Debug, Clone)]
struct AgentEntry {
    id: String,
    host: String,
    role: AgentRole,
    last_seen: Option<DateTime<Utc>>,
    revoked: bool,
}

impl From<&AgentRecord> for AgentEntry {
    fn from(a: &AgentRecord) -> Self {
        AgentEntry {
            id: a.id.clone(),
            host: a.host.clone(),
            role: a.role,
            last_seen: a.last_seen,
            revoked: a.revoked.is_some(),
        }
    }
}

/// host → source → newest run.
type HostRuns = BTreeMap<String, BTreeMap<String, LastRun>>;

#[derive(Default)]
struct ViewData {
    /// pd → agent id → entry (the state's order: by id).
    agents: BTreeMap<String, BTreeMap<String, AgentEntry>>,
    registered: BTreeSet<String>,
    /// pd → host → source → newest run.
    runs: BTreeMap<String, HostRuns>,
    /// The [`FleetView::changed`] count the agents were read at.
    loaded_at: u64,
}

/// The fleet as fleet status needs it, in memory.
#[derive(Default)]
pub struct FleetView {
    data: RwLock<ViewData>,
    changed: AtomicU64,
    /// Runs committed since the last status: the state writer only pushes
    /// here, so it never waits for a status being computed.
    incoming: Mutex<Vec<LastRun>>,
    /// The document the API hands out (see [`document`]).
    pub documents: document::DocumentCache,
}

impl FleetView {
    /// Reads agents, registered PDs and every last run from the state.
    pub fn load(state: &State) -> Result<FleetView> {
        let view = FleetView::default();
        let runs = state.read(|txn| jobs::last_runs(txn, None))?;
        view.record_runs(&runs);
        view.absorb();
        view.refresh_agents(state)?;
        Ok(view)
    }

    /// Something changed agents or registered PDs: read them again before
    /// the next status.
    pub fn agents_changed(&self) {
        self.changed.fetch_add(1, Ordering::SeqCst);
    }

    /// Changes with every [`FleetView::agents_changed`] (for caches of
    /// agent records elsewhere).
    pub fn generation(&self) -> u64 {
        self.changed.load(Ordering::SeqCst)
    }

    /// Reads agents and registered PDs from the state again.
    pub fn refresh_agents(&self, state: &State) -> Result<()> {
        // Taken before the read: a change signalled during it makes the
        // next status read once more, never less.
        let at = self.changed.load(Ordering::SeqCst);
        let (all, registered) = state.read(|txn| Ok((agents::all(txn)?, pds::all(txn)?)))?;
        let mut by_pd: BTreeMap<String, BTreeMap<String, AgentEntry>> = BTreeMap::new();
        for a in &all {
            by_pd
                .entry(a.pd.clone())
                .or_default()
                .insert(a.id.clone(), a.into());
        }
        let mut data = self.data.write().unwrap_or_else(|p| p.into_inner());
        data.agents = by_pd;
        data.registered = registered.into_iter().map(|p| p.pd).collect();
        data.loaded_at = at;
        Ok(())
    }

    /// Runs just committed (newest wins, as in the state); they join the
    /// view at the next status.
    pub fn record_runs(&self, runs: &[LastRun]) {
        if runs.is_empty() {
            return;
        }
        let mut incoming = self.incoming.lock().unwrap_or_else(|p| p.into_inner());
        incoming.extend_from_slice(runs);
    }

    /// Moves the runs recorded since into the view.
    fn absorb(&self) {
        let runs = std::mem::take(&mut *self.incoming.lock().unwrap_or_else(|p| p.into_inner()));
        if runs.is_empty() {
            return;
        }
        let mut data = self.data.write().unwrap_or_else(|p| p.into_inner());
        for r in &runs {
            let slot = data
                .runs
                .entry(r.pd.clone())
                .or_default()
                .entry(r.host.clone())
                .or_default()
                .entry(r.source.clone())
                .or_default();
            if slot.last_attempt.is_none() || slot.last_attempt <= r.last_attempt {
                *slot = r.clone();
            }
        }
    }

    /// Reads agents again if something changed them; takes in new runs.
    pub fn ensure_fresh(&self, state: &State) -> Result<()> {
        self.absorb();
        let stale = {
            let data = self.data.read().unwrap_or_else(|p| p.into_inner());
            data.loaded_at != self.changed.load(Ordering::SeqCst)
        };
        if stale {
            self.refresh_agents(state)?;
        }
        Ok(())
    }

    /// Every last run in the view (for metrics).
    pub fn runs(&self) -> Vec<LastRun> {
        self.absorb();
        let data = self.data.read().unwrap_or_else(|p| p.into_inner());
        data.runs
            .values()
            .flat_map(|hosts| hosts.values())
            .flat_map(|sources| sources.values().cloned())
            .collect()
    }
}

/// What one status computation reads besides the view.
struct Context<'a> {
    app: &'a App,
    set: Option<&'a PolicySet>,
    last_replication: &'a BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
}

pub fn status(app: &App, visible: impl Fn(&str) -> bool) -> Result<FleetStatus> {
    app.fleet.ensure_fresh(&app.state)?;
    let now = app.clock.now();
    let set = app.policies();
    // Only the small map: the book also holds a slot per source.
    let last_replication = app
        .runbook
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .last_replication
        .clone();
    let ctx = Context {
        app,
        set: set.as_deref(),
        last_replication: &last_replication,
        now,
    };
    let data = app.fleet.data.read().unwrap_or_else(|p| p.into_inner());
    let mut codes: BTreeSet<&str> = data.registered.iter().map(String::as_str).collect();
    if let Some(set) = &set {
        codes.extend(set.pds.keys().map(String::as_str));
    }
    codes.extend(data.agents.keys().map(String::as_str));
    let empty_agents = BTreeMap::new();
    let empty_runs = HostRuns::new();
    let pds = codes
        .into_iter()
        .filter(|pd| visible(pd))
        .map(|pd| {
            pd_status(
                &ctx,
                pd,
                data.registered.contains(pd),
                data.agents.get(pd).unwrap_or(&empty_agents),
                data.runs.get(pd).unwrap_or(&empty_runs),
            )
        })
        .collect();
    Ok(FleetStatus {
        generated: Some(now),
        pds,
    })
}

fn pd_status(
    ctx: &Context<'_>,
    pd: &str,
    registered: bool,
    agents: &BTreeMap<String, AgentEntry>,
    runs: &HostRuns,
) -> PdStatus {
    let now = ctx.now;
    let rpo = ctx
        .set
        .and_then(|s| s.pds.get(pd))
        .map(|p| p.rpo)
        .unwrap_or(std::time::Duration::from_secs(24 * 3600));
    let rpo_s = rpo.as_secs() as i64;
    let fresh = |t: Option<DateTime<Utc>>| t.is_some_and(|t| (now - t).num_seconds() < rpo_s);
    let expected = expected_sources(ctx.set, pd);
    let onsite: Vec<Option<DateTime<Utc>>> = expected
        .iter()
        .map(|(host, source)| runs.get(host)?.get(source)?.last_success)
        .collect();
    let replication = ctx.last_replication.get(pd).copied();
    // The DR copy of a source is as new as its newest backup that ended
    // before the last replication started (an upper bound: see docs).
    let dr: Vec<Option<DateTime<Utc>>> = onsite
        .iter()
        .map(|b| match (b, replication) {
            (Some(b), Some(r)) => Some((*b).min(r)),
            _ => None,
        })
        .collect();
    let site = |name: &str, times: &[Option<DateTime<Utc>>]| {
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
    let sites = vec![site("onsite", &onsite), site("dr", &dr)];
    let agents = agents
        .values()
        .map(|a| agent_status(ctx.app, a, runs.get(&a.host), &fresh, now))
        .collect();
    PdStatus {
        pd: pd.to_string(),
        registered,
        rpo_seconds: rpo.as_secs(),
        sites,
        agents,
    }
}

fn agent_status(
    app: &App,
    a: &AgentEntry,
    runs: Option<&BTreeMap<String, LastRun>>,
    fresh: &dyn Fn(Option<DateTime<Utc>>) -> bool,
    now: DateTime<Utc>,
) -> AgentStatus {
    let seen = app.last_seen(&a.id).or(a.last_seen);
    let sources = runs
        .into_iter()
        .flat_map(|m| m.values())
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
            AgentRole::Backup => "backup".into(),
            AgentRole::DrillRunner => "drill-runner".into(),
        },
        connected: !a.revoked && seen.is_some_and(|t| (now - t).num_seconds() < CONNECTED_SECONDS),
        last_seen: seen,
        revoked: a.revoked,
        sources,
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
