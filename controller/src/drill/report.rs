//! A runner's drill report becomes the signed drill report: built from the
//! runner's measurements, the policy, the snapshot and the grant's audit
//! entries, judged (verification, check, RTO, RPO, DR damage), signed with
//! the controller's report key and stored — in the same transaction as the
//! agent's report — then written to the PD's repository at both sites.

use std::sync::Arc;

use cadang_proto::agent::{JobReport, ReportKind};
use cadang_proto::drill::{DrillFailure, DrillResult};
use chrono::{DateTime, Utc};
use redb::WriteTransaction;
use serde_json::json;

use crate::api::App;
use crate::audit::{entry::agent_actor, NewEntry};
use crate::error::{Error, Result};
use crate::report::drill::{
    CheckKind, CheckResult, DrillReport, FailReason, Mismatch, Person, Runner, SnapshotRef,
    Verdict, Verification,
};
use crate::report::{SignedDocument, SigningKey};
use crate::state::agents::AgentRecord;
use crate::state::drills::{self, DrillRecord, DrillState};

/// Drill reports among `reports` (already accepted, in `txn`): each one
/// becomes a stored signed report and a `drill.report` entry. Returns the
/// ids of the drills reported, for [`publish`] after the commit.
pub fn on_reports(
    app: &App,
    txn: &WriteTransaction,
    agent: &AgentRecord,
    reports: &[JobReport],
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for r in reports {
        let ReportKind::Drill { drill_id, result } = &r.kind else {
            continue;
        };
        let Some(mut record) = drills::drill_in(txn, drill_id)? else {
            tracing::warn!(drill = %drill_id, "a drill report names no drill this controller planned; ignored");
            continue;
        };
        if record.runner_agent_id.as_deref() != Some(agent.id.as_str())
            || record.state != DrillState::Queued
        {
            continue;
        }
        record.started = Some(r.started);
        record.finished = Some(r.finished);
        record.result = result.clone();
        let report = build(
            app,
            &record,
            result.as_ref(),
            &r.message,
            agent,
            app.clock.now(),
        );
        let doc = SignedDocument::sign_drill(&report, &signing_key(app)?)
            .map_err(|e| Error::State(format!("signing the drill report: {e}")))?;
        record.state = if report.verdict.passed {
            DrillState::Passed
        } else {
            DrillState::Failed
        };
        record.reasons = report.verdict.reasons.iter().map(describe).collect();
        record.has_report = true;
        drills::put_report(txn, &record.id, &doc.to_bytes())?;
        drills::put_drill(txn, &record)?;
        app.record_in(
            txn,
            NewEntry::new(
                &agent_actor(&agent.id),
                "drill.report",
                &format!("{}/drill/{}", record.pd, record.id),
                if report.verdict.passed {
                    "passed"
                } else {
                    "failed"
                },
            )
            .detail(json!({
                "report": report.report_id,
                "snapshot": record.snapshot,
                "restore_seconds": report.restore_seconds,
                "rto_seconds": report.rto_seconds,
                "reasons": record.reasons,
            })),
        )?;
        done.push(record.id.clone());
    }
    Ok(done)
}

fn signing_key(app: &App) -> Result<SigningKey> {
    SigningKey::from_hex(&hex::encode(app.signing_secret))
        .map_err(|e| Error::State(format!("the report signing key cannot be used: {e}")))
}

/// The report body, with its verdict.
pub fn build(
    app: &App,
    d: &DrillRecord,
    result: Option<&DrillResult>,
    message: &str,
    agent: &AgentRecord,
    now: DateTime<Utc>,
) -> DrillReport {
    let set = app.policies();
    let policy = set.as_ref().and_then(|s| s.pds.get(&d.pd));
    let empty = DrillResult::default();
    let r = result.unwrap_or(&empty);
    let report = DrillReport {
        report_id: format!("{}-{}", d.pd, d.id),
        regency: set
            .as_ref()
            .map(|s| s.regency.name.clone())
            .unwrap_or_default(),
        pd: d.pd.clone(),
        data_group: policy
            .map(|p| p.group.key().to_string())
            .unwrap_or_default(),
        custodian: Person {
            name: policy.map(|p| p.wali_data.name.clone()).unwrap_or_default(),
            nip: policy.map(|p| p.wali_data.nip.clone()).unwrap_or_default(),
        },
        snapshot: SnapshotRef {
            id: d.snapshot.clone().unwrap_or_default(),
            time: d.snapshot_time.unwrap_or(d.created),
        },
        source_host: d.source_host.clone(),
        site: policy.map(|p| p.dr_store.clone()).unwrap_or_default(),
        files: r.files,
        bytes: r.bytes,
        verification: verification(r),
        check: r.check.as_ref().map(check_result),
        restore_seconds: r.total_seconds(),
        rto_seconds: d.rto_seconds,
        recovery_point_age_seconds: d.recovery_point_age_seconds,
        rpo_seconds: d.rpo_seconds,
        verdict: Verdict {
            passed: false,
            reasons: Vec::new(),
        },
        runner: Runner {
            agent_id: agent.id.clone(),
            host: agent.host.clone(),
        },
        approvals: d.approvals.clone(),
        started: d.started.unwrap_or(d.created),
        finished: d.finished.unwrap_or(now),
        generated: now,
    };
    report.with_verdict(failure_reasons(result, r, message))
}

