//! Ransomware early warning inside the controller (issue 10), in process:
//! backup reports with signals are judged in the transaction that stores
//! them; a flag shows in `/api/v1/anomalies`, in the job's message, in the
//! audit log and in the metrics, and holds retention; clearing the hold
//! needs an operator and the PD's own custodian (403 for others).

mod common;

use cadang_controller::anomaly::HoldBook;
use cadang_controller::api::anomalies::{AnomalyList, ClearHold, ClearHoldResponse};
use cadang_controller::audit::{AuditEntry, AuditLog};
use cadang_proto::agent::{BackupStats, JobReport, Outcome, ReportAck, ReportBatch, ReportKind};
use cadang_proto::api::{CreateUser, CreateUserResponse, JobList, Role};
use cadang_proto::signals::BackupSignals;
use chrono::Duration;
use common::*;

fn signals(day: i64, attack: bool) -> serde_json::Value {
    let mut s = BackupSignals {
        has_parent: day > 0,
        files_before: 200,
        files_total: 200,
        files_changed: 4,
        ..Default::default()
    };
    if attack {
        s.files_changed = 180;
        s.entropy_checked = 180;
        s.entropy_transitions = 170;
        s.extension_changed = 180;
        s.known_extension_files = 180;
        s.ransom_notes = 4;
        s.ransom_note_dirs = 4;
    }
    s.finish().to_json()
}

fn report(day: i64, attack: bool) -> JobReport {
    let started = at("2026-03-01T16:00:00Z") + Duration::days(day);
    JobReport {
        report_id: format!("r-{day}"),
        job_id: None,
        kind: ReportKind::Backup {
            source: "files".into(),
            slot: None,
            snapshot: Some(format!("s{day}")),
            stats: BackupStats::default(),
            signals: Some(signals(day, attack)),
        },
        started,
        finished: started + Duration::minutes(5),
        outcome: Outcome::Succeeded,
        message: "backed up 200 files".into(),
    }
}

async fn user(c: &Controller, name: &str, nip: Option<&str>, role: Role) -> String {
    let r: CreateUserResponse = c
        .admin()
        .post(
            "/api/v1/users",
            &CreateUser {
                name: name.into(),
                nip: nip.map(str::to_string),
                role,
            },
        )
        .await
        .unwrap();
    r.token
}

