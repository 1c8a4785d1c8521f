//! The early warning in the running controller: each accepted backup report
//! with signals becomes an observation of its source, is judged against
//! the source's history, and a flag puts a retention hold on the source,
//! writes an audit entry and says so in the job's message — all in the
//! transaction that stores the report, so a report is never stored without
//! its verdict (or the other way round).

use cadang_proto::agent::{JobReport, Outcome, ReportKind};
use cadang_proto::signals::BackupSignals;
use chrono::{DateTime, Offset, TimeZone, Utc};
use redb::{ReadableTable, WriteTransaction};
use serde_json::json;

use super::{rules, Observation, Thresholds, Verdict};
use crate::api::App;
use crate::audit::{NewEntry, CONTROLLER_ACTOR};
use crate::error::Result;
use crate::state::agents::AgentRecord;
use crate::state::anomalies::{
    self, source_key, FlagRecord, HoldRecord, SourceHistory, SourceStatus, HISTORY_KEEP,
};
use crate::state::{get_json, jobs, JOBS, REPORTS};

/// What one judged backup came to, for the caller's logs.
#[derive(Debug, Clone)]
pub struct Judged {
    pub pd: String,
    pub host: String,
    pub source: String,
    pub snapshot: String,
    pub flagged: bool,
}

/// Judges every newly applied backup report of `agent` that carries
/// signals, inside the caller's write transaction (the one the reports are
/// stored in). Reports without signals (older agents, failed backups) are
/// left alone.
pub fn on_reports(
    app: &App,
    txn: &WriteTransaction,
    agent: &AgentRecord,
    reports: &[JobReport],
) -> Result<Vec<Judged>> {
    let mut out = Vec::new();
    for r in reports {
        let Some((source, obs)) = observation_of(r) else {
            continue;
        };
        let t = thresholds_for(app, &agent.pd, &agent.host, &source, r.started);
        if let Some(j) = on_backup(app, txn, agent, &source, obs, &t, &r.report_id)? {
            out.push(j);
        }
    }
    Ok(out)
}

/// The observation a report carries: a backup that wrote a snapshot and
/// measured signals.
fn observation_of(r: &JobReport) -> Option<(String, Observation)> {
    let ReportKind::Backup {
        source,
        snapshot: Some(snapshot),
        signals: Some(signals),
        ..
    } = &r.kind
    else {
        return None;
    };
    if !matches!(r.outcome, Outcome::Succeeded | Outcome::Partial) {
        return None;
    }
    let signals = BackupSignals::from_json(signals)?;
    Some((
        source.clone(),
        Observation {
            snapshot: snapshot.clone(),
            time: r.started,
            signals,
        },
    ))
}

/// The thresholds for one source: the policy's `[anomaly]` settings (PD
/// and source) over the built-in ones, weekdays in the regency's zone.
pub fn thresholds_for(
    app: &App,
    pd: &str,
    host: &str,
    source: &str,
    at: DateTime<Utc>,
) -> Thresholds {
    let mut t = Thresholds::default();
    if let Some(set) = app.policies() {
        if let Ok(tz) = set.regency.zone.parse::<chrono_tz::Tz>() {
            t.utc_offset_minutes = tz
                .offset_from_utc_datetime(&at.naive_utc())
                .fix()
                .local_minus_utc()
                / 60;
        }
        if let Some(p) = set.pds.get(pd) {
            super::policy::apply(&mut t, p, host, source);
        }
    }
    t
}

/// Stores one observation of a source, judges it, and acts on a flag.
/// `None` when the snapshot was already judged (a resent report).
pub fn on_backup(
    app: &App,
    txn: &WriteTransaction,
    agent: &AgentRecord,
    source: &str,
    obs: Observation,
    t: &Thresholds,
    report_id: &str,
) -> Result<Option<Judged>> {
    let key = source_key(&agent.pd, &agent.host, source);
    let mut h = anomalies::history(txn, &key)?;
    if h.observations.iter().any(|o| o.snapshot == obs.snapshot) {
        return Ok(None);
    }
    let verdict = judge(&mut h, obs.clone(), t);
    anomalies::put_history(txn, &key, &h)?;
    if verdict.flagged {
        let hold = hold_on(app, txn, agent, source, &h, &obs, &verdict)?;
        audit_flag(app, txn, &key, &obs, &verdict, &hold)?;
        mark_job(txn, agent, report_id, &verdict)?;
    }
    let hold = anomalies::hold(txn, &key)?.filter(HoldRecord::active);
    anomalies::put_status(txn, &status_of(agent, source, &h, hold.as_ref()))?;
    Ok(Some(Judged {
        pd: agent.pd.clone(),
        host: agent.host.clone(),
        source: source.to_string(),
        snapshot: obs.snapshot,
        flagged: verdict.flagged,
    }))
}

