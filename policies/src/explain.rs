//! `policy explain`: the next runs of every job of one PD, in the regency's
//! local time with its abbreviation (WIB, WITA, WIT) and in UTC, so an
//! operator sees before deploying that `0 2 * * *` in Makassar is 18:00 UTC
//! the day before.

use std::fmt;

use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::duration::{format_duration, format_window};
use crate::model::{DrillPick, PdPolicy, PolicySet, SourceKind, Window};
use crate::schedule::Schedule;

/// The abbreviation Indonesians use for a zone: WIB (Asia/Jakarta and
/// Asia/Pontianak), WITA (Asia/Makassar), WIT (Asia/Jayapura).
pub fn zone_abbreviation(zone: &str) -> &'static str {
    match zone {
        "Asia/Jakarta" | "Asia/Pontianak" => "WIB",
        "Asia/Makassar" => "WITA",
        "Asia/Jayapura" => "WIT",
        _ => "UTC",
    }
}

/// `2026-12-04 02:00 WITA`.
pub fn format_local(t: &DateTime<Tz>) -> String {
    format!(
        "{} {}",
        t.format("%Y-%m-%d %H:%M"),
        zone_abbreviation(t.timezone().name())
    )
}

/// `2026-12-03 18:00 UTC`.
pub fn format_utc(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The next runs of every job of one PD.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub pd: String,
    pub name: String,
    pub group: String,
    pub zone: String,
    pub abbreviation: String,
    pub jobs: Vec<JobRuns>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Backup,
    Replication,
    Verification,
    Retention,
    Drill,
}

/// One job and when it next runs.
#[derive(Debug, Clone, Serialize)]
pub struct JobRuns {
    pub kind: JobKind,
    /// `siak-db/siak` for a backup; a short description otherwise.
    pub name: String,
    /// The cron expression, or the replication windows.
    pub schedule: String,
    /// What else governs the job (retention rules, share read, RTO ...).
    pub detail: String,
    pub runs: Vec<Run>,
}

/// A run; replication windows also have an end.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub start: Moment,
    pub end: Option<Moment>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Moment {
    pub at: DateTime<Utc>,
    /// `2026-12-04 02:00 WITA`.
    pub local: String,
    /// `2026-12-03 18:00 UTC`.
    pub utc: String,
}

impl Moment {
    fn of(t: DateTime<Tz>) -> Moment {
        let at = t.with_timezone(&Utc);
        Moment {
            at,
            local: format_local(&t),
            utc: format_utc(&at),
        }
    }
}

/// The next `count` runs after `now` of every job of PD `code`, or `None`
/// when the set has no such PD.
pub fn explain(
    set: &PolicySet,
    code: &str,
    now: DateTime<Utc>,
    count: usize,
) -> Option<Explanation> {
    let pd = set.pds.get(code)?;
    let zone = set.regency.zone.clone();
    let mut jobs = backups(pd, now, count);
    jobs.push(replication(pd, &zone, now, count));
    jobs.push(cron_job(
        JobKind::Verification,
        format!("check {} and {}", pd.onsite_store, pd.dr_store),
        &pd.verification.schedule,
        format!(
            "structure of both sites, re-hash {}% of packs",
            pd.verification.read_share_percent
        ),
        now,
        count,
    ));
    jobs.push(cron_job(
        JobKind::Retention,
        format!("forget + prune at {} and {}", pd.onsite_store, pd.dr_store),
        &pd.retention_schedule,
        retention_detail(pd),
        now,
        count,
    ));
    if let Some(d) = &pd.drill {
        let pick = match d.pick {
            DrillPick::Latest => "latest snapshot",
            DrillPick::RandomWithinRetention => "random snapshot within retention",
        };
        let runner = d
            .runner
            .as_deref()
            .map_or(String::new(), |r| format!(" on {r}"));
        let detail = format!("restore the {pick}{runner}, RTO {}", format_duration(d.rto));
        jobs.push(cron_job(
            JobKind::Drill,
            "restore drill".into(),
            &d.schedule,
            detail,
            now,
            count,
        ));
    }
    Some(Explanation {
        pd: pd.code.clone(),
        name: pd.name.clone(),
        group: pd.group.key().to_string(),
        abbreviation: zone_abbreviation(&zone).to_string(),
        zone,
        jobs,
    })
}

fn backups(pd: &PdPolicy, now: DateTime<Utc>, count: usize) -> Vec<JobRuns> {
    let mut jobs = Vec::new();
    for host in &pd.hosts {
        for s in &host.sources {
            let detail = match &s.kind {
                SourceKind::Paths(paths) if s.excludes.is_empty() => paths.join(", "),
                SourceKind::Paths(paths) => {
                    format!("{} (excluding {})", paths.join(", "), s.excludes.join(", "))
                }
                SourceKind::Command {
                    stream_name,
                    command,
                } => format!("`{command}` as {stream_name}"),
            };
            let name = format!("{}/{}", host.name, s.name);
            jobs.push(cron_job(
                JobKind::Backup,
                name,
                &s.schedule,
                detail,
                now,
                count,
            ));
        }
    }
    jobs
}

fn cron_job(
    kind: JobKind,
    name: String,
    schedule: &Schedule,
    detail: String,
    now: DateTime<Utc>,
    count: usize,
) -> JobRuns {
    JobRuns {
        kind,
        name,
        schedule: schedule.expr().to_string(),
        detail,
        runs: schedule
            .next_runs(now, count)
            .into_iter()
            .map(|t| Run {
                start: Moment::of(t),
                end: None,
            })
            .collect(),
    }
}

