//! Schedule planning: slots in the regency's zone, missed runs collapsing
//! into one, jitter, replication windows, both sites, and when to wake up.

mod engine_common;

use cadang_controller::engine::plan::{self, jitter, BACKUP_JITTER, MAX_SLEEP};
use cadang_controller::engine::{due, next_wakeup, window_end, Due, RunBook, Site, TaskKey};
use cadang_policies::model::Window;
use chrono::{DateTime, Duration, Utc};
use engine_common::*;

fn backup_key(code: &str) -> TaskKey {
    TaskKey::Backup {
        pd: code.to_string(),
        host: format!("srv-{}", code.to_lowercase()),
        source: "data".into(),
    }
}

fn book_from(first_start: &str) -> RunBook {
    RunBook {
        first_start: Some(at(first_start)),
        ..Default::default()
    }
}

fn backups(due: &[Due]) -> Vec<&Due> {
    due.iter()
        .filter(|d| matches!(d.key, TaskKey::Backup { .. }))
        .collect()
}

#[test]
fn nightly_2200_local_in_wib_wita_wit() {
    // 22:00 local is 15:00Z in WIB (+7), 14:00Z in WITA (+8), 13:00Z in WIT (+9).
    for (zone, slot) in [
        ("Asia/Jakarta", "2026-06-10T15:00:00Z"),
        ("Asia/Makassar", "2026-06-10T14:00:00Z"),
        ("Asia/Jayapura", "2026-06-10T13:00:00Z"),
    ] {
        let set = policy_set(zone, vec![pd("DINKES", zone, "0 22 * * *")]);
        let book = book_from("2026-06-09T00:00:00Z");
        let slot = at(slot);
        let found = due(&set, &book, slot + Duration::minutes(10));
        let found = backups(&found);
        assert_eq!(found.len(), 1, "{zone}: {found:?}");
        assert_eq!(found[0].key, backup_key("DINKES"));
        assert_eq!(found[0].slot, slot, "{zone}");
        assert!(found[0].not_before >= slot && found[0].not_before < slot + BACKUP_JITTER);
        // A minute before today's slot, yesterday's (after first_start and
        // never dispatched) is the one due.
        let before = due(&set, &book, slot - Duration::minutes(1));
        let before = backups(&before);
        assert_eq!(before.len(), 1, "{zone}");
        assert_eq!(before[0].slot, slot - Duration::days(1), "{zone}");
    }
}

#[test]
fn three_missed_nights_run_once_for_the_newest_slot() {
    let zone = "Asia/Makassar";
    let set = policy_set(zone, vec![pd("DINKES", zone, "30 1 * * *")]);
    // Last run dispatched for the 1 June 01:30 WITA slot (17:30Z on 31 May);
    // the controller was then down until 08:00 WITA on 4 June.
    let mut book = book_from("2026-05-01T00:00:00Z");
    book.last_slot
        .insert(backup_key("DINKES"), at("2026-05-31T17:30:00Z"));
    let now = at("2026-06-04T00:00:00Z");
    let found = due(&set, &book, now);
    let found = backups(&found);
    assert_eq!(found.len(), 1, "one run, not three: {found:?}");
    assert_eq!(found[0].slot, at("2026-06-03T17:30:00Z"), "the newest slot");

    let dispatched = found[0].clone();
    book.mark_dispatched(&dispatched);
    assert!(backups(&due(&set, &book, now)).is_empty());
    assert!(backups(&due(&set, &book, now + Duration::hours(12))).is_empty());
    // The next night is due again.
    let next = due(&set, &book, at("2026-06-04T18:00:00Z"));
    assert_eq!(backups(&next)[0].slot, at("2026-06-04T17:30:00Z"));
}

#[test]
fn slots_before_the_first_start_are_never_missed() {
    let set = policy_set("UTC", vec![pd("DINKES", "UTC", "0 2 * * *")]);
    let book = book_from("2026-06-10T03:00:00Z");
    assert!(backups(&due(&set, &book, at("2026-06-10T12:00:00Z"))).is_empty());
    let found = due(&set, &book, at("2026-06-11T02:30:00Z"));
    assert_eq!(backups(&found)[0].slot, at("2026-06-11T02:00:00Z"));
    // Without a first start nothing before `now` counts as missed.
    let fresh = RunBook::default();
    assert!(backups(&due(&set, &fresh, at("2026-06-11T02:30:00Z"))).is_empty());
}

