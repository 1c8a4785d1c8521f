//! The scheduler loop: what is due becomes jobs, in one transaction with
//! the RunBook, then the loop sleeps until the engine's next wake-up (or a
//! reload, a report or backup-now wakes it early).
//!
//! Backups become agent jobs (one per source at a time); replication,
//! verification and retention go to the site-job pool, whose results come
//! back as finished jobs.

use std::collections::HashMap;
use std::sync::Arc;

use cadang_policies::model::{PolicySet, Site};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedReceiver;

use serde_json::json;

use crate::agenda::Agenda;
use crate::api::App;
use crate::audit::{NewEntry, CONTROLLER_ACTOR};
use crate::engine::{
    self, Due, RunBook, SiteJob, SiteJobKind, SiteJobPool, SiteJobResult, SiteOutcome, TaskKey,
};
use crate::error::Result;
use crate::state::agents::{self, AgentRecord};
use crate::state::jobs::{self, JobRecord, JobState};

pub fn site_name(site: Site) -> &'static str {
    match site {
        Site::OnSite => "onsite",
        Site::Dr => "dr",
    }
}

pub fn outcome_name(o: SiteOutcome) -> &'static str {
    match o {
        SiteOutcome::Succeeded => "succeeded",
        SiteOutcome::Problems => "problems",
        SiteOutcome::Failed => "failed",
        SiteOutcome::Cancelled => "cancelled",
        SiteOutcome::TimedOut => "timed-out",
    }
}

/// Runs until `stop` turns true.
pub async fn run(
    app: Arc<App>,
    pool: Arc<SiteJobPool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut agenda = Agenda::new();
    let mut agents_cache = AgentCache::default();
    loop {
        if *stop.borrow() {
            return;
        }
        let now = app.clock.now();
        // restores (issue 8): a request whose time ran out before its agent
        // got it becomes expired (reads and deliveries check it too)
        if let Err(e) = crate::restore::expire_overdue(&app).await {
            tracing::warn!(error = %e.error, "expiring overdue restore requests failed");
        }
        let wake = match app.policies() {
            Some(set) => {
                let book = app
                    .runbook
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                // Building the agenda evaluates every backup's cron: off
                // the async threads, which carry 10,000 connections.
                let s = set.clone();
                let (back, dues) = match tokio::task::spawn_blocking(move || {
                    let dues = agenda.take_due(&s, &book, now);
                    (agenda, dues)
                })
                .await
                {
                    Ok(done) => done,
                    Err(e) => {
                        tracing::error!(error = %e, "planning the due jobs failed");
                        (Agenda::new(), Vec::new())
                    }
                };
                agenda = back;
                match round(&app, &pool, &set, dues, &mut agents_cache, now).await {
                    Ok(()) => {
                        let book = app
                            .runbook
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .clone();
                        agenda.next_wakeup(&book, now)
                    }
                    Err(e) => {
                        // Nothing of the round was committed: it is due
                        // again (once) at the next pass.
                        agenda.invalidate();
                        tracing::error!(error = %e, "dispatch failed; retrying in a minute");
                        now + chrono::Duration::minutes(1)
                    }
                }
            }
            None => now + chrono::Duration::minutes(1),
        };
        tokio::select! {
            _ = app.clock.sleep_until(wake) => {}
            _ = app.wake.notified() => {}
            _ = stop.changed() => {}
        }
    }
}