/// Puts `obs` into the history in time order (a spooled report may arrive
/// after a newer one), judges it against the backups before it, and drops
/// the oldest beyond [`HISTORY_KEEP`].
fn judge(h: &mut SourceHistory, obs: Observation, t: &Thresholds) -> Verdict {
    h.verdicts.resize(h.observations.len(), Verdict::default());
    let at = h.observations.partition_point(|o| o.time <= obs.time);
    let verdict = rules::verdict(&h.observations[..at], &h.verdicts[..at], &obs, t);
    h.observations.insert(at, obs);
    h.verdicts.insert(at, verdict.clone());
    let keep = HISTORY_KEEP.max(t.history + t.window_nights + 8);
    let drop = h.observations.len().saturating_sub(keep);
    h.observations.drain(..drop);
    h.verdicts.drain(..drop);
    verdict
}

/// The hold a flag puts on (or extends): snapshots before the damage are
/// kept; with a hold already on, its start only moves earlier.
fn hold_on(
    app: &App,
    txn: &WriteTransaction,
    agent: &AgentRecord,
    source: &str,
    h: &SourceHistory,
    obs: &Observation,
    verdict: &Verdict,
) -> Result<HoldRecord> {
    let key = source_key(&agent.pd, &agent.host, source);
    let onset = verdict
        .onset
        .as_ref()
        .and_then(|s| h.observations.iter().find(|o| &o.snapshot == s))
        .map(|o| o.time);
    let since = onset.map_or(obs.time, |o| o.min(obs.time));
    let mut hold = match anomalies::hold(txn, &key)?.filter(HoldRecord::active) {
        Some(mut held) => {
            held.since = held.since.min(since);
            held
        }
        None => HoldRecord {
            pd: agent.pd.clone(),
            host: agent.host.clone(),
            source: source.to_string(),
            created: app.clock.now(),
            since,
            flagged_snapshots: Vec::new(),
            last_clean: None,
            summary_en: verdict.summary(false),
            summary_id: verdict.summary(true),
            operator_clear: None,
            custodian_clear: None,
            cleared: None,
        },
    };
    if !hold.flagged_snapshots.contains(&obs.snapshot) {
        hold.flagged_snapshots.push(obs.snapshot.clone());
    }
    hold.last_clean = last_clean_before(h, hold.since);
    anomalies::put_hold(txn, &hold)?;
    Ok(hold)
}

/// The newest unflagged snapshot taken before `since`.
fn last_clean_before(h: &SourceHistory, since: DateTime<Utc>) -> Option<String> {
    h.observations
        .iter()
        .zip(&h.verdicts)
        .rev()
        .find(|(o, v)| o.time < since && !v.flagged)
        .map(|(o, _)| o.snapshot.clone())
}

fn audit_flag(
    app: &App,
    txn: &WriteTransaction,
    subject: &str,
    obs: &Observation,
    verdict: &Verdict,
    hold: &HoldRecord,
) -> Result<()> {
    // The audit format has no floats: reasons go in as words and counts.
    let reasons: Vec<_> = verdict
        .reasons
        .iter()
        .map(|r| json!({ "kind": r.kind, "files": r.files, "english": r.english, "indonesian": r.indonesian }))
        .collect();
    let entry = NewEntry::new(CONTROLLER_ACTOR, "anomaly.flag", subject, "flagged").detail(json!({
        "snapshot": obs.snapshot,
        "backup_started": obs.time,
        "reasons": reasons,
        "onset": verdict.onset,
        "hold_since": hold.since,
        "last_clean": hold.last_clean,
    }));
    app.record_in(txn, entry)?;
    Ok(())
}

/// "flagged: …" in the message of the backup's job, so `cadang jobs` shows it.
fn mark_job(
    txn: &WriteTransaction,
    agent: &AgentRecord,
    report_id: &str,
    verdict: &Verdict,
) -> Result<()> {
    let report_key = format!("{}/{report_id}", agent.id);
    let job_id = txn
        .open_table(REPORTS)?
        .get(report_key.as_str())?
        .map(|v| String::from_utf8_lossy(v.value()).into_owned());
    let Some(job_id) = job_id.filter(|id| !id.is_empty()) else {
        return Ok(());
    };
    let job: Option<jobs::JobRecord> = get_json(&txn.open_table(JOBS)?, &job_id)?;
    let Some(mut job) = job else { return Ok(()) };
    job.message = flagged_message(&job.message, verdict);
    jobs::put(txn, &job)
}

