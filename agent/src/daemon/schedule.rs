//! Evaluating the cached policy's schedules on the agent, so backups go on
//! while the controller is unreachable.
//!
//! Each source gets a stable start offset below the policy's jitter, derived
//! from host and source name, so a regency's servers do not all start at
//! the same second and the controller computes the same offset if it wants.
//! Only the latest slot of a source that has fallen due is considered: a
//! schedule missed several times while the agent was down runs once.

use std::collections::HashMap;

use cadang_policies::schedule::Schedule;
use cadang_proto::agent::AgentPolicy;
use chrono::{DateTime, Duration, Utc};

/// How far back the first evaluation looks for a slot that fell due.
const LOOKBACK_HOURS: i64 = 25;

/// A scheduled run: `slot` is the scheduled time (Unix seconds, UTC);
/// `due` adds the source's jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSlot {
    pub source: String,
    pub slot: i64,
    pub due: DateTime<Utc>,
}

/// The stable per-source offset in `0..=jitter_seconds`.
pub fn jitter_offset(host: &str, source: &str, jitter_seconds: u32) -> i64 {
    if jitter_seconds == 0 {
        return 0;
    }
    let h = blake3::hash(format!("cadang jitter\0{host}\0{source}").as_bytes());
    let n = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
    (n % (u64::from(jitter_seconds) + 1)) as i64
}

/// Half the time between the schedule's next two runs after `now`.
fn half_gap_seconds(schedule: &Schedule, now: DateTime<Utc>) -> u32 {
    match schedule.next_runs(now, 2).as_slice() {
        [a, b] => u32::try_from((*b - *a).num_seconds() / 2).unwrap_or(u32::MAX),
        _ => u32::MAX,
    }
}

/// Remembers, per source, the latest slot found, so each tick looks only
/// at the runs since then.
#[derive(Default)]
pub struct SlotFinder {
    cursors: HashMap<String, DateTime<Utc>>,
    latest: HashMap<String, DateTime<Utc>>,
    warned: HashMap<String, String>,
}