/// One pass: `dues` (what the agenda says is due now) dispatched and
/// remembered atomically.
pub async fn round(
    app: &Arc<App>,
    pool: &SiteJobPool,
    set: &PolicySet,
    dues: Vec<Due>,
    agents_cache: &mut AgentCache,
    now: DateTime<Utc>,
) -> Result<()> {
    if dues.is_empty() {
        return Ok(());
    }
    let mut book = app
        .runbook
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    book.ensure_started(now);
    let by_host = agents_cache.get(app)?;
    let mut site_jobs = Vec::new();
    let mut backups = Vec::new();
    for due in &dues {
        book.mark_dispatched(due);
        match &due.key {
            TaskKey::Backup { host, source, .. } => match by_host.get(host) {
                Some(agent) => {
                    backups.push((agent.clone(), source.clone(), due.slot, due.not_before))
                }
                None => {
                    tracing::warn!(%host, %source, "backup due but no agent is enrolled for the host")
                }
            },
            // drills (issue 8): grant, runner and DR snapshot are looked up
            // off the dispatcher (it reads the DR store): controller/src/drill/
            TaskKey::Drill { pd } => {
                let (app, set, pd) = (app.clone(), set.clone(), pd.clone());
                tokio::spawn(async move {
                    if let Err(e) = crate::drill::schedule::start(&app, &set, &pd, now).await {
                        tracing::error!(%pd, error = %e, "the drill could not be planned");
                    }
                });
            }
            key => {
                if let Some(job) = site_job(app, set, key, now) {
                    if matches!(key, TaskKey::Replicate { .. }) {
                        book.record_replication_start(key.pd(), now);
                    }
                    site_jobs.push((job, key.clone()));
                }
            }
        }
    }
    let app2 = app.clone();
    let (created, site_records) = app
        .writer
        .write(move |b| {
            let txn = b.txn;
            let mut created = Vec::new();
            for (agent, source, slot, due_at) in &backups {
                let mut job = jobs::backup_job(agent, source, Some(slot.timestamp()), now);
                job.due_at = Some(*due_at);
                if let Some(j) = jobs::create(txn, job)? {
                    created.push(j);
                }
            }
            let mut records = Vec::new();
            for (job, key) in &site_jobs {
                if let Some(rec) = jobs::create(txn, site_record(job, key, now))? {
                    records.push((rec, job.clone()));
                }
            }
            jobs::save_runbook(txn, &book)?;
            let (app, book) = (app2.clone(), book.clone());
            b.after_commit(move || merge_into_memory(&app, book));
            Ok((created, records))
        })
        .await?;
    for j in &created {
        if let Some(agent) = &j.agent_id {
            app.notifier(agent).notify_one();
        }
    }
    submit_site_jobs(app, pool, site_records, now).await
}

/// Backup agents by host, read again when the fleet view says agents
/// changed (enrollment, revocation) or a minute passed: 10,000 records
/// decoded per round (one per jitter second) cost more than the round.
#[derive(Default)]
pub struct AgentCache {
    /// Fleet-view generation, when read, the agents.
    cached: Option<(u64, std::time::Instant, Arc<AgentsByHost>)>,
}

type AgentsByHost = HashMap<String, AgentRecord>;

impl AgentCache {
    fn get(&mut self, app: &App) -> Result<Arc<AgentsByHost>> {
        let generation = app.fleet.generation();
        if let Some((g, at, map)) = &self.cached {
            if *g == generation && at.elapsed() < std::time::Duration::from_secs(60) {
                return Ok(map.clone());
            }
        }
        let map: AgentsByHost = app
            .state
            .read(agents::all)?
            .into_iter()
            .filter(|a| a.revoked.is_none() && a.role == cadang_proto::agent::AgentRole::Backup)
            .map(|a| (a.host.clone(), a))
            .collect();
        let map = Arc::new(map);
        self.cached = Some((generation, std::time::Instant::now(), map.clone()));
        Ok(map)
    }
}

/// The round's book becomes the engine's memory, merged with what report
/// batches recorded meanwhile (every field only grows: newest slot,
/// newest success, newest replication), so neither overwrites the other.
fn merge_into_memory(app: &App, round: RunBook) {
    let mut book = app.runbook.lock().unwrap_or_else(|p| p.into_inner());
    for (key, slot) in round.last_slot {
        let entry = book.last_slot.entry(key).or_insert(slot);
        if *entry < slot {
            *entry = slot;
        }
    }
    for (pd, t) in &round.last_backup_success {
        book.record_backup_success(pd, *t);
    }
    for (pd, t) in &round.last_replication {
        book.record_replication_start(pd, *t);
    }
    if book.first_start.is_none() {
        book.first_start = round.first_start;
    }
}

