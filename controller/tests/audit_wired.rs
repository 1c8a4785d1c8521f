//! The audit log in the running controller: real flows leave entries in
//! one chain, the segments reach both sites' stores (on the controller's
//! clock and at shutdown), an edited, removed, reordered or cut-off entry
//! in the store copy or in a state copy is found, and a compliance summary
//! of a controller that ran backups carries the right numbers.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cadang_controller::api::audit::AuditPage;
use cadang_controller::api::reports::{ComplianceRequest, ReportList, ReportMade};
use cadang_controller::audit::{self, AuditEntry, AuditLog, ChainProblem, NewEntry, Segment};
use cadang_proto::agent::{BackupStats, JobReport, Outcome, ReportAck, ReportBatch, ReportKind};
use cadang_proto::api::{BackupNowRequest, BackupNowResponse, Role};
use common::*;
use serde_json::json;

fn actions(page: &AuditPage) -> Vec<(String, String)> {
    page.entries
        .iter()
        .map(|e| (e.action.clone(), e.outcome.clone()))
        .collect()
}

fn has(page: &AuditPage, action: &str, outcome: &str) -> bool {
    page.entries
        .iter()
        .any(|e| e.action == action && e.outcome == outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_flows_leave_entries_in_one_verified_chain() {
    let c = Controller::start().await;
    let token = c.token(HOST, PD, 3600).await;
    let (resp, _agent) = enroll(&c, &AgentKeys::new(HOST), &token).await.unwrap();
    // A replayed token, and an expired one: refused, and logged.
    assert_eq!(
        status_of(enroll(&c, &AgentKeys::new(HOST), &token).await),
        403
    );
    let short = c.token(HOST, PD, 60).await;
    c.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(
        status_of(enroll(&c, &AgentKeys::new(HOST), &short).await),
        403
    );
    let _: BackupNowResponse = c
        .admin()
        .post(
            &format!("/api/v1/hosts/{HOST}/backup-now"),
            &BackupNowRequest { source: None },
        )
        .await
        .unwrap();
    let _: serde_json::Value = c
        .admin()
        .post("/api/v1/policies/reload", &())
        .await
        .unwrap();
    let custodian = c
        .user(
            "Nurhayati",
            Role::Custodian {
                pds: vec![PD.into()],
            },
        )
        .await;
    let _: serde_json::Value = c
        .admin()
        .post(&format!("/api/v1/hosts/{HOST}/revoke"), &())
        .await
        .unwrap();

    let page: AuditPage = c.admin().get("/api/v1/audit").await.unwrap();
    for (action, outcome) in [
        ("controller.start", "ok"),
        ("policy.load", "ok"),
        ("pd.register", "ok"),
        ("enroll-token.create", "ok"),
        ("agent.enroll", "ok"),
        ("agent.enroll", "refused"),
        ("backup.now", "ok"),
        ("policy.reload", "ok"),
        ("user.create", "ok"),
        ("agent.revoke", "ok"),
    ] {
        assert!(
            has(&page, action, outcome),
            "{action} {outcome} missing: {:?}",
            actions(&page)
        );
    }
    let refused: Vec<&AuditEntry> = page
        .entries
        .iter()
        .filter(|e| e.action == "agent.enroll" && e.outcome == "refused")
        .collect();
    assert_eq!(refused.len(), 2, "the replay and the expired token");
    assert!(refused[0].detail["reason"]
        .as_str()
        .unwrap()
        .contains("already used"));
    assert!(refused[1].detail["reason"]
        .as_str()
        .unwrap()
        .contains("expired"));
    let enrolled = page
        .entries
        .iter()
        .find(|e| e.action == "agent.enroll" && e.outcome == "ok")
        .unwrap();
    assert_eq!(enrolled.actor, format!("agent:{}", resp.agent_id));
    assert_eq!(enrolled.detail["pd"], json!(PD));
    // People act under their NIP; the token secret never appears.
    let made = page
        .entries
        .iter()
        .find(|e| e.action == "enroll-token.create")
        .unwrap();
    assert_eq!(made.actor, NIP);
    let text = serde_json::to_string(&page.entries).unwrap();
    assert!(
        !text.contains(&token) && !text.contains("cadang-api-1."),
        "secrets in the log"
    );

    // Filters, and a custodian sees their own PD's entries only.
    let only: AuditPage = c.admin().get("/api/v1/audit?action=agent.").await.unwrap();
    assert!(only.entries.iter().all(|e| e.action.starts_with("agent.")) && only.entries.len() == 4);
    let theirs: AuditPage = c.person(&custodian).get("/api/v1/audit").await.unwrap();
    assert!(has(&theirs, "agent.enroll", "ok") && has(&theirs, "pd.register", "ok"));
    assert!(
        theirs
            .entries
            .iter()
            .all(|e| audit_pd(e).as_deref() == Some(PD)),
        "{:?}",
        actions(&theirs)
    );
    assert!(!has(&theirs, "controller.start", "ok") && !has(&theirs, "user.create", "ok"));

    let report = c.app.audit.verify().unwrap();
    assert_eq!(report.last_seq, page.last_seq);
    c.stop().await;
}

/// A damage: its name, what it does to the entries, the problem expected, at which seq.
type Case = (
    &'static str,
    Box<dyn Fn(&mut Vec<AuditEntry>)>,
    Box<dyn Fn(&ChainProblem) -> bool>,
    u64,
);

fn audit_pd(e: &AuditEntry) -> Option<String> {
    cadang_controller::api::audit::entry_pd(e)
}

fn audit_dir(c_store_url: &str) -> PathBuf {
    Path::new(c_store_url).join(cadang_controller::publish::AUDIT_DIR)
}

/// Waits (real time, at most 10 s) until `dir` holds intact segments up to `seq`.
async fn wait_for_segments(dir: &Path, seq: u64, key: &cadang_controller::report::PublicKey) {
    for _ in 0..200 {
        if let Ok(r) = audit::segment::verify_dir(dir, key) {
            if r.last_seq >= seq {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no segments up to {seq} in {}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_reach_both_stores_and_every_kind_of_tampering_is_found() {
    let c = Controller::start().await;
    let token = c.token(HOST, PD, 3600).await;
    enroll(&c, &AgentKeys::new(HOST), &token).await.unwrap();
    let key = c.app.audit.public_key();
    let (onsite, dr) = (
        c.config.stores["pusat-data"].url.clone(),
        c.config.stores["drc"].url.clone(),
    );
    // The periodic run on the controller's clock.
    let before = c.app.audit.log().last().unwrap().unwrap();
    c.clock.advance(chrono::Duration::minutes(
        audit::ship::SHIP_EVERY_MINUTES + 1,
    ));
    wait_for_segments(&audit_dir(&onsite), before.seq, &key).await;
    wait_for_segments(&audit_dir(&dr), before.seq, &key).await;
    assert_eq!(
        std::fs::read_to_string(audit_dir(&dr).join(audit::ship::KEY_FILE))
            .unwrap()
            .trim(),
        key.to_hex()
    );
    // At shutdown the rest (up to controller.stop) follows.
    let state_path = c.config.resolve(&c.config.state);
    let (_tmp, _dir, _t, _config) = c.stop().await;
    let state = cadang_controller::state::State::open(&state_path).unwrap();
    let log = audit::RedbAuditLog::open(state).unwrap();
    let last = log.last().unwrap().unwrap();
    assert_eq!(last.action, "controller.stop");
    for store in [&onsite, &dr] {
        let r = audit::segment::verify_dir(&audit_dir(store), &key).unwrap();
        assert_eq!(
            (r.last_seq, r.last_hash.clone()),
            (last.seq, last.hash.clone()),
            "{store}"
        );
    }
    for store in ["pusat-data", "drc"] {
        assert_eq!(audit::ship::shipped(log.state(), store).unwrap(), last.seq);
    }

    // Tampering with a copy of the store's segments.
    let segments = audit::segment::read_dir(&audit_dir(&onsite)).unwrap();
    let mid = last.seq / 2;
    let cases: Vec<Case> = vec![
        (
            "edited",
            Box::new(move |es: &mut Vec<AuditEntry>| {
                es[mid as usize - 1].outcome = "tampered".into()
            }),
            Box::new(|p: &ChainProblem| *p == ChainProblem::Changed),
            mid,
        ),
        (
            "removed",
            Box::new(move |es: &mut Vec<AuditEntry>| {
                es.remove(mid as usize - 1);
            }),
            Box::new(|p: &ChainProblem| matches!(p, ChainProblem::Missing { .. })),
            mid,
        ),
        (
            "reordered",
            Box::new(move |es: &mut Vec<AuditEntry>| es.swap(mid as usize - 1, mid as usize)),
            Box::new(|p: &ChainProblem| matches!(p, ChainProblem::Reordered { .. })),
            mid,
        ),
        (
            "cut off",
            Box::new(|es: &mut Vec<AuditEntry>| {
                es.pop();
                es.pop();
            }),
            Box::new(|p: &ChainProblem| matches!(p, ChainProblem::Truncated { .. })),
            last.seq - 1,
        ),
    ];
    for (name, damage, expected, seq) in &cases {
        let copy = tempfile::tempdir().unwrap();
        let damaged = damage_segments(&segments, damage);
        audit::segment::write_dir(copy.path(), &damaged).unwrap();
        match audit::segment::verify_dir(copy.path(), &key) {
            Err(audit::AuditError::Chain(e)) => {
                assert!(expected(&e.problem), "{name}: {e}");
                assert_eq!(e.seq, *seq, "{name}: {e}");
            }
            other => panic!("{name}: not detected: {other:?}"),
        }
    }
}

/// The same segments, their entries damaged as one run (file boundaries kept where they can be).
fn damage_segments(segments: &[Segment], damage: &dyn Fn(&mut Vec<AuditEntry>)) -> Vec<Segment> {
    let mut entries: Vec<AuditEntry> = segments.iter().flat_map(|s| s.entries.clone()).collect();
    damage(&mut entries);
    // One file holding everything, with every checkpoint kept as a file of its own
    // (the last checkpoint travels with the entries).
    let mut out: Vec<Segment> = segments[..segments.len() - 1]
        .iter()
        .map(|s| Segment {
            entries: vec![],
            first_seq: s.last_seq,
            ..s.clone()
        })
        .collect();
    let last = segments.last().unwrap();
    out.push(Segment {
        first_seq: 1,
        entries,
        ..last.clone()
    });
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compliance_summary_counts_what_the_state_holds() {
    let c = Controller::start().await;
    let token = c.token(HOST, PD, 3600).await;
    let (_resp, agent) = enroll(&c, &AgentKeys::new(HOST), &token).await.unwrap();
    let queued: BackupNowResponse = c
        .admin()
        .post(
            &format!("/api/v1/hosts/{HOST}/backup-now"),
            &BackupNowRequest { source: None },
        )
        .await
        .unwrap();
    // The schedule is 01:00 WIB = 18:00 UTC; the controller started
    // 2026-03-02T00:00Z. One backup finishes after the 03-02 slot.
    let finished = at("2026-03-02T18:30:00Z");
    let report = JobReport {
        report_id: "r-1".into(),
        job_id: Some(queued.jobs[0].clone()),
        kind: ReportKind::Backup {
            source: "files".into(),
            slot: None,
            snapshot: Some("snap-1".into()),
            stats: BackupStats {
                files: 3,
                bytes_read: 300,
                bytes_added: 100,
                ..Default::default()
            },
            signals: None,
        },
        started: finished - chrono::Duration::minutes(5),
        finished,
        outcome: Outcome::Succeeded,
        message: String::new(),
    };
    let ack: ReportAck = agent
        .post(
            cadang_proto::paths::REPORTS,
            &ReportBatch {
                reports: vec![report],
            },
        )
        .await
        .unwrap();
    assert_eq!(ack.accepted.len(), 1);
    // Restores and drills as their flows record them.
    for (action, subject, detail, outcome) in [
        ("restore.request", "rr-1", json!({"pd": PD}), "ok"),
        ("restore.request", "rr-2", json!({"pd": PD}), "ok"),
        ("restore.request", "rr-3", json!({"pd": OTHER_PD}), "ok"),
        ("restore.approve", "rr-1", json!({"pd": PD}), "ok"),
        (
            "restore.reject",
            "rr-2",
            json!({"reason": "not needed"}),
            "ok",
        ),
        (
            "drill.report",
            "DUKCAPIL/drill/1",
            json!({"pd": PD}),
            "passed",
        ),
        (
            "drill.report",
            "DUKCAPIL/drill/2",
            json!({"pd": PD}),
            "failed",
        ),
    ] {
        c.app
            .record(NewEntry::new(NIP, action, subject, outcome).detail(detail))
            .unwrap();
    }
    c.clock.set(at("2026-03-05T12:00:00Z"));

    let made: ReportMade = c
        .admin()
        .post(
            "/api/v1/reports/compliance",
            &ComplianceRequest {
                pd: Some(PD.into()),
                from: "2026-03-01".into(),
                to: "2026-03-05".into(),
            },
        )
        .await
        .unwrap();
    let key = c.app.audit.public_key();
    let verified =
        cadang_controller::report::verify_file(made.json.as_bytes(), Some(&key)).unwrap();
    let summary = verified.document.summary().unwrap();
    assert_eq!(summary.pds.len(), 1);
    let f = &summary.pds[0];
    // Slots 03-02 and 03-03 18:00Z are closed (03-04's window is still open, no backup yet).
    assert_eq!((f.backups_scheduled, f.backups_done), (2, 1), "{f:?}");
    // Daily checks 03-02..03-05 00:00Z and 03-05 12:00Z; only 03-03 00:00Z is within 26 h.
    assert_eq!((f.rpo_met, f.rpo_checks), (1, 5), "{f:?}");
    assert_eq!((f.drills_run, f.drills_passed), (2, 1));
    assert_eq!(
        (
            f.restores_requested,
            f.restores_approved,
            f.restores_rejected
        ),
        (2, 1, 1)
    );
    // Published at both sites, in the PD's repository; listed and downloadable.
    assert!(
        made.published.iter().all(|p| p.ok) && made.published.len() == 2,
        "{:?}",
        made.published
    );
    for store in ["pusat-data", "drc"] {
        let base = Path::new(&c.config.stores[store].url)
            .join(PD)
            .join("reports/compliance-summary");
        let json = std::fs::read(base.join(format!("{}.json", made.id))).unwrap();
        assert_eq!(json, made.json.as_bytes());
        let pdf = std::fs::read(base.join(format!("{}.pdf", made.id))).unwrap();
        cadang_controller::report::verify_file(&pdf, Some(&key)).unwrap();
    }
    let list: ReportList = c.admin().get("/api/v1/reports").await.unwrap();
    assert_eq!(list.reports[0].id, made.id);
    assert_eq!(list.reports[0].published.len(), 2);
    let (status, pdf) = c
        .admin()
        .raw(
            "GET",
            &format!("/api/v1/reports/{}?format=pdf", made.id),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(pdf.starts_with(b"%PDF-"));
    let page: AuditPage = c
        .admin()
        .get("/api/v1/audit?action=report.compliance")
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 1);
    c.stop().await;
}
