//! Which snapshots a retention policy keeps, with the semantics of restic's
//! `forget`, so that operators who know restic get no surprises.
//!
//! Snapshots are grouped, each group is sorted newest first, and every rule
//! (`last`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`) walks that list
//! keeping a snapshot whenever it falls in a bucket different from the last
//! one the rule kept, until the rule has kept its count. A rule therefore
//! counts only periods that actually have snapshots: `daily: 7` keeps the
//! newest snapshot of each of the seven most recent days *with* a snapshot,
//! however far apart those days are.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, Timelike};
use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

/// How many snapshots to keep, per rule. Zero disables a rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeepPolicy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

impl KeepPolicy {
    /// True when no rule keeps anything.
    pub fn is_empty(&self) -> bool {
        self.rules().iter().all(|(_, count)| *count == 0)
    }

    /// Refuses an empty policy: applied literally it would forget every
    /// snapshot, which is never what an operator meant.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.is_empty() {
            Err(PolicyError::EmptyRetention)
        } else {
            Ok(())
        }
    }

    fn rules(&self) -> [(Rule, u32); 6] {
        [
            (Rule::Last, self.last),
            (Rule::Hourly, self.hourly),
            (Rule::Daily, self.daily),
            (Rule::Weekly, self.weekly),
            (Rule::Monthly, self.monthly),
            (Rule::Yearly, self.yearly),
        ]
    }
}

impl fmt::Display for KeepPolicy {
    /// `last 3, daily 7, weekly 4`, or `empty`: meant for logs and CLI output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (rule, count) in self.rules() {
            if count == 0 {
                continue;
            }
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{} {count}", rule.name())?;
        }
        if first {
            f.write_str("empty")?;
        }
        Ok(())
    }
}

/// A snapshot as retention sees it: an opaque id, when it was taken, and the
/// group it competes within (typically host + source paths).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate<K> {
    pub id: K,
    /// Carries the offset of the machine that took the snapshot: buckets are
    /// that machine's local hours, days, weeks..., as in restic.
    pub time: DateTime<FixedOffset>,
    pub group: String,
}

/// The verdict on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision<K> {
    pub id: K,
    pub time: DateTime<FixedOffset>,
    pub group: String,
    pub keep: bool,
    /// Every rule that kept it, in rule order (`last snapshot`, `hourly
    /// snapshot`, `daily snapshot`, `weekly snapshot`, `monthly snapshot`,
    /// `yearly snapshot`), or `no policy`; empty when `keep` is false.
    pub reasons: Vec<String>,
}

/// Reason given for every snapshot when the policy is empty.
pub const REASON_NO_POLICY: &str = "no policy";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// Identifies a bucket; only equality matters.
type BucketKey = (i64, u32, u32, u32);

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Rule::Last => "last snapshot",
            Rule::Hourly => "hourly snapshot",
            Rule::Daily => "daily snapshot",
            Rule::Weekly => "weekly snapshot",
            Rule::Monthly => "monthly snapshot",
            Rule::Yearly => "yearly snapshot",
        }
    }

    /// `DateTime<FixedOffset>`'s calendar accessors read its local time, which
    /// is what makes the buckets follow the snapshot's own offset.
    fn bucket(self, time: &DateTime<FixedOffset>, position: usize) -> BucketKey {
        let year = i64::from(time.year());
        match self {
            // Every snapshot is its own bucket, so `last` counts snapshots.
            Rule::Last => (position as i64, 0, 0, 0),
            Rule::Hourly => (year, time.month(), time.day(), time.hour()),
            Rule::Daily => (year, time.month(), time.day(), 0),
            Rule::Weekly => {
                let week = time.iso_week();
                (i64::from(week.year()), week.week(), 0, 0)
            }
            Rule::Monthly => (year, time.month(), 0, 0),
            Rule::Yearly => (year, 0, 0, 0),
        }
    }
}

