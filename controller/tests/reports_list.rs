//! `GET /api/v1/reports` lists drill reports beside compliance summaries:
//! kind, PD, time, pass/fail and a download link that works; a drill
//! without a signed report yet is not listed, and a custodian sees their
//! own PDs' drills only.

mod common;
mod report_common;

use cadang_controller::api::reports::ReportList;
use cadang_controller::report::SignedDocument;
use cadang_controller::state::drills::{self, DrillRecord};
use cadang_proto::api::Role;
use common::*;

/// A drill of `pd` in `state`, with its signed report when it has one.
fn drill(c: &Controller, id: &str, pd: &str, state: &str, finished: &str) -> Option<Vec<u8>> {
    let has_report = state != "queued";
    let record: DrillRecord = serde_json::from_value(serde_json::json!({
        "id": id, "pd": pd, "runner": "drill-sandbox-1", "runner_agent_id": "a-17",
        "rto_seconds": 14400, "rpo_seconds": 86400, "created": "2026-03-02T01:00:00Z",
        "state": state, "finished": if has_report { Some(finished) } else { None },
        "has_report": has_report,
    }))
    .expect("a drill record from JSON");
    let signed = has_report.then(|| {
        SignedDocument::sign_drill(&report_common::drill(0, 600), &report_common::key())
            .unwrap()
            .to_bytes()
    });
    let bytes = signed.clone();
    c.app
        .state
        .write(move |txn| {
            drills::put_drill(txn, &record)?;
            if let Some(b) = &bytes {
                drills::put_report(txn, &record.id, b)?;
            }
            Ok(())
        })
        .unwrap();
    signed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_reports_are_listed_with_their_verdict_and_a_working_link() {
    let c = Controller::start().await;
    let passed = drill(&c, "drill-1", PD, "passed", "2026-03-02T02:00:00Z").unwrap();
    drill(&c, "drill-2", PD, "failed", "2026-03-03T02:00:00Z").unwrap();
    drill(&c, "drill-3", OTHER_PD, "passed", "2026-03-04T02:00:00Z").unwrap();
    assert!(drill(&c, "drill-4", PD, "queued", "").is_none());

    let list: ReportList = c.admin().get("/api/v1/reports").await.unwrap();
    let seen: Vec<(&str, &str, Option<&str>, Option<bool>)> = list
        .reports
        .iter()
        .map(|r| (r.id.as_str(), r.kind.as_str(), r.pd.as_deref(), r.passed))
        .collect();
    // Newest first; the queued drill has no report yet.
    assert_eq!(
        seen,
        vec![
            ("drill-3", "drill-report", Some(OTHER_PD), Some(true)),
            ("drill-2", "drill-report", Some(PD), Some(false)),
            ("drill-1", "drill-report", Some(PD), Some(true)),
        ]
    );
    let first = list.reports.iter().find(|r| r.id == "drill-1").unwrap();
    assert_eq!(first.generated, at("2026-03-02T02:00:00Z"));
    assert_eq!(first.by, "agent:a-17");
    assert_eq!(first.download, "/api/v1/drills/drill-1/report.json");
    let (status, body) = c.admin().raw("GET", &first.download, None).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body, passed,
        "the link serves the signed report byte for byte"
    );

    // A custodian of DINKES sees DINKES's drill only.
    let token = c
        .user(
            "wali dinkes",
            Role::Custodian {
                pds: vec![OTHER_PD.into()],
            },
        )
        .await;
    let theirs: ReportList = c.person(&token).get("/api/v1/reports").await.unwrap();
    let ids: Vec<&str> = theirs.reports.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["drill-3"]);
    c.stop().await;
}