fn entries(c: &Controller, action: &str) -> Vec<AuditEntry> {
    c.app
        .audit
        .log()
        .entries(1, u64::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

async fn clear(c: &Controller, token: &str) -> cadang_controller::Result<ClearHoldResponse> {
    c.person(token)
        .post(
            "/api/v1/anomalies/clear",
            &ClearHold {
                pd: PD.into(),
                host: HOST.into(),
                source: "files".into(),
            },
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flagged_report_holds_the_source_until_operator_and_custodian_clear_it() {
    let c = Controller::start().await;
    let token = c.token(HOST, PD, 3600).await;
    let (_, agent) = enroll(&c, &AgentKeys::new(HOST), &token).await.unwrap();
    // Four ordinary nights, the attack, an ordinary next night; one batch
    // each, as the agent sends them.
    for day in 0..6 {
        let _: ReportAck = agent
            .post(
                cadang_proto::paths::REPORTS,
                &ReportBatch {
                    reports: vec![report(day, day == 4)],
                },
            )
            .await
            .unwrap();
    }

    // The listing: flagged night with reasons, last clean snapshot, hold.
    let list: AnomalyList = c.admin().get("/api/v1/anomalies").await.unwrap();
    let s = list
        .sources
        .iter()
        .find(|s| s.host == HOST && s.source == "files")
        .expect("the source is listed");
    assert!(!s.last_flagged, "the ordinary next night is not flagged");
    assert_eq!(s.last_snapshot.as_deref(), Some("s5"));
    assert_eq!(s.flags.len(), 1, "{:?}", s.flags);
    assert_eq!(s.flags[0].snapshot, "s4");
    let kinds: Vec<&str> = s.flags[0].reasons.iter().map(|r| r.kind.as_str()).collect();
    for want in ["entropy-transitions", "known-extensions", "ransom-notes"] {
        assert!(kinds.contains(&want), "{want} missing: {kinds:?}");
    }
    assert_eq!(s.last_clean.as_deref(), Some("s3"));
    let hold = s.hold.as_ref().expect("a hold");
    assert!(hold.active);
    assert_eq!(hold.flagged_snapshots, vec!["s4".to_string()]);

    // The job's message, the audit entry, the metrics, retention's view.
    let jobs: JobList = c.admin().get("/api/v1/jobs?kind=backup").await.unwrap();
    let night = jobs
        .jobs
        .iter()
        .find(|j| j.snapshot.as_deref() == Some("s4"))
        .unwrap();
    assert!(
        night
            .message
            .starts_with("backed up 200 files; flagged: ransomware suspected: "),
        "{}",
        night.message
    );
    let others_flagged = jobs
        .jobs
        .iter()
        .filter(|j| j.message.contains("flagged"))
        .count();
    assert_eq!(others_flagged, 1);
    let flags = entries(&c, "anomaly.flag");
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!(flags[0].subject, format!("{PD}/{HOST}/files"));
    assert_eq!(flags[0].detail["snapshot"], "s4");
    assert_eq!(flags[0].detail["last_clean"], "s3");
    let held = held_now(&c, PD);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].flagged, vec!["s4".to_string()]);
    assert_eq!(held[0].since, report(4, true).started);
    assert!(held[0].known.contains(&"s0".to_string()));
    assert!(held_now(&c, OTHER_PD).is_empty());
    let metrics = c.app.metrics.render(&c.app).unwrap();
    let line =
        format!("cadang_anomaly_hold_active{{pd=\"{PD}\",host=\"{HOST}\",source=\"files\"}} 1");
    assert!(metrics.contains(&line), "{metrics}");

    // Clearing: the auditor and the other PD's custodian are refused.
    let operator = user(&c, "operator", Some("199001152015031002"), Role::Operator).await;
    let wali = user(
        &c,
        "wali",
        Some("198111072008042001"),
        Role::Custodian {
            pds: vec![PD.into()],
        },
    )
    .await;
    let other = user(
        &c,
        "wali-lain",
        Some("198702202012122003"),
        Role::Custodian {
            pds: vec![OTHER_PD.into()],
        },
    )
    .await;
    let auditor = user(&c, "inspektorat", None, Role::Auditor).await;
    assert_eq!(status_of(clear(&c, &auditor).await), 403);
    assert_eq!(status_of(clear(&c, &other).await), 403);
    // The custodian first, then the operator: the hold ends with the second.
    let first = clear(&c, &wali).await.unwrap();
    assert!(!first.cleared);
    assert_eq!(first.waiting_for.as_deref(), Some("operator"));
    assert_eq!(held_now(&c, PD).len(), 1, "one agreement does not clear");
    let second = clear(&c, &operator).await.unwrap();
    assert!(second.cleared, "{}", second.message);
    assert!(held_now(&c, PD).is_empty());
    assert_eq!(status_of(clear(&c, &operator).await), 404);
    let request = entries(&c, "hold.clear.request");
    let cleared = entries(&c, "hold.clear");
    assert_eq!(request.len(), 1);
    assert_eq!(cleared.len(), 1);
    assert_eq!(request[0].actor, "198111072008042001");
    assert_eq!(cleared[0].actor, "199001152015031002");
    let metrics = c.app.metrics.render(&c.app).unwrap();
    assert!(metrics.contains(&line.replace("} 1", "} 0")), "{metrics}");
}

/// The holds retention would see now for `pd`.
fn held_now(c: &Controller, pd: &str) -> Vec<cadang_controller::anomaly::HeldSource> {
    cadang_controller::anomaly::StateHolds(c.app.state.clone())
        .holds(pd)
        .unwrap()
}
