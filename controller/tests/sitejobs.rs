//! Site jobs: a successful backup makes replication due inside its window;
//! the pool runs it and the result is recorded as a job.

mod common;

use std::sync::{Arc, Mutex};

use cadang_controller::engine::{Clock, JobError, JobRunner, Report, SiteJob, SiteJobKind};
use cadang_proto::agent::{BackupStats, JobReport, Outcome, ReportAck, ReportBatch, ReportKind};
use cadang_proto::api::{BackupNowRequest, BackupNowResponse, FleetStatus, JobList};
use common::*;

#[derive(Default)]
struct Recorder(Mutex<Vec<SiteJob>>);

#[async_trait::async_trait]
impl JobRunner for Recorder {
    async fn run(&self, job: &SiteJob, _clock: Arc<dyn Clock>) -> Result<Report, JobError> {
        self.0.lock().unwrap().push(job.clone());
        Ok(Report {
            problems: false,
            message: "copied 3 packs".into(),
            detail: serde_json::json!({"packs": 3}),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_inside_the_window_is_replicated_by_the_pool_and_recorded() {
    let (tmp, dir, admin, config) = prepare().await;
    let runner = Arc::new(Recorder::default());
    // 22:30 WIB: inside the 22:00-05:00 replication window.
    let c = Controller::start_with(
        tmp,
        dir,
        admin,
        config,
        at("2026-03-02T15:30:00Z"),
        Some(runner.clone()),
    )
    .await;
    c.register_pd(&init_repository(&c.config, PD).await).await;
    let token = c.token(HOST, PD, 3600).await;
    let keys = AgentKeys::new(HOST);
    let (resp, agent) = enroll(&c, &keys, &token).await.unwrap();
    let q: BackupNowResponse = c
        .admin()
        .post(
            &format!("/api/v1/hosts/{HOST}/backup-now"),
            &BackupNowRequest::default(),
        )
        .await
        .unwrap();
    let job = poll_jobs(&agent, &resp.policy.version, 0)
        .await
        .jobs
        .remove(0);
    assert_eq!(job.id, q.jobs[0]);
    let end = at("2026-03-02T15:31:00Z");
    let report = JobReport {
        report_id: "r-1".into(),
        job_id: Some(job.id),
        kind: ReportKind::Backup {
            source: "files".into(),
            slot: None,
            snapshot: Some("s1".into()),
            stats: BackupStats::default(),
            signals: None,
        },
        started: at("2026-03-02T15:30:10Z"),
        finished: end,
        outcome: Outcome::Succeeded,
        message: String::new(),
    };
    let _: ReportAck = agent
        .post(
            cadang_proto::paths::REPORTS,
            &ReportBatch {
                reports: vec![report],
            },
        )
        .await
        .unwrap();
    assert!(
        runner.0.lock().unwrap().is_empty(),
        "replication waits for its delay after the backup"
    );
    // Past the 15-minute delay (and the site-job jitter).
    c.clock.set(at("2026-03-02T16:00:00Z"));
    let mut replicate = None;
    for _ in 0..100 {
        let jobs: JobList = c.admin().get("/api/v1/jobs?kind=replicate").await.unwrap();
        if let Some(j) = jobs.jobs.into_iter().find(|j| j.state == "finished") {
            replicate = Some(j);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let replicate = replicate.expect("a replication job finished");
    assert_eq!(replicate.outcome.as_deref(), Some("succeeded"));
    assert_eq!(replicate.message, "copied 3 packs");
    let ran = runner.0.lock().unwrap().clone();
    assert_eq!(ran.len(), 1);
    match &ran[0].kind {
        SiteJobKind::Replicate { from, to, .. } => {
            assert_eq!(
                (from.name.as_str(), to.name.as_str()),
                ("pusat-data", "drc")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(c
        .app
        .runbook
        .lock()
        .unwrap()
        .last_replication
        .contains_key(PD));
    let fleet: FleetStatus = c.admin().get("/api/v1/fleet").await.unwrap();
    let dr = &fleet.pds.iter().find(|p| p.pd == PD).unwrap().sites[1];
    assert_eq!(dr.site, "dr");
    assert!(dr.rpo_ok && dr.lag_seconds.is_some(), "{dr:?}");
    // Nothing new was backed up: no second replication.
    c.clock.advance(chrono::Duration::minutes(30));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(runner.0.lock().unwrap().len(), 1);
    c.stop().await;
}