fn verification(r: &DrillResult) -> Verification {
    Verification {
        files_checked: r.files_checked,
        mismatches: r
            .mismatches
            .iter()
            .map(|(path, problem)| Mismatch {
                path: path.clone(),
                problem: problem.clone(),
            })
            .collect(),
    }
}

fn check_result(c: &cadang_proto::drill::CheckOutcome) -> CheckResult {
    CheckResult {
        kind: if c.kind == "command" {
            CheckKind::Command
        } else {
            CheckKind::PostgresQuery
        },
        run: c.run.clone(),
        expected: c.expected.clone(),
        got: c.got.clone(),
        passed: c.passed,
        output_excerpt: c.output_excerpt.clone(),
    }
}

/// Why the drill failed beyond what the verdict measures: no result at
/// all, or the failure the runner reported.
fn failure_reasons(
    result: Option<&DrillResult>,
    r: &DrillResult,
    message: &str,
) -> Vec<FailReason> {
    match (result, &r.failure) {
        (None, _) => vec![FailReason::RestoreFailed {
            detail: message.to_string(),
        }],
        (_, Some(DrillFailure::DrDamaged { detail })) => {
            vec![FailReason::DrDamaged {
                detail: detail.clone(),
            }]
        }
        (_, Some(DrillFailure::RestoreFailed { detail })) => {
            vec![FailReason::RestoreFailed {
                detail: detail.clone(),
            }]
        }
        (_, Some(DrillFailure::Grant { detail })) => vec![FailReason::RestoreFailed {
            detail: format!("the drill grant was refused by the runner: {detail}"),
        }],
        (_, None) => Vec::new(),
    }
}

/// A failure reason in words, for `cadang drill list` (the signed report
/// keeps the codes; its renderings word them in the reader's language).
pub fn describe(reason: &FailReason) -> String {
    match reason {
        FailReason::Verification { mismatches } => {
            format!("verification: {mismatches} file(s) differ from the snapshot")
        }
        FailReason::CheckFailed => "the check failed".into(),
        FailReason::OverRto { seconds, rto_seconds } => format!(
            "over the objective: restore, verification and check took {seconds} s, the RTO is {rto_seconds} s"
        ),
        FailReason::OverRpo { age_seconds, rpo_seconds } => format!(
            "no snapshot within the RPO: the newest at the DR site is {age_seconds} s old, the RPO is {rpo_seconds} s"
        ),
        FailReason::NoSnapshot => "no snapshot to drill with".into(),
        FailReason::DrDamaged { detail } => format!("the DR copy is damaged: {detail}"),
        FailReason::RestoreFailed { detail } => format!("the restore did not complete: {detail}"),
    }
}

/// [`publish`] for the drills among accepted reports.
pub async fn publish_reported(app: &Arc<App>, reports: &[JobReport]) {
    let ids: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.kind {
            ReportKind::Drill { drill_id, .. } => Some(drill_id.clone()),
            _ => None,
        })
        .collect();
    if !ids.is_empty() {
        publish(app, &ids).await;
    }
}

