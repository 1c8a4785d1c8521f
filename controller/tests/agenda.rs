//! The dispatcher's look-ahead hands out exactly what asking the planner at
//! each instant would: the same (task, slot) at the same second, for
//! every-minute and five-minute schedules, across a restart gap, with a
//! second host added by a policy reload.

mod engine_common;

use std::collections::BTreeSet;

use cadang_controller::agenda::Agenda;
use cadang_controller::engine::{due, Due, RunBook};
use cadang_policies::model::PolicySet;
use chrono::{DateTime, Duration, Utc};
use engine_common::*;

const ZONE: &str = "Asia/Jakarta";

/// A PD with `hosts` hosts of one source each (distinct jitters).
fn many(code: &str, hosts: usize, cron: &str) -> cadang_policies::model::PdPolicy {
    let mut p = pd(code, ZONE, cron);
    let template = p.hosts[0].clone();
    p.hosts = (0..hosts)
        .map(|i| {
            let mut h = template.clone();
            h.name = format!("h{i}-{code}");
            h
        })
        .collect();
    p
}

type Handed = BTreeSet<(i64, String, DateTime<Utc>)>;

fn record(out: &mut Handed, now: DateTime<Utc>, dues: &[Due], book: &mut RunBook) {
    for d in dues {
        out.insert((now.timestamp(), d.key.label(), d.slot));
        book.mark_dispatched(d);
    }
}

/// Walks `from..to` second by second (skipping `gap`, as a stopped
/// controller would), once asking `due` at each instant and once through
/// the agenda; returns both hand-outs.
fn walk(
    set_at: &dyn Fn(DateTime<Utc>) -> PolicySet,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    gap: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> (Handed, Handed) {
    let start = RunBook {
        first_start: Some(from),
        ..Default::default()
    };
    let (mut book_ref, mut book_agenda) = (start.clone(), start);
    let (mut reference, mut agenda_out) = (Handed::new(), Handed::new());
    let mut agenda = Agenda::new();
    let mut now = from;
    while now < to {
        if gap.is_some_and(|(a, b)| now >= a && now < b) {
            now += Duration::seconds(1);
            continue;
        }
        let set = set_at(now);
        let expected = due(&set, &book_ref, now);
        record(&mut reference, now, &expected, &mut book_ref);
        let got = agenda.take_due(&set, &book_agenda, now);
        record(&mut agenda_out, now, &got, &mut book_agenda);
        assert!(agenda.next_wakeup(&book_agenda, now) >= now);
        now += Duration::seconds(1);
    }
    (reference, agenda_out)
}

#[test]
fn every_minute_and_five_minutes_match_the_planner_second_by_second() {
    let set = policy_set(
        ZONE,
        vec![
            many("SATU", 40, "* * * * *"),
            many("DUA", 40, "*/5 * * * *"),
        ],
    );
    let from = at("2026-03-02T10:00:07Z");
    let (reference, agenda) = walk(&|_| set.clone(), from, from + Duration::minutes(12), None);
    // 40 sources x 12 minutes + 40 x 2-3 five-minute slots: the walk
    // covers real work, not an empty schedule.
    assert!(reference.len() > 500, "{}", reference.len());
    assert_eq!(reference, agenda);
}

#[test]
fn a_restart_gap_collapses_missed_slots_the_same_way() {
    let set = policy_set(ZONE, vec![many("SATU", 30, "* * * * *")]);
    let from = at("2026-03-02T10:00:00Z");
    let gap = Some((from + Duration::minutes(2), from + Duration::minutes(7)));
    let (reference, agenda) = walk(&|_| set.clone(), from, from + Duration::minutes(10), gap);
    assert!(reference.len() > 100);
    assert_eq!(reference, agenda);
}

#[test]
fn a_reloaded_set_is_planned_from_the_new_policies() {
    let from = at("2026-03-02T10:00:00Z");
    let reload = from + Duration::seconds(150);
    let set_at = |now: DateTime<Utc>| {
        let hosts = if now < reload { 10 } else { 25 };
        let mut set = policy_set(ZONE, vec![many("SATU", hosts, "* * * * *")]);
        set.fingerprint = format!("hosts-{hosts}");
        set
    };
    let (reference, agenda) = walk(&set_at, from, from + Duration::minutes(6), None);
    assert!(reference
        .iter()
        .any(|(_, label, _)| label.contains("h24-SATU")));
    assert_eq!(reference, agenda);
}