#[test]
fn jitter_is_stable_bounded_and_spread() {
    let nightly = schedule("0 22 * * *", "Asia/Jakarta");
    let slot = at("2026-06-10T15:00:00Z");
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..40 {
        let key = TaskKey::Backup {
            pd: "DISDUKCAPIL".into(),
            host: format!("srv{i}"),
            source: "db".into(),
        };
        let j = jitter(&key, &nightly, slot);
        assert_eq!(j, jitter(&key, &nightly, slot), "stable for {key:?}");
        assert_eq!(j, jitter(&key.clone(), &nightly, slot + Duration::days(1)));
        assert!(j >= Duration::zero() && j < BACKUP_JITTER, "{j}");
        seen.insert(j);
    }
    assert!(
        seen.len() > 20,
        "40 hosts should not share a few offsets: {seen:?}"
    );
    // Below half the interval of a frequent schedule, so it always runs.
    let every_two_minutes = schedule("*/2 * * * *", "UTC");
    for i in 0..40 {
        let key = TaskKey::Backup {
            pd: "X".into(),
            host: format!("h{i}"),
            source: "s".into(),
        };
        assert!(jitter(&key, &every_two_minutes, slot) < Duration::minutes(1));
    }
    let set = policy_set("UTC", vec![pd("X", "UTC", "*/2 * * * *")]);
    let book = book_from("2026-06-10T00:00:00Z");
    assert_eq!(
        backups(&due(&set, &book, at("2026-06-10T10:01:59Z"))).len(),
        1
    );
}

#[test]
fn a_task_is_not_due_before_its_jitter_passes() {
    let set = policy_set("UTC", vec![pd("DINKES", "UTC", "0 2 * * *")]);
    let book = book_from("2026-06-10T00:00:00Z");
    let slot = at("2026-06-10T02:00:00Z");
    let not_before = slot
        + jitter(
            &backup_key("DINKES"),
            &set.pds["DINKES"].hosts[0].sources[0].schedule,
            slot,
        );
    assert!(not_before > slot, "this key's jitter is not zero");
    assert!(backups(&due(&set, &book, not_before - Duration::seconds(1))).is_empty());
    let found = due(&set, &book, not_before);
    assert_eq!(backups(&found)[0].not_before, not_before);
}

/// A WIB PD replicating in 22:00-05:00 local, 30 minutes after a backup.
fn replicating(windows: Vec<Window>) -> cadang_policies::model::PolicySet {
    let zone = "Asia/Jakarta";
    let mut p = pd("DINKES", zone, "0 21 * * *");
    p.replication.windows = windows;
    p.replication.delay = std::time::Duration::from_secs(30 * 60);
    policy_set(zone, vec![p])
}

fn replications(
    set: &cadang_policies::model::PolicySet,
    book: &RunBook,
    now: DateTime<Utc>,
) -> Vec<Due> {
    due(set, book, now)
        .into_iter()
        .filter(|d| matches!(d.key, TaskKey::Replicate { .. }))
        .collect()
}

const NIGHT: Window = Window {
    start_minute: 22 * 60,
    end_minute: 5 * 60,
};

#[test]
fn replication_only_after_a_backup() {
    let set = replicating(vec![]);
    let mut book = book_from("2026-06-01T00:00:00Z");
    assert!(replications(&set, &book, at("2026-06-10T16:00:00Z")).is_empty());
    let backup_end = at("2026-06-10T14:20:00Z");
    book.record_backup_success("DINKES", backup_end);
    // Not before the delay has passed.
    assert!(replications(&set, &book, at("2026-06-10T14:49:00Z")).is_empty());
    let found = replications(&set, &book, at("2026-06-10T14:50:00Z"));
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].slot, backup_end,
        "the slot is the backup it follows"
    );
    assert_eq!(
        found[0].key,
        TaskKey::Replicate {
            pd: "DINKES".into()
        }
    );
    // Dispatched: not again until a newer backup.
    book.mark_dispatched(&found[0]);
    assert!(replications(&set, &book, at("2026-06-10T20:00:00Z")).is_empty());
    book.record_replication_start("DINKES", at("2026-06-10T14:51:00Z"));
    book.record_backup_success("DINKES", at("2026-06-11T14:20:00Z"));
    assert_eq!(
        replications(&set, &book, at("2026-06-11T15:00:00Z")).len(),
        1
    );
}

#[test]
fn replication_only_inside_a_window_across_midnight() {
    let set = replicating(vec![NIGHT]);
    let mut book = book_from("2026-06-01T00:00:00Z");
    // Backup ends 10:00 WIB (03:00Z): outside 22:00-05:00, it waits.
    book.record_backup_success("DINKES", at("2026-06-10T03:00:00Z"));
    for outside in [
        "2026-06-10T04:00:00Z",
        "2026-06-10T14:59:00Z",
        "2026-06-10T22:00:00Z",
    ] {
        assert!(
            replications(&set, &book, at(outside)).is_empty(),
            "{outside}"
        );
    }
    for inside in [
        "2026-06-10T15:00:00Z", // 22:00 WIB: the window opens
        "2026-06-10T17:00:00Z", // 00:00 WIB, across midnight
        "2026-06-10T21:59:00Z", // 04:59 WIB
    ] {
        assert_eq!(replications(&set, &book, at(inside)).len(), 1, "{inside}");
    }
    // The window's end is what the job is told to stop starting files at.
    assert_eq!(
        window_end(&set, "DINKES", at("2026-06-10T17:00:00Z")),
        Some(at("2026-06-10T22:00:00Z"))
    );
    assert_eq!(window_end(&set, "DINKES", at("2026-06-10T04:00:00Z")), None);
}

