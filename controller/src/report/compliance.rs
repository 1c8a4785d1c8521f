//! The compliance summary from the controller's real state: per PD over a
//! period, backups done vs scheduled (the policies' schedules and what the
//! catalogue and the jobs show), RPO met (a daily check), drills passed and
//! restores requested / approved / rejected (from the audit log).
//!
//! Stages: [`Inputs::read`] (policies, catalogue, jobs, audit entries) →
//! [`figures`] per PD (pure, so tests give their own inputs) → a
//! [`ComplianceSummary`] the caller signs.

use std::collections::{BTreeMap, HashMap};

use cadang_policies::model::{PdPolicy, PolicySet};
use chrono::{DateTime, Duration, Utc};

use super::summary::{ComplianceSummary, PdFigures};
use crate::audit::AuditEntry;
use crate::state::jobs::JobRecord;
use crate::state::pds::SnapshotEntry;

/// At most this many slots of one source are counted in a period (an
/// every-minute schedule over a year would be 525,600).
pub const MAX_SLOTS_PER_SOURCE: usize = 100_000;

/// What the figures are computed from.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    /// Catalogue snapshots of the PD (on-site repository), any order.
    pub snapshots: Vec<SnapshotEntry>,
    /// Backup jobs of the PD.
    pub jobs: Vec<JobRecord>,
    /// Audit entries in the period (any PD: filtered here).
    pub entries: Vec<AuditEntry>,
    /// The controller's first start: slots before it were never scheduled.
    pub first_start: Option<DateTime<Utc>>,
    /// Now: slots and checks after it are not counted yet.
    pub now: DateTime<Utc>,
}