/// After the commit: the signed reports of `ids` into the PD's repository
/// at both sites, and the metrics. A store that cannot be written is
/// logged; the report stays in the state and in the API.
pub async fn publish(app: &Arc<App>, ids: &[String]) {
    for id in ids {
        let Ok(Some(record)) = app.state.read(|txn| drills::drill(txn, id)) else {
            continue;
        };
        count(app, &record.pd, record.state == DrillState::Passed);
        let Ok(Some(bytes)) = app.state.read(|txn| drills::report(txn, id)) else {
            continue;
        };
        let doc = match SignedDocument::parse(&bytes) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(drill = %id, error = %e, "the stored drill report cannot be read back");
                continue;
            }
        };
        match crate::publish::put_report(app, Some(&record.pd), &doc).await {
            Ok(placed) if crate::publish::Placed::all_ok(&placed) => {
                tracing::info!(drill = %id, "drill report written to both sites")
            }
            Ok(placed) => {
                for p in placed.iter().filter(|p| p.outcome.is_err()) {
                    tracing::error!(drill = %id, store = %p.store, error = ?p.outcome, "the drill report could not be written to this store; it is kept in the controller's state (GET /api/v1/drills/{id}/report.json)");
                }
            }
            Err(e) => {
                tracing::error!(drill = %id, error = %e, "the drill report could not be published")
            }
        }
    }
}

/// `cadang_drill_last{pd,result}` and `cadang_drill_failed_total{pd}`.
pub fn count(app: &App, pd: &str, passed: bool) {
    app.metrics.drill_finished(pd, passed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::drill::AuditRef;

    /// A drill of `files` files, `mismatches` of them differing.
    fn big_report(files: u64, mismatches: u64) -> DrillReport {
        let t: DateTime<Utc> = "2026-12-01T01:00:00Z".parse().unwrap();
        DrillReport {
            report_id: "DUKCAPIL-j000000000042".into(),
            regency: "Kabupaten Uji".into(),
            pd: "DUKCAPIL".into(),
            data_group: "kependudukan".into(),
            custodian: Person {
                name: "Wali".into(),
                nip: "198111072008042001".into(),
            },
            snapshot: SnapshotRef {
                id: "ab".repeat(32),
                time: t,
            },
            source_host: "siak-db".into(),
            site: "drc".into(),
            files,
            bytes: files * 40_000,
            verification: Verification {
                files_checked: files,
                mismatches: (0..mismatches)
                    .map(|i| Mismatch {
                        path: format!("/srv/arsip/{i:06}.pdf"),
                        problem: "content hash differs (chunk 0)".into(),
                    })
                    .collect(),
            },
            check: None,
            restore_seconds: 600,
            rto_seconds: 3600,
            recovery_point_age_seconds: 3600,
            rpo_seconds: 93600,
            verdict: Verdict {
                passed: false,
                reasons: Vec::new(),
            },
            runner: Runner {
                agent_id: "drc-1".into(),
                host: "drc".into(),
            },
            approvals: vec![AuditRef {
                seq: 7,
                hash: "00".repeat(32),
                action: "drill.grant".into(),
            }],
            started: t,
            finished: t,
            generated: t,
        }
        .with_verdict(Vec::new())
    }

    #[test]
    fn failure_reasons_are_worded_for_the_operator() {
        let r = big_report(10, 2);
        let words: Vec<String> = r.verdict.reasons.iter().map(describe).collect();
        assert_eq!(
            words,
            vec!["verification: 2 file(s) differ from the snapshot".to_string()]
        );
        let over = describe(&FailReason::OverRto {
            seconds: 5,
            rto_seconds: 1,
        });
        assert!(over.contains("over the objective"), "{over}");
    }

    /// bench/drill.sh: JSON (sign), HTML and PDF of a drill of 100,000
    /// files, every one a mismatch (the largest body a report can have).
    #[test]
    #[ignore = "benchmark: run by bench/drill.sh"]
    fn bench_render_100k_files() {
        let key = SigningKey::generate();
        let report = big_report(100_000, 100_000);
        let t = std::time::Instant::now();
        let doc = SignedDocument::sign_drill(&report, &key).unwrap();
        let json = doc.to_bytes();
        let json_s = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let html = crate::report::render_html(&doc, crate::report::Lang::Id).unwrap();
        let html_s = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let pdf = crate::report::render_pdf(&doc, crate::report::Lang::Id).unwrap();
        let pdf_s = t.elapsed().as_secs_f64();
        println!(
            "{}",
            json!({
                "files": 100_000, "mismatches": 100_000,
                "json_seconds": json_s, "json_bytes": json.len(),
                "html_seconds": html_s, "html_bytes": html.len(),
                "pdf_seconds": pdf_s, "pdf_bytes": pdf.len(),
            })
        );
    }
}
