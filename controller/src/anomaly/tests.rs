//! The verdict on synthetic histories: ordinary nights and bursts pass,
//! each attack shape is flagged, the last clean snapshot is named.

use chrono::{Duration, TimeZone};

use super::*;

const FILES: u64 = 2000;

fn at(day: i64) -> DateTime<Utc> {
    // 19:00 UTC = 02:00 WIB, a night backup.
    Utc.with_ymd_and_hms(2026, 10, 1, 19, 0, 0).unwrap() + Duration::days(day)
}

/// An ordinary night: ~2% edits, 1% appends, a few new and deleted files,
/// now and then one file that turns random (a VM image block).
fn ordinary(day: i64) -> BackupSignals {
    let wobble = (day * 7 % 5) as u64;
    BackupSignals {
        has_parent: day > 0,
        files_before: FILES,
        files_total: FILES,
        files_new: 15 + wobble,
        files_changed: 55 + 3 * wobble,
        files_deleted: 15 + wobble,
        entropy_checked: 55 + 3 * wobble,
        entropy_transitions: u64::from(day % 9 == 0),
        new_data_bytes: 40 << 20,
        new_data_incompressible_bytes: (4 + wobble) << 20,
        ..Default::default()
    }
}

fn obs(day: i64, s: BackupSignals) -> Observation {
    Observation {
        snapshot: format!("snap{day:03}"),
        time: at(day),
        signals: s,
    }
}

fn history(days: i64) -> Vec<Observation> {
    (0..days).map(|d| obs(d, ordinary(d))).collect()
}

fn kinds(v: &Verdict) -> Vec<ReasonKind> {
    v.reasons.iter().map(|r| r.kind).collect()
}

#[test]
fn ordinary_nights_and_bursts_are_not_flagged() {
    let mut h = history(40);
    // Month-end: four times the edits, many new reports (office files are
    // high-entropy ZIPs but new, not changed).
    h[30].signals.files_changed = 400;
    h[30].signals.files_new = 300;
    h[30].signals.new_files_random = 40;
    // Software update: 15% of the files replaced by new binaries, already
    // compressed before and after: no transitions.
    h[33].signals.files_changed = 300;
    h[33].signals.entropy_checked = 300;
    h[33].signals.new_data_incompressible_bytes = 35 << 20;
    // Bulk scan import: 25% more files, all random-looking, all new.
    h[36].signals.files_new = 500;
    h[36].signals.files_total = FILES + 500;
    h[36].signals.new_files_random = 500;
    h[36].signals.new_data_bytes = 900 << 20;
    h[36].signals.new_data_incompressible_bytes = 880 << 20;
    let v = evaluate(&h, &Thresholds::default());
    assert!(v[0].learning);
    for (i, v) in v.iter().enumerate() {
        assert!(!v.flagged, "night {i} flagged: {}", v.summary(false));
    }
    assert!(last_clean(&h, &v).is_none());
}

#[test]
fn full_encryption_with_new_extension_is_flagged_with_words() {
    let mut h = history(20);
    let mut s = ordinary(20);
    s.files_changed = 1800;
    s.entropy_checked = 1800;
    s.entropy_transitions = 1750;
    s.extension_changed = 1800;
    s.known_extension_files = 1800;
    s.ransom_notes = 40;
    s.ransom_note_dirs = 40;
    s.new_data_incompressible_bytes = s.new_data_bytes;
    h.push(obs(20, s));
    let v = evaluate(&h, &Thresholds::default());
    let last = v.last().unwrap();
    assert!(last.flagged);
    let k = kinds(last);
    for want in [
        ReasonKind::EntropyTransitions,
        ReasonKind::ExtensionChanges,
        ReasonKind::KnownExtensions,
        ReasonKind::RansomNotes,
        ReasonKind::ManyChanges,
        ReasonKind::IncompressibleData,
    ] {
        assert!(k.contains(&want), "{want:?} missing from {k:?}");
    }
    let en = last.summary(false);
    assert!(en.starts_with("ransomware suspected"), "{en}");
    assert!(en.contains("87.5% of the files (1750 of 2000)"), "{en}");
    let id = last.summary(true);
    assert!(id.starts_with("dugaan serangan ransomware"), "{id}");
    assert!(id.contains("87,5% berkas"), "{id}");
    assert_eq!(last_clean(&h, &v).unwrap().snapshot, "snap019");
}

#[test]
fn intermittent_encryption_with_names_kept_is_flagged_on_entropy_alone() {
    let mut h = history(15);
    let mut s = ordinary(15);
    s.files_changed = FILES;
    s.entropy_checked = FILES;
    s.entropy_transitions = FILES * 9 / 10;
    h.push(obs(15, s));
    let v = evaluate(&h, &Thresholds::default());
    assert!(v[15].flagged);
    assert_eq!(v[15].reasons[0].kind, ReasonKind::EntropyTransitions);
}