fn retention_detail(pd: &PdPolicy) -> String {
    let lock = if pd.object_lock_days > 0 {
        format!(
            "; DR copy under Object Lock for {} days",
            pd.object_lock_days
        )
    } else {
        String::new()
    };
    format!("keep {}{lock}", pd.retention)
}

fn replication(pd: &PdPolicy, zone: &str, now: DateTime<Utc>, count: usize) -> JobRuns {
    let r = &pd.replication;
    let rate = r
        .bandwidth_limit
        .map_or("no bandwidth limit".to_string(), |b| {
            format!("at most {}/s", format_rate(b))
        });
    let delay = if r.delay.is_zero() {
        String::new()
    } else {
        format!(", {} after a backup", format_duration(r.delay))
    };
    let (schedule, runs) = if r.windows.is_empty() {
        ("any time".to_string(), Vec::new())
    } else {
        let windows: Vec<String> = r.windows.iter().map(format_window).collect();
        (
            windows.join(", "),
            window_runs(&r.windows, zone, now, count),
        )
    };
    JobRuns {
        kind: JobKind::Replication,
        name: format!("{} -> {}", pd.onsite_store, pd.dr_store),
        schedule,
        detail: format!("after backups, inside the windows{delay}; {rate}"),
        runs,
    }
}

/// The next `count` windows that end after `now` (one open now first).
fn window_runs(windows: &[Window], zone: &str, now: DateTime<Utc>, count: usize) -> Vec<Run> {
    let Ok(tz) = zone.parse::<Tz>() else {
        return Vec::new();
    };
    let today = now.with_timezone(&tz).date_naive();
    let mut runs: Vec<(DateTime<Tz>, DateTime<Tz>)> = Vec::new();
    // Yesterday's window may still be open; `count` days ahead suffice
    // because every window opens once a day.
    for day in -1..=(count as i64) {
        let date = today + ChronoDuration::days(day);
        for w in windows {
            let Some(start_time) = NaiveTime::from_hms_opt(
                u32::from(w.start_minute / 60),
                u32::from(w.start_minute % 60),
                0,
            ) else {
                continue;
            };
            let Some(start) = tz
                .from_local_datetime(&date.and_time(start_time))
                .earliest()
            else {
                continue;
            };
            let length = (i64::from(w.end_minute) - i64::from(w.start_minute)).rem_euclid(24 * 60);
            let end = start + ChronoDuration::minutes(if length == 0 { 24 * 60 } else { length });
            if end > now {
                runs.push((start, end));
            }
        }
    }
    runs.sort();
    runs.into_iter()
        .take(count)
        .map(|(s, e)| Run {
            start: Moment::of(s),
            end: Some(Moment::of(e)),
        })
        .collect()
}

/// `20 MiB`, `512 KiB`, `1.5 GiB`.
fn format_rate(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    format!("{} {}", text.trim_end_matches(".0"), UNITS[unit])
}

impl fmt::Display for Explanation {
    /// The table for people.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {} ({})", self.pd, self.name, self.group)?;
        writeln!(
            f,
            "times in {} ({}), UTC in brackets",
            self.abbreviation, self.zone
        )?;
        for job in &self.jobs {
            let kind = serde_kind(job.kind);
            writeln!(f)?;
            writeln!(f, "{kind} {}  [{}]", job.name, job.schedule)?;
            writeln!(f, "  {}", job.detail)?;
            if job.runs.is_empty() {
                writeln!(f, "  (no fixed times: runs whenever it is due)")?;
            }
            for run in &job.runs {
                match &run.end {
                    None => writeln!(f, "  {}  ({})", run.start.local, run.start.utc)?,
                    Some(end) => writeln!(
                        f,
                        "  {} - {}  ({} - {})",
                        run.start.local, end.local, run.start.utc, end.utc
                    )?,
                }
            }
        }
        Ok(())
    }
}

fn serde_kind(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Backup => "backup",
        JobKind::Replication => "replication",
        JobKind::Verification => "verification",
        JobKind::Retention => "retention",
        JobKind::Drill => "drill",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviations() {
        assert_eq!(zone_abbreviation("Asia/Jakarta"), "WIB");
        assert_eq!(zone_abbreviation("Asia/Pontianak"), "WIB");
        assert_eq!(zone_abbreviation("Asia/Makassar"), "WITA");
        assert_eq!(zone_abbreviation("Asia/Jayapura"), "WIT");
    }

    #[test]
    fn rates() {
        assert_eq!(format_rate(20 * 1_048_576), "20 MiB");
        assert_eq!(format_rate(1536), "1.5 KiB");
        assert_eq!(format_rate(12_500_000), "11.9 MiB");
    }

    #[test]
    fn windows_open_now_come_first() {
        let w = Window {
            start_minute: 22 * 60,
            end_minute: 5 * 60,
        };
        // 2026-12-03 23:00 WITA = 15:00 UTC: tonight's window is open.
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 15, 0, 0).unwrap();
        let runs = window_runs(&[w], "Asia/Makassar", now, 2);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].start.local, "2026-12-03 22:00 WITA");
        assert_eq!(runs[0].end.as_ref().unwrap().local, "2026-12-04 05:00 WITA");
        assert_eq!(runs[0].start.utc, "2026-12-03 14:00 UTC");
        assert_eq!(runs[1].start.local, "2026-12-04 22:00 WITA");
    }
}
