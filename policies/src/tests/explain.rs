use chrono::{TimeZone, Utc};

use super::*;
use crate::explain::{explain, JobKind};

#[test]
fn two_in_the_morning_wita_is_six_in_the_evening_utc_the_day_before() {
    let set = crate::load_dir(&example_dir()).unwrap_or_else(|d| panic!("{}", render(&d)));
    // 2026-12-03 10:00 UTC = 18:00 WITA.
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
    let e = explain(&set, "DISDUKCAPIL", now, 3).expect("PD exists");
    assert_eq!(e.abbreviation, "WITA");
    let siak = e
        .jobs
        .iter()
        .find(|j| j.name == "siak-db-01/siak")
        .expect("backup job");
    assert_eq!(siak.kind, JobKind::Backup);
    assert_eq!(siak.schedule, "0 2 * * *");
    let runs: Vec<(&str, &str)> = siak
        .runs
        .iter()
        .map(|r| (r.start.local.as_str(), r.start.utc.as_str()))
        .collect();
    assert_eq!(
        runs,
        [
            ("2026-12-04 02:00 WITA", "2026-12-03 18:00 UTC"),
            ("2026-12-05 02:00 WITA", "2026-12-04 18:00 UTC"),
            ("2026-12-06 02:00 WITA", "2026-12-05 18:00 UTC"),
        ]
    );
    assert_eq!(
        siak.runs[0].start.at,
        Utc.with_ymd_and_hms(2026, 12, 3, 18, 0, 0).unwrap()
    );
    let text = e.to_string();
    assert!(
        text.contains("  2026-12-04 02:00 WITA  (2026-12-03 18:00 UTC)\n"),
        "{text}"
    );
}

#[test]
fn every_job_of_the_pd_is_listed() {
    let set = crate::load_dir(&example_dir()).unwrap_or_else(|d| panic!("{}", render(&d)));
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
    let e = explain(&set, "DISDUKCAPIL", now, 2).unwrap();
    let kinds: Vec<JobKind> = e.jobs.iter().map(|j| j.kind).collect();
    assert_eq!(
        kinds,
        [
            JobKind::Backup,
            JobKind::Backup,
            JobKind::Replication,
            JobKind::Verification,
            JobKind::Retention,
            JobKind::Drill
        ]
    );
    let replication = &e.jobs[2];
    assert_eq!(replication.schedule, "22:00-05:00");
    assert_eq!(replication.runs[0].start.local, "2026-12-03 22:00 WITA");
    assert_eq!(
        replication.runs[0].end.as_ref().unwrap().utc,
        "2026-12-03 21:00 UTC"
    );
    // Drill: 1st of the month 09:00 WITA.
    assert_eq!(e.jobs[5].runs[0].start.local, "2027-01-01 09:00 WITA");
    assert!(explain(&set, "NOPE", now, 2).is_none());
}

#[test]
fn jakarta_and_jayapura_show_wib_and_wit() {
    for (zone, abbr, utc) in [
        ("Asia/Jakarta", "WIB", "2026-12-03 19:00 UTC"),
        ("Asia/Jayapura", "WIT", "2026-12-03 17:00 UTC"),
    ] {
        let regency = REGENCY
            .replace("Asia/Makassar", zone)
            .replace("0 1 * * *", "0 2 * * *");
        let set = valid(&[("regency.toml", &regency), ("pd/a.toml", &pd("A", "h", ""))]);
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
        let e = explain(&set, "A", now, 1).unwrap();
        assert_eq!(e.abbreviation, abbr);
        assert_eq!(
            e.jobs[0].runs[0].start.local,
            format!("2026-12-04 02:00 {abbr}")
        );
        assert_eq!(e.jobs[0].runs[0].start.utc, utc);
    }
}