pub fn flagged_message(before: &str, verdict: &Verdict) -> String {
    let flag = format!(
        "flagged: {} | {}",
        verdict.summary(false),
        verdict.summary(true)
    );
    if before.is_empty() {
        flag
    } else {
        format!("{before}; {flag}")
    }
}

fn status_of(
    agent: &AgentRecord,
    source: &str,
    h: &SourceHistory,
    hold: Option<&HoldRecord>,
) -> SourceStatus {
    let newest = h.observations.last().zip(h.verdicts.last());
    let last_clean = match hold {
        Some(held) => held.last_clean.clone(),
        None => h
            .observations
            .iter()
            .zip(&h.verdicts)
            .rev()
            .find(|(_, v)| !v.flagged)
            .map(|(o, _)| o.snapshot.clone()),
    };
    SourceStatus {
        pd: agent.pd.clone(),
        host: agent.host.clone(),
        source: source.to_string(),
        last_snapshot: newest.map(|(o, _)| o.snapshot.clone()),
        last_time: newest.map(|(o, _)| o.time),
        last_flagged: newest.is_some_and(|(_, v)| v.flagged),
        last_clean,
        flags: h
            .observations
            .iter()
            .zip(&h.verdicts)
            .filter(|(_, v)| v.flagged)
            .map(|(o, v)| FlagRecord {
                snapshot: o.snapshot.clone(),
                time: o.time,
                reasons: v.reasons.clone(),
                onset: v.onset.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn obs(day: i64, snapshot: &str, attack: bool) -> Observation {
        let t0: DateTime<Utc> = "2026-11-01T19:00:00Z".parse().unwrap();
        let mut s = BackupSignals {
            has_parent: day > 0,
            files_before: 200,
            files_total: 200,
            files_changed: 4,
            ..Default::default()
        };
        if attack {
            s.files_changed = 180;
            s.entropy_checked = 180;
            s.entropy_transitions = 170;
            s.extension_changed = 180;
            s.known_extension_files = 180;
            s.ransom_notes = 4;
            s.ransom_note_dirs = 4;
        }
        Observation {
            snapshot: snapshot.into(),
            time: t0 + Duration::days(day),
            signals: s.finish(),
        }
    }

    #[test]
    fn judging_keeps_time_order_bounds_the_history_and_names_the_last_clean_snapshot() {
        let t = Thresholds::default();
        let mut h = SourceHistory::default();
        for d in 0..5 {
            assert!(!judge(&mut h, obs(d, &format!("s{d}"), false), &t).flagged);
        }
        let v = judge(&mut h, obs(5, "s5", true), &t);
        assert!(v.flagged, "{v:?}");
        assert!(v.summary(false).starts_with("ransomware suspected"));
        // A late (spooled) report lands in its place and is judged against
        // the backups before it only.
        let late = judge(&mut h, obs(4, "s4b", false), &t);
        assert!(!late.flagged);
        let order: Vec<&str> = h.observations.iter().map(|o| o.snapshot.as_str()).collect();
        assert_eq!(order, ["s0", "s1", "s2", "s3", "s4", "s4b", "s5"]);
        assert_eq!(h.verdicts.len(), h.observations.len());
        let since = h.observations[6].time;
        assert_eq!(last_clean_before(&h, since).as_deref(), Some("s4b"));
        // The next ordinary day is judged without the flagged night.
        assert!(!judge(&mut h, obs(6, "s6", false), &t).flagged);

        for d in 7..(HISTORY_KEEP as i64 + 20) {
            judge(&mut h, obs(d, &format!("s{d}"), false), &t);
        }
        assert_eq!(h.observations.len(), HISTORY_KEEP);
        assert_eq!(h.verdicts.len(), HISTORY_KEEP);
    }

    #[test]
    fn the_job_message_says_flagged_with_the_reasons_in_both_languages() {
        let t = Thresholds::default();
        let mut h = SourceHistory::default();
        judge(&mut h, obs(0, "s0", false), &t);
        judge(&mut h, obs(1, "s1", false), &t);
        let v = judge(&mut h, obs(2, "s2", true), &t);
        let m = flagged_message("backed up 200 files", &v);
        assert!(
            m.starts_with("backed up 200 files; flagged: ransomware suspected: "),
            "{m}"
        );
        assert!(m.contains("dugaan serangan ransomware"), "{m}");
        assert!(flagged_message("", &v).starts_with("flagged: "));
    }
}