#[test]
fn five_percent_a_night_is_flagged_the_first_night() {
    let mut h = history(15);
    for n in 0..3 {
        let mut s = ordinary(15 + n);
        s.files_changed += FILES / 20;
        s.entropy_transitions = FILES / 20;
        h.push(obs(15 + n, s));
    }
    let v = evaluate(&h, &Thresholds::default());
    assert!(!v[14].flagged);
    assert!(v[15].flagged, "{:?}", v[15]);
    assert_eq!(last_clean(&h, &v).unwrap().snapshot, "snap014");
}

#[test]
fn a_slower_attack_is_caught_by_the_window_and_its_onset_named() {
    let mut h = history(20);
    // 1.5% a night: under the nightly 2% limit, 6% after four nights.
    for n in 0..5 {
        let mut s = ordinary(20 + n);
        s.entropy_transitions = 30;
        h.push(obs(20 + n, s));
    }
    let v = evaluate(&h, &Thresholds::default());
    let first = v.iter().position(|v| v.flagged).expect("flagged");
    assert_eq!(first, 23, "{:?}", v[first]);
    assert_eq!(kinds(&v[first])[0], ReasonKind::SlowEncryption);
    assert_eq!(v[first].onset.as_deref(), Some("snap020"));
    // The last clean snapshot is the one before the attack began, not the
    // one before the flag.
    assert_eq!(last_clean(&h, &v).unwrap().snapshot, "snap019");
}

#[test]
fn the_night_after_a_flag_is_judged_on_its_own() {
    let mut h = history(15);
    let mut s = ordinary(15);
    s.entropy_transitions = 1500;
    s.ransom_note_dirs = 30;
    s.ransom_notes = 30;
    h.push(obs(15, s));
    h.push(obs(16, ordinary(16)));
    let v = evaluate(&h, &Thresholds::default());
    assert!(v[15].flagged);
    assert!(!v[16].flagged, "{}", v[16].summary(false));
}

#[test]
fn renaming_to_random_names_is_flagged_as_mass_replacement() {
    let mut h = history(15);
    let mut s = ordinary(15);
    s.files_deleted = 1200;
    s.files_new = 1200;
    s.new_files_random = 1200;
    h.push(obs(15, s));
    let v = evaluate(&h, &Thresholds::default());
    assert_eq!(kinds(&v[15]), vec![ReasonKind::MassReplacement]);
}

#[test]
fn margins_are_tunable() {
    let mut h = history(15);
    let mut s = ordinary(15);
    s.entropy_transitions = 30; // 1.5%
    h.push(obs(15, s));
    assert!(!evaluate(&h, &Thresholds::default())[15].flagged);
    let strict = Thresholds {
        transition_share: 0.01,
        ..Default::default()
    };
    assert!(evaluate(&h, &strict)[15].flagged);
    let t: Thresholds = serde_json::from_str(r#"{"transition_share":0.01}"#).unwrap();
    assert_eq!(t, strict, "policies may set only the margins they change");
}

#[test]
fn a_source_that_always_changes_many_files_has_a_higher_limit() {
    // A source where 10% of the files legitimately turn random each night
    // (e.g. it receives encrypted exports): its baseline lifts the limit.
    let mut h: Vec<Observation> = (0..20)
        .map(|d| {
            let mut s = ordinary(d);
            s.entropy_transitions = 200 + (d as u64 % 3) * 5;
            obs(d, s)
        })
        .collect();
    // Judged against its history as the operator confirmed it (no flags
    // kept: a cleared flag lets the night into the baseline).
    let t = Thresholds::default();
    let ordinary_night = obs(20, {
        let mut s = ordinary(20);
        s.entropy_transitions = 210;
        s
    });
    assert!(!verdict(&h, &[], &ordinary_night, &t).flagged);
    let mut s = ordinary(20);
    s.entropy_transitions = 1200;
    h.push(obs(20, s));
    assert!(verdict(&h[..20], &[], &h[20], &t).flagged);
}

#[test]
fn one_noisy_file_days_before_an_attack_does_not_move_the_onset() {
    let mut h = history(20);
    // A VM image block turned random three nights before: one file.
    h[17].signals.entropy_transitions = 1;
    let mut s = ordinary(20);
    s.entropy_transitions = FILES / 20;
    h.push(obs(20, s));
    let v = evaluate(&h, &Thresholds::default());
    assert!(v[20].flagged);
    assert_eq!(v[20].onset, None, "{:?}", v[20]);
    assert_eq!(last_clean(&h, &v).unwrap().snapshot, "snap019");
}