/// One PD's figures over `[from, to]`.
pub fn figures(
    policy: &PdPolicy,
    inputs: &Inputs,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> PdFigures {
    let mut f = PdFigures {
        pd: policy.code.clone(),
        ..PdFigures::default()
    };
    let start = inputs.first_start.map_or(from, |s| s.max(from));
    let end = to.min(inputs.now);
    for host in &policy.hosts {
        for source in &host.sources {
            let done_at = evidence(inputs, &host.name, &source.name);
            let (scheduled, done) = slots_done(&source.schedule, &done_at, start, end, inputs.now);
            f.backups_scheduled += scheduled;
            f.backups_done += done;
            let (met, checks) = rpo_checks(&done_at, policy.rpo, from, end);
            f.rpo_met += met;
            f.rpo_checks += checks;
        }
    }
    count_entries(&mut f, &policy.code, &inputs.entries, from, to);
    f
}

/// When backups of a source completed: catalogue snapshots, and backup
/// jobs that finished well (an agent that worked alone reports snapshots
/// the catalogue learns later). Sorted.
fn evidence(inputs: &Inputs, host: &str, source: &str) -> Vec<DateTime<Utc>> {
    let snaps = inputs
        .snapshots
        .iter()
        .filter(|s| s.host == host && s.source == source)
        .map(|s| s.time);
    let jobs = inputs
        .jobs
        .iter()
        .filter(|j| j.kind == "backup")
        .filter(|j| j.host.as_deref() == Some(host) && j.source.as_deref() == Some(source))
        .filter(|j| matches!(j.outcome.as_deref(), Some("succeeded" | "partial")))
        .filter_map(|j| j.finished);
    let mut all: Vec<DateTime<Utc>> = snaps.chain(jobs).collect();
    all.sort();
    all
}

/// Slots in `(start, end]`, and how many have a backup between the slot
/// and the next one. A slot whose window is still open and has no backup
/// yet is not counted at all (it may still be running).
fn slots_done(
    schedule: &cadang_policies::schedule::Schedule,
    done_at: &[DateTime<Utc>],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (u64, u64) {
    let (mut scheduled, mut done) = (0, 0);
    let mut after = start - Duration::nanoseconds(1);
    let mut counted = 0;
    'outer: while counted < MAX_SLOTS_PER_SOURCE {
        let batch = schedule.next_runs(after, 1000);
        if batch.is_empty() {
            break;
        }
        for (i, slot) in batch.iter().enumerate() {
            let slot = slot.with_timezone(&Utc);
            if slot > end || counted >= MAX_SLOTS_PER_SOURCE {
                break 'outer;
            }
            let next = match batch.get(i + 1) {
                Some(n) => n.with_timezone(&Utc),
                None => schedule
                    .next_run(slot)
                    .map_or(DateTime::<Utc>::MAX_UTC, |n| n.with_timezone(&Utc)),
            };
            let hit = done_at.iter().any(|t| *t >= slot && *t < next);
            if hit || next <= now {
                scheduled += 1;
                done += u64::from(hit);
            }
            counted += 1;
            after = slot;
        }
    }
    (scheduled, done)
}

/// One check per day of the period (at each day's end, and at `end` for
/// a last partial day): was the newest backup then younger than the RPO?
fn rpo_checks(
    done_at: &[DateTime<Utc>],
    rpo: std::time::Duration,
    from: DateTime<Utc>,
    end: DateTime<Utc>,
) -> (u64, u64) {
    let rpo = Duration::from_std(rpo).unwrap_or(Duration::MAX);
    let (mut met, mut checks) = (0, 0);
    let mut t = from + Duration::days(1);
    let mut instants = Vec::new();
    while t <= end {
        instants.push(t);
        t += Duration::days(1);
    }
    if instants.last() != Some(&end) && end > from {
        instants.push(end);
    }
    for at in instants {
        checks += 1;
        let newest = done_at.iter().rev().find(|d| **d <= at);
        if newest.is_some_and(|d| at - *d <= rpo) {
            met += 1;
        }
    }
    (met, checks)
}

/// Drills and restores of `pd` from the audit log (entries in `[from, to]`).
fn count_entries(
    f: &mut PdFigures,
    pd: &str,
    entries: &[AuditEntry],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    // A restore request's later entries may name only its id: learn
    // each request's PD from the entry that filed it.
    let mut request_pd: HashMap<&str, String> = HashMap::new();
    for e in entries.iter().filter(|e| e.action == "restore.request") {
        if let Some(p) = crate::api::audit::entry_pd(e) {
            request_pd.insert(e.subject.as_str(), p);
        }
    }
    for e in entries.iter().filter(|e| e.time >= from && e.time <= to) {
        let epd = e
            .detail
            .get("pd")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| request_pd.get(e.subject.as_str()).cloned())
            .or_else(|| crate::api::audit::entry_pd(e));
        if epd.as_deref() != Some(pd) || e.outcome == "refused" {
            continue;
        }
        match e.action.as_str() {
            "restore.request" => f.restores_requested += 1,
            "restore.approve" => f.restores_approved += 1,
            "restore.reject" => f.restores_rejected += 1,
            "drill.report" => {
                f.drills_run += 1;
                let passed = matches!(e.outcome.as_str(), "passed" | "ok" | "pass")
                    || e.detail.get("passed").and_then(|v| v.as_bool()) == Some(true);
                f.drills_passed += u64::from(passed);
            }
            _ => {}
        }
    }
}

/// The summary of `pds` (every PD of the set when empty) over the period.
pub fn summary(
    set: &PolicySet,
    pds: &[String],
    inputs: &BTreeMap<String, Inputs>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    generated: DateTime<Utc>,
) -> ComplianceSummary {
    let scope = match pds {
        [one] => one.clone(),
        _ => "regency".to_string(),
    };
    let figures = set
        .pds
        .values()
        .filter(|p| pds.is_empty() || pds.contains(&p.code))
        .map(|p| {
            figures(
                p,
                inputs.get(&p.code).unwrap_or(&Inputs::default()),
                from,
                to,
            )
        })
        .collect();
    ComplianceSummary {
        summary_id: format!(
            "cs-{scope}-{}-{}-{}",
            from.format("%Y%m%d"),
            to.format("%Y%m%d"),
            generated.format("%Y%m%dT%H%M%SZ")
        ),
        regency: set.regency.name.clone(),
        period_start: from,
        period_end: to,
        pds: figures,
        generated,
    }
}
