//! What falls due, and when to look again: pure functions of the policy set,
//! what the controller remembers ([`RunBook`]) and the current instant. No
//! I/O, no clock of its own, so every schedule is testable at any instant.
//!
//! Rules:
//! - A cron task is due for the newest slot `s` with `last_slot < s <= now`
//!   and `s >= first_start`: runs missed while the controller was down
//!   collapse into one run of the newest missed slot.
//! - Each task starts a stable per-task jitter after its slot (a hash of the
//!   key, so 40 hosts scheduled at 22:00 do not hit the store at once, and a
//!   restart does not move anyone); jitter stays below half the interval to
//!   the next slot, so a frequent schedule is never starved by its jitter.
//! - Replication of a PD follows its backups: due when a backup succeeded
//!   after the last replication, `delay` has passed since, and the regency's
//!   local time is inside one of the PD's windows (none = any time).

use cadang_policies::model::{PdPolicy, PolicySet, Site, Window};
use cadang_policies::schedule::Schedule;
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

pub use super::book::{site_serde, Due, RunBook, TaskKey};

/// Longest jitter of a backup (agents of one PD spread over five minutes).
pub const BACKUP_JITTER: Duration = Duration::minutes(5);
/// Longest jitter of verification, retention and drills (site jobs).
pub const SITE_JOB_JITTER: Duration = Duration::minutes(10);
/// `next_wakeup` never sleeps longer than this, so a policy reload or a
/// backup report is acted on within a minute at worst.
pub const MAX_SLEEP: Duration = Duration::seconds(60);

/// One schedulable thing of the policy set: a cron task, or a PD's replication.
enum Task<'a> {
    Cron(TaskKey, &'a Schedule),
    Replication(&'a PdPolicy),
}

fn tasks(policies: &PolicySet) -> Vec<Task<'_>> {
    let mut out = Vec::new();
    for pd in policies.pds.values() {
        let code = &pd.code;
        for host in &pd.hosts {
            for source in &host.sources {
                let key = TaskKey::Backup {
                    pd: code.clone(),
                    host: host.name.clone(),
                    source: source.name.clone(),
                };
                out.push(Task::Cron(key, &source.schedule));
            }
        }
        for site in [Site::OnSite, Site::Dr] {
            let verify = TaskKey::Verify {
                pd: code.clone(),
                site,
            };
            out.push(Task::Cron(verify, &pd.verification.schedule));
            let retention = TaskKey::Retention {
                pd: code.clone(),
                site,
            };
            out.push(Task::Cron(retention, &pd.retention_schedule));
        }
        if let Some(drill) = &pd.drill {
            out.push(Task::Cron(
                TaskKey::Drill { pd: code.clone() },
                &drill.schedule,
            ));
        }
        out.push(Task::Replication(pd));
    }
    out
}

/// Every task due at `now`: for cron tasks the newest slot <= now that is newer than
/// `book.last_slot[key]` (a run missed while the controller was down runs ONCE, not once per miss);
/// replication of a PD when a backup succeeded after the last replication (+ policy delay) and now is
/// inside one of its windows; verification and retention of both sites on their schedules.
pub fn due(policies: &PolicySet, book: &RunBook, now: DateTime<Utc>) -> Vec<Due> {
    let zone = regency_zone(policies);
    tasks(policies)
        .into_iter()
        .filter_map(|task| match task {
            Task::Cron(key, schedule) => cron_candidate(key, schedule, book, now),
            Task::Replication(pd) => replication_candidate(pd, book, now, zone),
        })
        .filter(|d| d.not_before <= now)
        .collect()
}

/// The earliest instant after `now` at which `due` could return something new.
pub fn next_wakeup(policies: &PolicySet, book: &RunBook, now: DateTime<Utc>) -> DateTime<Utc> {
    let zone = regency_zone(policies);
    let cap = now + MAX_SLEEP;
    tasks(policies)
        .into_iter()
        .filter_map(|task| match task {
            Task::Cron(key, schedule) => cron_wakeup(&key, schedule, book, now),
            Task::Replication(pd) => replication_wakeup(pd, book, now, zone),
        })
        .filter(|t| *t > now)
        .fold(cap, |earliest, t| earliest.min(t))
}

/// The instant the current window of `pd` closes, if `now` is inside one
/// (for `SiteJobKind::Replicate::window_end`); `None` when the PD has no
/// windows or `now` is outside them.
pub fn window_end(policies: &PolicySet, pd: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let policy = policies.pds.get(pd)?;
    let zone = regency_zone(policies);
    policy
        .replication
        .windows
        .iter()
        .filter(|w| w.contains(local_minute(now, zone)))
        .filter_map(|w| next_local_minute(w.end_minute, now, zone))
        .max()
}

/// The regency's zone; the loader has validated it, UTC is only a fallback
/// for a hand-built policy set with a typo.
fn regency_zone(policies: &PolicySet) -> Tz {
    policies.regency.zone.parse().unwrap_or(Tz::UTC)
}

// ----- cron tasks -----

/// The slot a cron task would be due for, ignoring whether its jitter passed.
fn cron_candidate(
    key: TaskKey,
    schedule: &Schedule,
    book: &RunBook,
    now: DateTime<Utc>,
) -> Option<Due> {
    let after = lower_bound(&key, book, now);
    let slot = newest_slot(schedule, after, now)?;
    let not_before = slot + jitter(&key, schedule, slot);
    Some(Due {
        key,
        slot,
        not_before,
    })
}

