//! A log of 25 entries with checkpoints every 10 and one at the end.
#![allow(dead_code)]

use cadang_controller::audit::{AuditLog, Auditor, NewEntry};
use cadang_controller::report::SigningKey;
use chrono::{DateTime, Duration, TimeZone, Utc};

pub fn key() -> SigningKey {
    SigningKey::from_hex(&"11".repeat(32)).unwrap()
}

pub fn other_key() -> SigningKey {
    SigningKey::from_hex(&"22".repeat(32)).unwrap()
}

pub fn t(i: u64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 1, 0, 0).unwrap() + Duration::seconds(i as i64 * 60)
}

/// Entries 1..=25: checkpoints at 10 and 20 (every 10), and at 25.
pub fn fill<L: AuditLog>(auditor: &Auditor<L>) {
    let actions = [
        "restore.request",
        "restore.approve",
        "envelope.deliver",
        "drill.report",
    ];
    for i in 1..=25u64 {
        let actor = if i % 2 == 0 {
            "198001012005012001".to_string()
        } else {
            format!("agent:a-{i}")
        };
        let new = NewEntry::new(
            &actor,
            actions[(i % 4) as usize],
            &format!("DISDUKCAPIL/restore/{i}"),
            "ok",
        )
        .detail(serde_json::json!({ "n": i }));
        auditor.record(new, t(i)).unwrap();
    }
    auditor.checkpoint(t(26)).unwrap();
}