#[test]
fn verification_and_retention_of_both_sites() {
    let set = policy_set(
        "Asia/Makassar",
        vec![pd("DINKES", "Asia/Makassar", "0 22 * * *")],
    );
    let book = book_from("2026-06-01T00:00:00Z");
    // Sunday 14 June 2026, 05:00 WITA: verify (03:00) and retention (04:00) are past.
    let found = due(&set, &book, at("2026-06-13T21:00:00Z"));
    let mut keys: Vec<TaskKey> = found
        .iter()
        .filter(|d| !matches!(d.key, TaskKey::Backup { .. }))
        .map(|d| d.key.clone())
        .collect();
    keys.sort();
    let pd = || "DINKES".to_string();
    assert_eq!(
        keys,
        [
            TaskKey::Verify {
                pd: pd(),
                site: Site::OnSite
            },
            TaskKey::Verify {
                pd: pd(),
                site: Site::Dr
            },
            TaskKey::Retention {
                pd: pd(),
                site: Site::OnSite
            },
            TaskKey::Retention {
                pd: pd(),
                site: Site::Dr
            },
        ]
    );
    let verify = found
        .iter()
        .find(|d| matches!(d.key, TaskKey::Verify { .. }))
        .unwrap();
    assert_eq!(
        verify.slot,
        at("2026-06-13T19:00:00Z"),
        "03:00 WITA on Sunday"
    );
}

#[test]
fn next_wakeup_is_the_next_slot_plus_jitter_or_a_minute() {
    let set = policy_set("UTC", vec![pd("DINKES", "UTC", "0 2 * * *")]);
    let book = book_from("2026-06-10T00:00:00Z");
    let slot = at("2026-06-10T02:00:00Z");
    let key = backup_key("DINKES");
    let sched = &set.pds["DINKES"].hosts[0].sources[0].schedule;
    let expected = slot + jitter(&key, sched, slot);
    // Far from anything: at most a minute.
    let now = at("2026-06-10T01:00:00Z");
    assert_eq!(next_wakeup(&set, &book, now), now + MAX_SLEEP);
    // Just before the slot: exactly when it becomes due.
    let now = expected - Duration::seconds(10);
    assert_eq!(next_wakeup(&set, &book, now), expected);
    assert!(backups(&due(&set, &book, now)).is_empty());
    assert_eq!(backups(&due(&set, &book, expected)).len(), 1);
    // Always strictly in the future.
    assert!(next_wakeup(&set, &book, expected) > expected);
}

#[test]
fn next_wakeup_for_a_waiting_replication_is_the_window_opening() {
    let set = replicating(vec![NIGHT]);
    let mut book = book_from("2026-06-01T00:00:00Z");
    book.record_backup_success("DINKES", at("2026-06-10T03:00:00Z"));
    // 21:59:30 WIB: the window opens in 30 s.
    let now = at("2026-06-10T14:59:30Z");
    assert_eq!(next_wakeup(&set, &book, now), at("2026-06-10T15:00:00Z"));
    // Backup at 23:00 WIB, inside the window: wake when the delay ends.
    book.record_backup_success("DINKES", at("2026-06-10T16:00:00Z"));
    let now = at("2026-06-10T16:29:40Z");
    assert_eq!(next_wakeup(&set, &book, now), at("2026-06-10T16:30:00Z"));
}

#[test]
fn run_book_survives_json() {
    let mut book = book_from("2026-06-01T00:00:00Z");
    book.last_slot
        .insert(backup_key("A"), at("2026-06-02T00:00:00Z"));
    book.last_slot.insert(
        TaskKey::Verify {
            pd: "A".into(),
            site: Site::Dr,
        },
        at("2026-06-03T00:00:00Z"),
    );
    book.record_backup_success("A", at("2026-06-02T01:00:00Z"));
    let text = serde_json::to_string(&book).unwrap();
    assert!(text.contains("\"dr\""), "{text}");
    let back: RunBook = serde_json::from_str(&text).unwrap();
    assert_eq!(back.last_slot, book.last_slot);
    assert_eq!(back.last_backup_success, book.last_backup_success);
    assert_eq!(back.first_start, book.first_start);
    let _ = plan::SITE_JOB_JITTER;
}