/// Decides, for every snapshot, whether `policy` keeps it.
///
/// The output holds one decision per input snapshot: groups in ascending
/// order of their name, each group newest first. Snapshots taken at the same
/// instant keep their input order, so the first one listed wins a bucket.
///
/// An empty policy keeps everything with reason [`REASON_NO_POLICY`]: the
/// safe answer if a caller forgot [`KeepPolicy::validate`].
pub fn apply<K: Clone>(policy: &KeepPolicy, snapshots: &[Candidate<K>]) -> Vec<Decision<K>> {
    let mut groups: BTreeMap<&str, Vec<&Candidate<K>>> = BTreeMap::new();
    for snapshot in snapshots {
        groups
            .entry(snapshot.group.as_str())
            .or_default()
            .push(snapshot);
    }

    let mut decisions = Vec::with_capacity(snapshots.len());
    for (_, mut members) in groups {
        // Stable, so ties stay in input order; `Ord` on DateTime compares
        // instants, whatever the offsets.
        members.sort_by_key(|s| std::cmp::Reverse(s.time));
        decide_group(policy, &members, &mut decisions);
    }
    decisions
}

fn decide_group<K: Clone>(
    policy: &KeepPolicy,
    newest_first: &[&Candidate<K>],
    out: &mut Vec<Decision<K>>,
) {
    let decision = |snapshot: &Candidate<K>, reasons: Vec<String>| Decision {
        id: snapshot.id.clone(),
        time: snapshot.time,
        group: snapshot.group.clone(),
        keep: !reasons.is_empty(),
        reasons,
    };

    if policy.is_empty() {
        out.extend(
            newest_first
                .iter()
                .map(|s| decision(s, vec![REASON_NO_POLICY.to_string()])),
        );
        return;
    }

    // Per rule: how many more buckets it may keep, and the bucket it last
    // kept. Like restic, a snapshot is compared with that last bucket only,
    // not with every bucket seen: when offsets differ, local days need not
    // be monotonic in time, and restic keeps such a snapshot again.
    let mut state: Vec<(Rule, u32, Option<BucketKey>)> = policy
        .rules()
        .into_iter()
        .map(|(rule, count)| (rule, count, None))
        .collect();

    for (position, snapshot) in newest_first.iter().enumerate() {
        let mut reasons = Vec::new();
        for (rule, remaining, last) in state.iter_mut() {
            if *remaining == 0 {
                continue;
            }
            let bucket = rule.bucket(&snapshot.time, position);
            if *last != Some(bucket) {
                *last = Some(bucket);
                *remaining -= 1;
                reasons.push(rule.reason().to_string());
            }
        }
        out.push(decision(snapshot, reasons));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    fn at(rfc3339: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
    }

    fn snap(id: &str, time: &str, group: &str) -> Candidate<String> {
        Candidate {
            id: id.to_string(),
            time: at(time),
            group: group.to_string(),
        }
    }

    /// One group, ids named after their times for readable failures.
    fn series(times: &[&str]) -> Vec<Candidate<String>> {
        times.iter().map(|t| snap(t, t, "g")).collect()
    }

    fn kept(decisions: &[Decision<String>]) -> Vec<&str> {
        decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.as_str())
            .collect()
    }

    fn reasons_of<'a>(decisions: &'a [Decision<String>], id: &str) -> Vec<&'a str> {
        decisions
            .iter()
            .find(|d| d.id == id)
            .unwrap_or_else(|| panic!("no decision for {id}"))
            .reasons
            .iter()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn empty_policy_is_refused_but_keeps_everything_if_applied() {
        let policy = KeepPolicy::default();
        assert!(policy.is_empty());
        assert_eq!(policy.validate(), Err(PolicyError::EmptyRetention));
        assert_eq!(policy.to_string(), "empty");

        let snaps = series(&["2024-01-01T00:00:00+07:00", "2024-01-02T00:00:00+07:00"]);
        let decisions = apply(&policy, &snaps);
        assert_eq!(decisions.len(), 2);
        for d in &decisions {
            assert!(d.keep);
            assert_eq!(d.reasons, vec!["no policy".to_string()]);
        }
        // Still newest first.
        assert_eq!(decisions[0].id, "2024-01-02T00:00:00+07:00");
    }

    #[test]
    fn any_single_rule_makes_a_policy_non_empty() {
        for field in 0..6 {
            let mut p = KeepPolicy::default();
            match field {
                0 => p.last = 1,
                1 => p.hourly = 1,
                2 => p.daily = 1,
                3 => p.weekly = 1,
                4 => p.monthly = 1,
                _ => p.yearly = 1,
            }
            assert!(!p.is_empty(), "{p:?}");
            assert!(p.validate().is_ok());
        }
    }

    #[test]
    fn display_lists_active_rules_in_order() {
        let p = KeepPolicy {
            last: 3,
            daily: 7,
            weekly: 4,
            yearly: 1,
            ..Default::default()
        };
        assert_eq!(p.to_string(), "last 3, daily 7, weekly 4, yearly 1");
    }

    #[test]
    fn no_snapshots_no_decisions() {
        let p = KeepPolicy {
            last: 5,
            ..Default::default()
        };
        assert!(apply::<String>(&p, &[]).is_empty());
        assert!(apply::<String>(&KeepPolicy::default(), &[]).is_empty());
    }

    #[test]
    fn keep_last_keeps_the_newest_regardless_of_input_order() {
        let snaps = series(&[
            "2024-05-03T10:00:00+07:00",
            "2024-05-01T10:00:00+07:00",
            "2024-05-05T10:00:00+07:00",
            "2024-05-02T10:00:00+07:00",
            "2024-05-04T10:00:00+07:00",
        ]);
        let p = KeepPolicy {
            last: 3,
            ..Default::default()
        };
        let d = apply(&p, &snaps);
        let order: Vec<&str> = d.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            order,
            [
                "2024-05-05T10:00:00+07:00",
                "2024-05-04T10:00:00+07:00",
                "2024-05-03T10:00:00+07:00",
                "2024-05-02T10:00:00+07:00",
                "2024-05-01T10:00:00+07:00",
            ]
        );
        assert_eq!(
            kept(&d),
            [
                "2024-05-05T10:00:00+07:00",
                "2024-05-04T10:00:00+07:00",
                "2024-05-03T10:00:00+07:00",
            ]
        );
        assert_eq!(
            reasons_of(&d, "2024-05-03T10:00:00+07:00"),
            ["last snapshot"]
        );
        assert!(reasons_of(&d, "2024-05-02T10:00:00+07:00").is_empty());
    }

    #[test]
    fn policy_larger_than_history_keeps_all() {
        let snaps = series(&["2024-05-01T10:00:00+07:00", "2024-05-02T10:00:00+07:00"]);
        let p = KeepPolicy {
            last: 10,
            daily: 10,
            ..Default::default()
        };
        assert_eq!(kept(&apply(&p, &snaps)).len(), 2);
    }

    #[test]
    fn hourly_keeps_newest_per_local_hour() {
        let snaps = series(&[
            "2024-05-01T10:05:00+08:00",
            "2024-05-01T10:55:00+08:00",
            "2024-05-01T11:00:00+08:00",
            "2024-05-01T11:59:59+08:00",
            "2024-05-01T13:30:00+08:00",
        ]);
        let p = KeepPolicy {
            hourly: 2,
            ..Default::default()
        };
        let d = apply(&p, &snaps);
        // 12:00 had nothing, so it is not counted: 13h and 11h are kept.
        assert_eq!(
            kept(&d),
            ["2024-05-01T13:30:00+08:00", "2024-05-01T11:59:59+08:00"]
        );
        assert_eq!(
            reasons_of(&d, "2024-05-01T11:59:59+08:00"),
            ["hourly snapshot"]
        );
    }

    #[test]
    fn daily_counts_only_days_with_snapshots() {
        let snaps = series(&[
            "2024-03-01T01:00:00+07:00",
            "2024-03-01T23:00:00+07:00",
            // 2 March: nothing.
            "2024-03-03T08:00:00+07:00",
            "2024-03-03T09:00:00+07:00",
            // 4-9 March: nothing.
            "2024-03-10T00:00:00+07:00",
        ]);
        let p = KeepPolicy {
            daily: 3,
            ..Default::default()
        };
        assert_eq!(
            kept(&apply(&p, &snaps)),
            [
                "2024-03-10T00:00:00+07:00",
                "2024-03-03T09:00:00+07:00",
                "2024-03-01T23:00:00+07:00",
            ]
        );
    }

    #[test]
    fn keep_last_zero_with_daily() {
        let snaps = series(&[
            "2024-06-01T02:00:00+07:00",
            "2024-06-01T14:00:00+07:00",
            "2024-06-02T02:00:00+07:00",
            "2024-06-02T14:00:00+07:00",
        ]);
        let p = KeepPolicy {
            last: 0,
            daily: 1,
            ..Default::default()
        };
        let d = apply(&p, &snaps);
        assert_eq!(kept(&d), ["2024-06-02T14:00:00+07:00"]);
        assert_eq!(
            reasons_of(&d, "2024-06-02T14:00:00+07:00"),
            ["daily snapshot"]
        );
    }

    #[test]
    fn one_snapshot_can_be_kept_for_every_reason() {
        let snaps = series(&["2023-12-01T00:00:00+07:00", "2024-01-10T00:00:00+07:00"]);
        let p = KeepPolicy {
            last: 1,
            hourly: 1,
            daily: 1,
            weekly: 1,
            monthly: 1,
            yearly: 1,
        };
        let d = apply(&p, &snaps);
        assert_eq!(
            reasons_of(&d, "2024-01-10T00:00:00+07:00"),
            [
                "last snapshot",
                "hourly snapshot",
                "daily snapshot",
                "weekly snapshot",
                "monthly snapshot",
                "yearly snapshot",
            ]
        );
        assert!(!d[1].keep);
    }

    /// (policy, snapshot times in one group, times expected kept) across day,
    /// ISO-week, month and year boundaries.
    #[test]
    fn boundary_table() {
        let daily = |n| KeepPolicy {
            daily: n,
            ..Default::default()
        };
        let weekly = |n| KeepPolicy {
            weekly: n,
            ..Default::default()
        };
        let monthly = |n| KeepPolicy {
            monthly: n,
            ..Default::default()
        };
        let yearly = |n| KeepPolicy {
            yearly: n,
            ..Default::default()
        };
        let cases: &[(&str, KeepPolicy, &[&str], &[&str])] = &[
            (
                "daily: midnight splits days",
                daily(2),
                &[
                    "2024-02-28T23:59:59+07:00",
                    "2024-02-29T00:00:00+07:00",
                    "2024-02-29T12:00:00+07:00",
                    "2024-03-01T00:00:00+07:00",
                ],
                &["2024-03-01T00:00:00+07:00", "2024-02-29T12:00:00+07:00"],
            ),
            (
                "daily: across new year",
                daily(2),
                &[
                    "2023-12-30T10:00:00+07:00",
                    "2023-12-31T10:00:00+07:00",
                    "2023-12-31T23:00:00+07:00",
                    "2024-01-01T01:00:00+07:00",
                ],
                &["2024-01-01T01:00:00+07:00", "2023-12-31T23:00:00+07:00"],
            ),
            (
                // Thu 31 Dec 2020 and Sun 3 Jan 2021 are both ISO week 53 of
                // 2020; Mon 4 Jan 2021 starts week 1 of 2021.
                "weekly: ISO week 53 spans the new year",
                weekly(2),
                &[
                    "2020-12-31T12:00:00+07:00",
                    "2021-01-03T12:00:00+07:00",
                    "2021-01-04T12:00:00+07:00",
                ],
                &["2021-01-04T12:00:00+07:00", "2021-01-03T12:00:00+07:00"],
            ),
            (
                // Mon 30 Dec 2024 is ISO week 1 of 2025, like Sun 5 Jan 2025;
                // Sun 29 Dec 2024 is week 52 of 2024.
                "weekly: ISO week 1 starts in December",
                weekly(2),
                &[
                    "2024-12-29T12:00:00+07:00",
                    "2024-12-30T12:00:00+07:00",
                    "2025-01-05T12:00:00+07:00",
                ],
                &["2025-01-05T12:00:00+07:00", "2024-12-29T12:00:00+07:00"],
            ),
            (
                "weekly: Sunday ends the week, Monday starts the next",
                weekly(3),
                &[
                    "2024-06-02T23:00:00+07:00", // Sun, week 22
                    "2024-06-03T00:00:00+07:00", // Mon, week 23
                    "2024-06-09T23:59:00+07:00", // Sun, week 23
                    "2024-06-10T00:01:00+07:00", // Mon, week 24
                ],
                &[
                    "2024-06-10T00:01:00+07:00",
                    "2024-06-09T23:59:00+07:00",
                    "2024-06-02T23:00:00+07:00",
                ],
            ),
            (
                "weekly: weeks without snapshots are skipped",
                weekly(2),
                &[
                    "2024-01-01T00:00:00+07:00",
                    "2024-03-01T00:00:00+07:00",
                    "2024-03-02T00:00:00+07:00",
                    "2024-06-01T00:00:00+07:00",
                ],
                &["2024-06-01T00:00:00+07:00", "2024-03-02T00:00:00+07:00"],
            ),
            (
                "monthly: leap-day month end and year end",
                monthly(3),
                &[
                    "2023-11-30T00:00:00+07:00",
                    "2023-12-01T00:00:00+07:00",
                    "2023-12-31T23:59:59+07:00",
                    "2024-01-31T00:00:00+07:00",
                    "2024-02-29T23:00:00+07:00",
                ],
                &[
                    "2024-02-29T23:00:00+07:00",
                    "2024-01-31T00:00:00+07:00",
                    "2023-12-31T23:59:59+07:00",
                ],
            ),
            (
                "yearly: newest of each year",
                yearly(5),
                &[
                    "2021-06-01T00:00:00+07:00",
                    "2022-01-01T00:00:00+07:00",
                    "2022-12-31T23:59:59+07:00",
                    "2024-01-01T00:00:00+07:00",
                ],
                &[
                    "2024-01-01T00:00:00+07:00",
                    "2022-12-31T23:59:59+07:00",
                    "2021-06-01T00:00:00+07:00",
                ],
            ),
        ];

        for (name, policy, times, expected) in cases {
            let d = apply(policy, &series(times));
            assert_eq!(&kept(&d), expected, "{name}");
            assert_eq!(d.len(), times.len(), "{name}");
        }
    }

    #[test]
    fn buckets_follow_the_snapshots_own_offset() {
        // In UTC all three fall on 29 February; locally the first is already
        // 1 March (WIT, +09:00), so daily 2 keeps two of them and not the
        // third. Bucketing in UTC would keep the 28 February one instead.
        let snaps = series(&[
            "2024-02-29T23:30:00+07:00", // 16:30Z, local 29 Feb
            "2024-03-01T00:30:00+09:00", // 15:30Z, local 1 Mar
            "2024-02-29T21:00:00+07:00", // 14:00Z, local 29 Feb
            "2024-02-28T21:00:00+07:00", // local 28 Feb
        ]);
        let p = KeepPolicy {
            daily: 2,
            ..Default::default()
        };
        let d = apply(&p, &snaps);
        assert_eq!(
            kept(&d),
            ["2024-02-29T23:30:00+07:00", "2024-03-01T00:30:00+09:00"]
        );
    }

    #[test]
    fn a_bucket_seen_again_after_another_counts_again_like_restic() {
        // Newest first the local days go 1 Jan, 2 Jan, 1 Jan: restic compares
        // only with the previous kept bucket, so the third is kept too.
        let snaps = series(&[
            "2024-01-01T17:00:00+00:00", // local 1 Jan
            "2024-01-02T00:30:00+08:00", // 16:30Z, local 2 Jan
            "2024-01-01T16:00:00+00:00", // local 1 Jan
        ]);
        let p = KeepPolicy {
            daily: 3,
            ..Default::default()
        };
        assert_eq!(kept(&apply(&p, &snaps)).len(), 3);
    }

    #[test]
    fn groups_are_independent_and_sorted() {
        let snaps = vec![
            snap("web-1", "2024-01-01T00:00:00+07:00", "web"),
            snap("db-1", "2024-01-01T00:00:00+08:00", "db"),
            snap("web-2", "2024-01-02T00:00:00+07:00", "web"),
            snap("db-2", "2024-01-02T00:00:00+08:00", "db"),
            snap("db-3", "2024-01-03T00:00:00+08:00", "db"),
            snap("arsip-1", "2023-01-01T00:00:00+09:00", "arsip"),
        ];
        let p = KeepPolicy {
            last: 1,
            ..Default::default()
        };
        let d = apply(&p, &snaps);
        let order: Vec<(&str, &str, bool)> = d
            .iter()
            .map(|d| (d.group.as_str(), d.id.as_str(), d.keep))
            .collect();
        assert_eq!(
            order,
            [
                ("arsip", "arsip-1", true),
                ("db", "db-3", true),
                ("db", "db-2", false),
                ("db", "db-1", false),
                ("web", "web-2", true),
                ("web", "web-1", false),
            ]
        );
        let t = d.iter().find(|d| d.id == "db-2").unwrap().time;
        assert_eq!(t, at("2024-01-02T00:00:00+08:00"));
        assert_eq!(t.offset().local_minus_utc(), 8 * 3600);
    }

    #[test]
    fn ties_in_time_keep_input_order() {
        // Same instant written with two offsets, plus an exact duplicate.
        let snaps = vec![
            snap("a", "2024-01-01T12:00:00+07:00", "g"),
            snap("b", "2024-01-01T13:00:00+08:00", "g"),
            snap("c", "2024-01-01T12:00:00+07:00", "g"),
            snap("old", "2023-12-31T12:00:00+07:00", "g"),
        ];
        let last = apply(
            &KeepPolicy {
                last: 2,
                ..Default::default()
            },
            &snaps,
        );
        let ids: Vec<&str> = last.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "old"]);
        assert_eq!(kept(&last), ["a", "b"]);

        let daily = apply(
            &KeepPolicy {
                daily: 2,
                ..Default::default()
            },
            &snaps,
        );
        assert_eq!(kept(&daily), ["a", "old"]);

        // Reversing the input reverses who wins among the tied ones.
        let reversed: Vec<_> = snaps.iter().rev().cloned().collect();
        let daily = apply(
            &KeepPolicy {
                daily: 1,
                ..Default::default()
            },
            &reversed,
        );
        assert_eq!(kept(&daily), ["c"]);
    }

    /// Deserialises from plain key/value pairs so the crate needs no JSON
    /// dependency just for these tests.
    fn policy_from(entries: &[(&'static str, u32)]) -> Result<KeepPolicy, String> {
        use serde::de::value::{Error, MapDeserializer};
        let de = MapDeserializer::<_, Error>::new(entries.iter().copied());
        KeepPolicy::deserialize(de).map_err(|e| e.to_string())
    }

    #[test]
    fn policy_deserializes_with_missing_fields_as_zero() {
        assert_eq!(
            policy_from(&[("daily", 7), ("weekly", 4)]),
            Ok(KeepPolicy {
                daily: 7,
                weekly: 4,
                ..Default::default()
            })
        );
    }

    #[test]
    fn misspelt_policy_field_is_rejected() {
        // Silently ignoring `dialy` would leave a policy that keeps less than
        // the operator asked for.
        let err = policy_from(&[("dialy", 7)]).unwrap_err();
        assert!(err.contains("dialy"), "{err}");
    }

    /// Tiny deterministic generator: no rand dependency, reproducible.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, bound: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % bound
        }
    }

    /// An independent statement of the rules for a single offset, where local
    /// buckets are monotonic in time: per rule, the newest snapshot of each of
    /// the N newest buckets.
    fn reference(policy: &KeepPolicy, snaps: &[Candidate<String>]) -> HashMap<String, Vec<String>> {
        let mut sorted: Vec<&Candidate<String>> = snaps.iter().collect();
        sorted.sort_by_key(|s| std::cmp::Reverse(s.time));
        let mut reasons: HashMap<String, Vec<String>> = HashMap::new();
        for (rule, count) in policy.rules() {
            let mut seen = BTreeSet::new();
            let mut order = Vec::new();
            for (i, s) in sorted.iter().enumerate() {
                let key = rule.bucket(&s.time, i);
                if seen.insert(key) {
                    order.push(s.id.clone());
                }
            }
            for id in order.into_iter().take(count as usize) {
                reasons
                    .entry(id)
                    .or_default()
                    .push(rule.reason().to_string());
            }
        }
        reasons
    }

    #[test]
    fn matches_reference_on_generated_histories() {
        let mut rng = Lcg(42);
        let base = at("2022-11-20T03:00:00+08:00");
        for round in 0..200 {
            // Distinct times, a few per day over roughly fourteen months.
            let mut offsets = BTreeSet::new();
            let n = 1 + rng.next(120);
            while (offsets.len() as u64) < n {
                offsets.insert(rng.next(420 * 24 * 60));
            }
            let snaps: Vec<Candidate<String>> = offsets
                .iter()
                .map(|m| {
                    let time = base + chrono::Duration::minutes(*m as i64);
                    Candidate {
                        id: time.to_rfc3339(),
                        time,
                        group: "g".into(),
                    }
                })
                .collect();
            let policy = KeepPolicy {
                last: rng.next(4) as u32,
                hourly: rng.next(5) as u32,
                daily: rng.next(10) as u32,
                weekly: rng.next(6) as u32,
                monthly: rng.next(14) as u32,
                yearly: rng.next(3) as u32,
            };
            let expected = reference(&policy, &snaps);
            let decisions = apply(&policy, &snaps);
            assert_eq!(decisions.len(), snaps.len());
            for d in &decisions {
                let want = if policy.is_empty() {
                    vec![REASON_NO_POLICY.to_string()]
                } else {
                    expected.get(&d.id).cloned().unwrap_or_default()
                };
                assert_eq!(d.reasons, want, "round {round}, {policy:?}, {}", d.id);
                assert_eq!(d.keep, !want.is_empty());
            }
        }
    }
}