async fn submit_site_jobs(
    app: &Arc<App>,
    pool: &SiteJobPool,
    records: Vec<(JobRecord, SiteJob)>,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut refused = Vec::new();
    for (rec, mut job) in records {
        job.id = rec.id.clone();
        if let Err(e) = pool.submit(job) {
            refused.push((rec, e.to_string()));
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    app.writer
        .write(move |b| {
            for (rec, why) in &refused {
                let mut rec = rec.clone();
                jobs::finish(b.txn, &mut rec, "skipped", why, now)?;
            }
            Ok(())
        })
        .await
}

fn site_record(job: &SiteJob, key: &TaskKey, now: DateTime<Utc>) -> JobRecord {
    let site = match key {
        TaskKey::Verify { site, .. } | TaskKey::Retention { site, .. } => {
            Some(site_name(*site).to_string())
        }
        _ => None,
    };
    JobRecord {
        id: String::new(),
        kind: job.kind.name().to_string(),
        pd: job.pd.clone(),
        host: None,
        source: None,
        site: site.clone(),
        agent_id: None,
        state: JobState::Queued,
        slot: None,
        due_at: None,
        created: now,
        delivered: None,
        started: None,
        finished: None,
        attempts: 0,
        outcome: None,
        message: String::new(),
        snapshot: None,
        stats: None,
        detail: serde_json::Value::Null,
        active_key: Some(format!(
            "site/{}/{}/{}",
            job.kind.name(),
            job.pd,
            site.unwrap_or_default()
        )),
    }
}

/// The pool job for a site task, with the stores from the config.
fn site_job(app: &App, set: &PolicySet, key: &TaskKey, now: DateTime<Utc>) -> Option<SiteJob> {
    let pd = key.pd();
    let policy = set.pds.get(pd)?;
    let target = |name: &str| {
        let t = app.config.store_target(name);
        if t.is_none() {
            tracing::error!(store = name, %pd, "store not configured in controller.toml; job skipped");
        }
        t
    };
    let store_of = |site: Site| match site {
        Site::OnSite => target(&policy.onsite_store),
        Site::Dr => target(&policy.dr_store),
    };
    let kind = match key {
        TaskKey::Replicate { .. } => SiteJobKind::Replicate {
            from: target(&policy.onsite_store)?,
            to: target(&policy.dr_store)?,
            bandwidth_limit: policy.replication.bandwidth_limit,
            window_end: engine::window_end(set, pd, now),
            lock_days: policy.object_lock_days,
        },
        TaskKey::Verify { site, .. } => SiteJobKind::Verify {
            store: store_of(*site)?,
            site: *site,
            read_share_percent: policy.verification.read_share_percent,
        },
        TaskKey::Retention { site, .. } => SiteJobKind::Retention {
            store: store_of(*site)?,
            site: *site,
            keep: policy.retention,
        },
        _ => return None,
    };
    Some(SiteJob {
        id: String::new(),
        pd: pd.to_string(),
        kind,
    })
}

/// Records site-job results as they arrive.
pub async fn collect_results(app: Arc<App>, mut results: UnboundedReceiver<SiteJobResult>) {
    while let Some(r) = results.recv().await {
        if let Err(e) = record_result(&app, r).await {
            tracing::error!(error = %e, "recording a site-job result failed");
        }
    }
}

/// Finishes the site job's record with its audit entry, in one of the
/// writer's batches.
pub async fn record_result(app: &Arc<App>, r: SiteJobResult) -> Result<()> {
    let outcome = outcome_name(r.outcome);
    app.metrics.job_finished(r.job.kind.name(), outcome);
    let app2 = app.clone();
    app.writer
        .write(move |b| {
            let txn = b.txn;
            let rec = {
                let table = txn.open_table(crate::state::JOBS)?;
                crate::state::get_json::<JobRecord>(&table, &r.job.id)?
            };
            // The work was done whether or not its record is still there.
            app2.record_in(txn, site_job_entry(&r))?;
            let Some(mut rec) = rec else { return Ok(()) };
            rec.started = Some(r.started);
            rec.attempts = r.attempt;
            rec.detail = r.detail.clone();
            jobs::finish(txn, &mut rec, outcome, &r.message, r.finished)
        })
        .await
}

/// `replication.run`, `verify.run`, `retention.run` (and `repair.run`):
/// the controller's own work on a PD's store, with how it went.
pub fn site_job_entry(r: &SiteJobResult) -> NewEntry {
    // The store the job wrote to or checked (replication: the DR store).
    let stores = r.job.kind.stores();
    let store = stores.first().map(|s| s.name.as_str()).unwrap_or_default();
    let from = stores.get(1).map(|s| s.name.clone());
    let action = match r.job.kind.name() {
        "replicate" => "replication.run".to_string(),
        kind => format!("{kind}.run"),
    };
    let outcome = match r.outcome {
        SiteOutcome::Succeeded => "ok",
        other => outcome_name(other),
    };
    NewEntry::new(
        CONTROLLER_ACTOR,
        &action,
        &format!("{}/{store}", r.job.pd),
        outcome,
    )
    .detail(json!({
        "job": r.job.id,
        "from": from,
        "attempt": r.attempt,
        "message": r.message,
        "result": r.detail,
    }))
}

/// At start: site jobs the previous process had running are gone with it.
pub fn close_orphaned_site_jobs(app: &App, now: DateTime<Utc>) -> Result<()> {
    let orphans: Vec<JobRecord> = app
        .state
        .read(jobs::unfinished)?
        .into_iter()
        .filter(|j| j.agent_id.is_none())
        .collect();
    if orphans.is_empty() {
        return Ok(());
    }
    app.state.write(|txn| {
        for mut j in orphans {
            jobs::finish(
                txn,
                &mut j,
                "interrupted",
                "the controller stopped while this job ran; it runs again at its next slot",
                now,
            )?;
        }
        Ok(())
    })
}
