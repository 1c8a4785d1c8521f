//! A drill report and a compliance summary as a drill flow would make them.
#![allow(dead_code)]

use cadang_controller::report::drill::*;
use cadang_controller::report::summary::{ComplianceSummary, PdFigures};
use cadang_controller::report::SigningKey;
use chrono::{DateTime, TimeZone, Utc};

pub fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, h, m, 0).unwrap()
}

/// A fixed key, so renderings can be compared across runs.
pub fn key() -> SigningKey {
    SigningKey::from_hex(&"11".repeat(32)).unwrap()
}

pub fn other_key() -> SigningKey {
    SigningKey::from_hex(&"22".repeat(32)).unwrap()
}

pub fn drill(mismatches: usize, restore_seconds: u64) -> DrillReport {
    DrillReport {
        report_id: "drill-DISDUKCAPIL-42".into(),
        regency: "Kabupaten Contoh".into(),
        pd: "DISDUKCAPIL".into(),
        data_group: "kependudukan".into(),
        custodian: Person {
            name: "Siti Rahmawati <Wali>".into(),
            nip: "198001012005012001".into(),
        },
        snapshot: SnapshotRef {
            id: "5f2c9a".into(),
            time: at(1, 0),
        },
        source_host: "db-dukcapil".into(),
        site: "drc".into(),
        files: 100_000,
        bytes: 12_345_678_901,
        verification: Verification {
            files_checked: 100_000,
            mismatches: (0..mismatches)
                .map(|i| Mismatch {
                    path: format!("/srv/data/arsip/{i:06}.pdf"),
                    problem: "content hash differs".into(),
                })
                .collect(),
        },
        check: Some(CheckResult {
            kind: CheckKind::PostgresQuery,
            run: "SELECT count(*) FROM penduduk".into(),
            expected: "≥ 1000".into(),
            got: "125034".into(),
            passed: true,
            output_excerpt: " count\n--------\n 125034\n(1 row)".into(),
        }),
        restore_seconds,
        rto_seconds: 4 * 3600,
        recovery_point_age_seconds: 7 * 3600,
        rpo_seconds: 24 * 3600,
        verdict: Verdict {
            passed: false,
            reasons: vec![],
        },
        runner: Runner {
            agent_id: "a-17".into(),
            host: "drill-sandbox-1".into(),
        },
        approvals: vec![AuditRef {
            seq: 12,
            hash: "ab".repeat(32),
            action: "drill-grant.approve".into(),
        }],
        started: at(8, 0),
        finished: at(8, 30),
        generated: at(8, 31),
    }
    .with_verdict(vec![])
}

pub fn summary() -> ComplianceSummary {
    ComplianceSummary {
        summary_id: "summary-2026-11".into(),
        regency: "Kabupaten Contoh".into(),
        period_start: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        period_end: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
        pds: vec![
            PdFigures {
                pd: "DISDUKCAPIL".into(),
                backups_scheduled: 30,
                backups_done: 29,
                rpo_met: 29,
                rpo_checks: 30,
                drills_run: 4,
                drills_passed: 3,
                restores_requested: 2,
                restores_approved: 1,
                restores_rejected: 1,
            },
            PdFigures {
                pd: "BAPPEDA".into(),
                backups_scheduled: 30,
                backups_done: 30,
                rpo_met: 30,
                rpo_checks: 30,
                drills_run: 1,
                drills_passed: 1,
                ..PdFigures::default()
            },
        ],
        generated: at(9, 0),
    }
}
