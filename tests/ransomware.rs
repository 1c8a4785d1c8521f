//! Ransomware early warning end to end (issue 10): real backups of a
//! simulated PD file server through `cadang_agent::backup`, the signals
//! into the controller's verdict. A small version of
//! `bench/ransomware/run.sh` (which runs 60 days at full size).

#[path = "../bench/ransomware/attacks.rs"]
mod attacks;
#[path = "../bench/ransomware/dataset.rs"]
mod dataset;
#[path = "../bench/ransomware/days.rs"]
mod days;
#[path = "../bench/ransomware/sim.rs"]
mod sim;

use attacks::Attack;
use cadang_controller::anomaly::{self, ReasonKind};

const SEED: u64 = 20240620; // 2024-06-20, the day the national data center was encrypted

fn small(attack: Attack, day_after: bool) -> sim::Plan {
    sim::Plan {
        files: 300,
        days: 14,
        seed: SEED,
        attack: Some(attack),
        day_after,
    }
}

/// No ordinary day (bursts included) is flagged, and the first attack night
/// is: the one where the attack has touched ≥ 5% of the files.
fn assert_flagged_exactly_from_attack(run: &sim::Run) -> usize {
    let start = run.attack_start.expect("the plan has an attack");
    let table = sim::table(&run.rows);
    eprintln!("{table}");
    for r in &run.rows[..start] {
        assert!(
            !r.flagged,
            "false flag on day {} ({}):\n{table}",
            r.day, r.what
        );
    }
    let mut touched = 0;
    let first_due = run.rows[start..]
        .iter()
        .position(|r| {
            touched += r.touched.unwrap_or(0);
            touched * 20 >= r.files as usize
        })
        .expect("the attack reaches 5% of the files")
        + start;
    assert!(
        run.rows[first_due].flagged,
        "attack not flagged on the night it reached 5% of the files:\n{table}"
    );
    first_due
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ransomware_night_is_flagged_the_next_day_is_not_and_the_last_clean_snapshot_restores() {
    let run = sim::run(&small(Attack::FullNewExtension, true)).await;
    let night = assert_flagged_exactly_from_attack(&run);
    let v = &run.verdicts[night];
    let kinds: Vec<ReasonKind> = v.reasons.iter().map(|r| r.kind).collect();
    for want in [
        ReasonKind::EntropyTransitions,
        ReasonKind::ExtensionChanges,
        ReasonKind::KnownExtensions,
        ReasonKind::RansomNotes,
    ] {
        assert!(
            kinds.contains(&want),
            "{want:?} missing: {}",
            v.summary(false)
        );
    }
    assert!(v.summary(true).starts_with("dugaan serangan ransomware"));

    // The ordinary day after the attack is judged on its own.
    let after = run.rows.last().unwrap();
    assert!(!after.flagged, "{}", after.reasons);

    // The last clean snapshot is the backup just before the attack night,
    // and it restores byte-identical to the tree as it was then.
    let clean = anomaly::last_clean(&run.observations, &run.verdicts).expect("a clean snapshot");
    assert_eq!(clean.snapshot, run.rows[night - 1].snapshot);
    let (_, expected) = run
        .digests
        .iter()
        .find(|(s, _)| *s == clean.snapshot)
        .expect("digest of the last clean day");
    let restored = sim::restore_digest(&run, &clean.snapshot).await;
    assert_eq!(restored.len(), expected.len());
    assert!(
        restored == *expected,
        "restored tree differs from the clean day"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermittent_encryption_of_the_first_4k_with_names_kept_is_flagged() {
    let run = sim::run(&small(Attack::Intermittent4k, false)).await;
    let night = assert_flagged_exactly_from_attack(&run);
    let r = &run.rows[night];
    assert_eq!(r.extension_changed, 0, "names were kept");
    assert_eq!(r.note_dirs, 0, "no note was left");
    assert_eq!(
        run.verdicts[night].reasons[0].kind,
        ReasonKind::EntropyTransitions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_attack_of_five_percent_a_night_is_flagged_on_its_first_night() {
    let run = sim::run(&small(Attack::Slow5PerNight, false)).await;
    let night = assert_flagged_exactly_from_attack(&run);
    assert_eq!(night, run.attack_start.unwrap());
    let clean = anomaly::last_clean(&run.observations, &run.verdicts).unwrap();
    assert_eq!(clean.snapshot, run.rows[night - 1].snapshot);
}

/// The full simulation of the targets: 60 ordinary days, then each
/// attack. `bench/ransomware/run.sh` runs it and keeps the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes: run by bench/ransomware/run.sh"]
async fn full_sixty_days_then_each_attack() {
    let files = std::env::var("CADANG_RANSOMWARE_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let days = std::env::var("CADANG_RANSOMWARE_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let out = std::env::var("CADANG_RANSOMWARE_OUT").unwrap_or_else(|_| "ransomware-run.md".into());
    let mut report = format!("Simulation: {files} files, {days} ordinary days, seed {SEED}.\n\n");
    for attack in [
        Attack::FullNewExtension,
        Attack::Intermittent4k,
        Attack::Slow5PerNight,
    ] {
        let started = std::time::Instant::now();
        let run = sim::run(&sim::Plan {
            files,
            days,
            seed: SEED,
            attack: Some(attack),
            day_after: true,
        })
        .await;
        let night = assert_flagged_exactly_from_attack(&run);
        let clean = anomaly::last_clean(&run.observations, &run.verdicts).unwrap();
        report.push_str(&format!(
            "## {}\n\nFlagged on day {} (attack night {}); last clean snapshot {} (day {}); run took {:.0} s.\n\nReasons: {}\n\nIndonesian: {}\n\n{}\n",
            attack.name(),
            run.rows[night].day,
            night - run.attack_start.unwrap() + 1,
            &clean.snapshot[..12],
            run.rows[night - 1].day,
            started.elapsed().as_secs_f64(),
            run.verdicts[night].summary(false),
            run.verdicts[night].summary(true),
            // The ordinary days are the same in every run: show them once.
            if report.contains("| day |") {
                sim::table(&run.rows[run.attack_start.unwrap() - 3..])
            } else {
                sim::table(&run.rows)
            }
        ));
        std::fs::write(&out, &report).unwrap();
    }
}