fn cron_wakeup(
    key: &TaskKey,
    schedule: &Schedule,
    book: &RunBook,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    // A slot already past whose jitter has not elapsed yet...
    let pending = cron_candidate(key.clone(), schedule, book, now)
        .map(|d| d.not_before)
        .filter(|t| *t > now);
    // ...or the next slot to come.
    let upcoming = schedule
        .next_run(now)
        .map(|s| s.with_timezone(&Utc))
        .map(|s| s + jitter(key, schedule, s));
    [pending, upcoming].into_iter().flatten().min()
}

/// Slots at or before this instant never count (exclusive bound).
fn lower_bound(key: &TaskKey, book: &RunBook, now: DateTime<Utc>) -> DateTime<Utc> {
    // Just before first_start: a slot exactly at the first start still runs.
    let started = book.first_start.unwrap_or(now) - Duration::nanoseconds(1);
    match book.last_slot.get(key) {
        Some(last) => (*last).max(started),
        None => started,
    }
}

/// The newest slot `s` of `schedule` with `after < s <= now`.
///
/// Searches backwards from `now` in doubling spans so a task last run years
/// ago (or every minute) costs a few cron evaluations, not one per slot.
fn newest_slot(
    schedule: &Schedule,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if after >= now {
        return None;
    }
    let mut span = Duration::hours(1);
    loop {
        let from = (now - span).max(after);
        if let Some(slot) = newest_in(schedule, from, now) {
            return Some(slot);
        }
        if from == after {
            return None;
        }
        span = span * 2;
    }
}

/// The newest slot in `(from, now]`, walking forward from `from`.
fn newest_in(
    schedule: &Schedule,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    const BATCH: usize = 64;
    let mut cursor = from;
    let mut newest = None;
    loop {
        let runs = schedule.next_runs(cursor, BATCH);
        let count = runs.len();
        for run in runs {
            let run = run.with_timezone(&Utc);
            if run > now {
                return newest;
            }
            newest = Some(run);
            cursor = run;
        }
        if count < BATCH {
            return newest;
        }
    }
}

/// A stable offset for `key`: FNV-1a of its label (not `DefaultHasher`,
/// whose output may change between Rust releases and so move every task
/// after an upgrade), below the task's maximum and below half the interval
/// from `slot` to the next slot.
pub fn jitter(key: &TaskKey, schedule: &Schedule, slot: DateTime<Utc>) -> Duration {
    let mut limit = max_jitter(key);
    if let Some(next) = schedule.next_run(slot) {
        limit = limit.min((next.with_timezone(&Utc) - slot) / 2);
    }
    let limit_secs = limit.num_seconds();
    if limit_secs <= 0 {
        return Duration::zero();
    }
    let hash = fnv1a(key.label().as_bytes());
    Duration::seconds((hash % limit_secs as u64) as i64)
}

/// Backups spread over a few minutes, site jobs over more.
fn max_jitter(key: &TaskKey) -> Duration {
    match key {
        TaskKey::Backup { .. } => BACKUP_JITTER,
        // Replication already waits for its delay and its window.
        TaskKey::Replicate { .. } => Duration::zero(),
        _ => SITE_JOB_JITTER,
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

// ----- replication -----

/// The backup a replication of `pd` would follow, and when it may start.
fn pending_replication(pd: &PdPolicy, book: &RunBook) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let backup = *book.last_backup_success.get(&pd.code)?;
    let key = TaskKey::Replicate {
        pd: pd.code.clone(),
    };
    let replicated_since = book
        .last_replication
        .get(&pd.code)
        .is_some_and(|r| *r >= backup);
    let dispatched = book.last_slot.get(&key).is_some_and(|s| *s >= backup);
    if replicated_since || dispatched {
        return None;
    }
    let delay = Duration::from_std(pd.replication.delay).unwrap_or(Duration::zero());
    Some((backup, backup + delay))
}

fn replication_candidate(
    pd: &PdPolicy,
    book: &RunBook,
    now: DateTime<Utc>,
    zone: Tz,
) -> Option<Due> {
    let (backup, ready) = pending_replication(pd, book)?;
    if now < ready || !in_window(&pd.replication.windows, now, zone) {
        return None;
    }
    Some(Due {
        key: TaskKey::Replicate {
            pd: pd.code.clone(),
        },
        slot: backup,
        not_before: ready,
    })
}

fn replication_wakeup(
    pd: &PdPolicy,
    book: &RunBook,
    now: DateTime<Utc>,
    zone: Tz,
) -> Option<DateTime<Utc>> {
    let (_, ready) = pending_replication(pd, book)?;
    let from = ready.max(now);
    if in_window(&pd.replication.windows, from, zone) {
        return Some(from);
    }
    pd.replication
        .windows
        .iter()
        .filter_map(|w| next_local_minute(w.start_minute, from, zone))
        .min()
}

fn in_window(windows: &[Window], t: DateTime<Utc>, zone: Tz) -> bool {
    windows.is_empty() || windows.iter().any(|w| w.contains(local_minute(t, zone)))
}

fn local_minute(t: DateTime<Utc>, zone: Tz) -> u16 {
    let local = t.with_timezone(&zone);
    (local.hour() * 60 + local.minute()) as u16
}

/// The first instant after `t` at which the local time in `zone` reads
/// `minute` minutes past midnight.
fn next_local_minute(minute: u16, t: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
    let time = NaiveTime::from_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)?;
    let today = t.with_timezone(&zone).date_naive();
    (0..=2)
        .filter_map(|days| today.checked_add_signed(Duration::days(days)))
        .filter_map(|day| zone.from_local_datetime(&day.and_time(time)).earliest())
        .map(|local| local.with_timezone(&Utc))
        .find(|instant| *instant > t)
}