impl SlotFinder {
    /// The latest due slot of each source at `now`, none earlier than
    /// `since`. Sources whose schedule does not parse are skipped (with one
    /// warning per distinct expression).
    pub fn due(
        &mut self,
        policy: &AgentPolicy,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<DueSlot> {
        let mut out = Vec::new();
        for src in &policy.sources {
            let schedule = match Schedule::parse(&src.schedule, &policy.zone) {
                Ok(s) => s,
                Err(e) => {
                    if self.warned.get(&src.name) != Some(&src.schedule) {
                        tracing::warn!(source = %src.name, schedule = %src.schedule, error = %e, "the cached policy has a schedule this agent cannot read; that source is not backed up unattended");
                        self.warned.insert(src.name.clone(), src.schedule.clone());
                    }
                    continue;
                }
            };
            // As on the controller, jitter stays below half the gap between
            // runs, so a frequent schedule is not pushed past its next slot.
            let offset = Duration::seconds(jitter_offset(
                &policy.host,
                &src.name,
                policy.jitter_seconds.min(half_gap_seconds(&schedule, now)),
            ));
            // A slot is due once now >= slot + offset.
            let horizon = now - offset;
            let key = format!("{}\0{}\0{}", src.name, src.schedule, policy.zone);
            let floor = since.max(now - Duration::hours(LOOKBACK_HOURS)) - Duration::seconds(1);
            let mut cursor = self.cursors.get(&key).copied().unwrap_or(floor).max(floor);
            let mut latest = self.latest.get(&key).copied().filter(|l| *l >= floor);
            while let Some(next) = schedule.next_run(cursor) {
                let next = next.with_timezone(&Utc);
                if next > horizon {
                    break;
                }
                latest = Some(next);
                cursor = next;
            }
            self.cursors.insert(key.clone(), cursor);
            if let Some(l) = latest {
                self.latest.insert(key, l);
                out.push(DueSlot {
                    source: src.name.clone(),
                    slot: l.timestamp(),
                    due: l + offset,
                });
            }
        }
        out
    }
}

/// Whether the agent runs a due slot itself: the controller has not been
/// heard from since the slot fell due, and the grace period has passed
/// (the controller, when up, dispatches the slot within it).
pub fn run_unattended(
    due: &DueSlot,
    last_contact: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    grace: Duration,
) -> bool {
    now >= due.due + grace && last_contact.is_none_or(|t| t < due.due)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadang_proto::agent::{SourceKind, SourceSpec};

    fn policy(schedule: &str, zone: &str, jitter: u32) -> AgentPolicy {
        AgentPolicy {
            version: "1".into(),
            pd: "DINKES".into(),
            host: "srv-dinkes".into(),
            zone: zone.into(),
            sources: vec![SourceSpec {
                name: "files".into(),
                schedule: schedule.into(),
                kind: SourceKind::Paths {
                    paths: vec!["/srv".into()],
                },
                excludes: vec![],
                tags: vec![],
            }],
            jitter_seconds: jitter,
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_0200_wita_slot_falls_due_at_1800_utc_the_day_before() {
        let p = policy("0 2 * * *", "Asia/Makassar", 0);
        let mut f = SlotFinder::default();
        let since = t("2026-12-02T00:00:00Z");
        assert!(f.due(&p, since, t("2026-12-02T17:59:59Z")).is_empty());
        let due = f.due(&p, since, t("2026-12-02T18:00:00Z"));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].slot, t("2026-12-02T18:00:00Z").timestamp());
        // Still the same slot an hour later; the next one a day later.
        let later = f.due(&p, since, t("2026-12-02T19:00:00Z"));
        assert_eq!(later[0].slot, due[0].slot);
        let next = f.due(&p, since, t("2026-12-03T18:00:01Z"));
        assert_eq!(next[0].slot, t("2026-12-03T18:00:00Z").timestamp());
    }

    #[test]
    fn missed_runs_collapse_into_the_latest_and_nothing_before_enrollment() {
        let p = policy("*/10 * * * *", "Asia/Makassar", 0);
        let mut f = SlotFinder::default();
        let since = t("2026-12-02T10:05:00Z");
        let due = f.due(&p, since, t("2026-12-02T11:07:00Z"));
        assert_eq!(due.len(), 1, "one run, not one per miss");
        assert_eq!(due[0].slot, t("2026-12-02T11:00:00Z").timestamp());
        let mut fresh = SlotFinder::default();
        assert!(fresh
            .due(&p, t("2026-12-02T11:01:00Z"), t("2026-12-02T11:07:00Z"))
            .is_empty());
    }

    #[test]
    fn jitter_is_stable_bounded_and_delays_the_slot() {
        let a = jitter_offset("srv-a", "files", 600);
        assert_eq!(a, jitter_offset("srv-a", "files", 600));
        assert!((0..=600).contains(&a));
        let offsets: std::collections::HashSet<i64> = (0..50)
            .map(|i| jitter_offset(&format!("srv-{i}"), "files", 600))
            .collect();
        assert!(offsets.len() > 40);
        let p = policy("0 2 * * *", "Asia/Makassar", 600);
        let off = jitter_offset("srv-dinkes", "files", 600);
        let mut f = SlotFinder::default();
        let slot = t("2026-12-02T18:00:00Z");
        let since = t("2026-12-02T00:00:00Z");
        if off > 0 {
            assert!(f.due(&p, since, slot).is_empty());
        }
        let due = f.due(&p, since, slot + Duration::seconds(off));
        assert_eq!(due[0].due, slot + Duration::seconds(off));
    }

    #[test]
    fn jitter_of_an_every_minute_schedule_stays_below_half_a_minute() {
        // 300 s of jitter on a one-minute schedule would put every slot
        // behind the next one; the cap keeps it inside the minute.
        let p = policy("* * * * *", "Asia/Makassar", 300);
        let mut f = SlotFinder::default();
        let since = t("2026-12-02T00:00:00Z");
        let now = t("2026-12-02T18:00:00Z");
        for due in f.due(&p, since, now) {
            let slot = DateTime::from_timestamp(due.slot, 0).unwrap();
            assert!(due.due - slot <= Duration::seconds(30), "{due:?}");
            assert!(now - slot < Duration::seconds(60 + 30), "{due:?}");
        }
        assert_eq!(f.due(&p, since, now).len(), 1);
    }

    #[test]
    fn unattended_only_when_the_controller_is_silent_since_the_slot() {
        let due = DueSlot {
            source: "files".into(),
            slot: t("2026-12-02T18:00:00Z").timestamp(),
            due: t("2026-12-02T18:00:00Z"),
        };
        let grace = Duration::seconds(120);
        let before = Some(t("2026-12-02T17:59:00Z"));
        let after = Some(t("2026-12-02T18:00:30Z"));
        assert!(!run_unattended(
            &due,
            before,
            t("2026-12-02T18:01:00Z"),
            grace
        ));
        assert!(run_unattended(
            &due,
            before,
            t("2026-12-02T18:02:00Z"),
            grace
        ));
        assert!(run_unattended(&due, None, t("2026-12-02T18:02:00Z"), grace));
        assert!(!run_unattended(
            &due,
            after,
            t("2026-12-02T18:05:00Z"),
            grace
        ));
    }
}
