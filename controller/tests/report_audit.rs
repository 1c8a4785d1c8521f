//! Reports and site jobs through the state writer: an accepted backup
//! report leaves a `backup.report` entry, a finished replication a
//! `replication.run` entry, both in the transaction that stores them, and
//! the audit chain verifies; the PD's backup success survives a restart
//! (it is no longer part of a whole-RunBook write per report); fleet
//! status shows the report at once (from memory), or, served from a
//! document built in the background (`[fleet] status_refresh_ms`), within
//! the refresh period.

mod common;

use std::sync::{Arc, Mutex};

use cadang_controller::audit::AuditEntry;
use cadang_controller::client::ApiClient;
use cadang_controller::engine::{Clock, JobError, JobRunner, Report, SiteJob};
use cadang_proto::agent::{
    BackupStats, EnrollResponse, JobReport, Outcome, ReportAck, ReportBatch, ReportKind,
};
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

fn entries(c: &Controller) -> Vec<AuditEntry> {
    use cadang_controller::audit::AuditLog;
    c.app.audit.log().entries(1, u64::MAX).unwrap()
}

fn report(job: String, snapshot: Option<&str>, outcome: Outcome) -> JobReport {
    JobReport {
        report_id: format!("r-{job}"),
        job_id: Some(job),
        kind: ReportKind::Backup {
            source: "files".into(),
            slot: None,
            snapshot: snapshot.map(String::from),
            stats: BackupStats::default(),
            signals: None,
        },
        started: at("2026-03-02T15:30:10Z"),
        finished: at("2026-03-02T15:31:00Z"),
        outcome,
        message: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_and_a_site_job_leave_their_entries_and_the_chain_verifies() {
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
    let (resp, agent, job) = enrolled_with_job(&c).await;
    let r = report(job.clone(), Some("s1"), Outcome::Succeeded);
    send(&agent, &r).await;

    // Acknowledged means committed, with its entry.
    let reported: Vec<AuditEntry> = entries(&c)
        .into_iter()
        .filter(|e| e.action == "backup.report")
        .collect();
    assert_eq!(reported.len(), 1, "{reported:?}");
    let e = &reported[0];
    assert_eq!(e.actor, format!("agent:{}", resp.agent_id));
    assert_eq!(e.subject, format!("{PD}/{HOST}/files"));
    assert_eq!(e.outcome, "ok");
    assert_eq!(e.detail["snapshot"], "s1");
    assert_eq!(e.detail["job"], job.as_str());
    // Fleet status (from memory) shows the report at once.
    let fleet: FleetStatus = c.admin().get("/api/v1/fleet").await.unwrap();
    let pd = fleet.pds.iter().find(|p| p.pd == PD).unwrap();
    assert_eq!(pd.agents[0].sources[0].last_success, Some(r.finished));

    // A resent report is acknowledged again but recorded once.
    let _: ReportAck = agent
        .post(
            cadang_proto::paths::REPORTS,
            &ReportBatch {
                reports: vec![r.clone()],
            },
        )
        .await
        .unwrap();
    let count =
        |c: &Controller, action: &str| entries(c).iter().filter(|e| e.action == action).count();
    assert_eq!(count(&c, "backup.report"), 1);

    // Past the replication delay: the pool replicates, the result is
    // recorded with its entry.
    c.clock.set(at("2026-03-02T16:00:00Z"));
    let mut finished = false;
    for _ in 0..100 {
        let jobs: JobList = c.admin().get("/api/v1/jobs?kind=replicate").await.unwrap();
        if jobs.jobs.iter().any(|j| j.state == "finished") {
            finished = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(finished, "a replication job finished");
    let runs: Vec<AuditEntry> = entries(&c)
        .into_iter()
        .filter(|e| e.action == "replication.run")
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].actor, "controller");
    assert_eq!(runs[0].subject, format!("{PD}/drc"));
    assert_eq!(runs[0].outcome, "ok");
    assert_eq!(runs[0].detail["from"], "pusat-data");
    assert_eq!(runs[0].detail["result"]["packs"], 3);

    let all = entries(&c);
    let verified = c.app.audit.verify().expect("the chain verifies");
    assert_eq!(verified.entries, all.len() as u64);
    assert_eq!(verified.last_seq, all.last().unwrap().seq);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backup_is_recorded_failed_and_a_success_survives_a_restart() {
    let (tmp, dir, admin, config) = prepare().await;
    let c = Controller::start_in(tmp, dir, admin, config, at("2026-03-02T15:30:00Z")).await;
    c.register_pd(&init_repository(&c.config, PD).await).await;
    let token = c.token(HOST, PD, 3600).await;
    let keys = AgentKeys::new(HOST);
    let (resp, agent) = enroll(&c, &keys, &token).await.unwrap();
    let backup_now = || async {
        let q: BackupNowResponse = c
            .admin()
            .post(
                &format!("/api/v1/hosts/{HOST}/backup-now"),
                &BackupNowRequest::default(),
            )
            .await
            .unwrap();
        q.jobs[0].clone()
    };
    let send = |r: JobReport| {
        let agent = &agent;
        async move {
            let _: ReportAck = agent
                .post(
                    cadang_proto::paths::REPORTS,
                    &ReportBatch { reports: vec![r] },
                )
                .await
                .unwrap();
        }
    };
    let first = backup_now().await;
    assert_eq!(
        poll_jobs(&agent, &resp.policy.version, 0).await.jobs.len(),
        1
    );
    send(report(first, None, Outcome::Failed)).await;
    let second = backup_now().await;
    assert_eq!(
        poll_jobs(&agent, &resp.policy.version, 0).await.jobs.len(),
        1
    );
    send(report(second, Some("s2"), Outcome::Succeeded)).await;
    let outcomes: Vec<String> = entries(&c)
        .into_iter()
        .filter(|e| e.action == "backup.report")
        .map(|e| e.outcome)
        .collect();
    assert_eq!(outcomes, vec!["failed".to_string(), "ok".to_string()]);
    let verified = c.app.audit.verify().expect("the chain verifies");
    assert_eq!(verified.entries, entries(&c).len() as u64);

    let (tmp, dir, admin, config) = c.stop().await;
    let c = Controller::start_in(tmp, dir, admin, config, at("2026-03-02T15:40:00Z")).await;
    let book = c.app.runbook.lock().unwrap().clone();
    assert_eq!(
        book.last_backup_success.get(PD),
        Some(&at("2026-03-02T15:31:00Z"))
    );
    // The fleet view is rebuilt from the state at start.
    let fleet: FleetStatus = c.admin().get("/api/v1/fleet").await.unwrap();
    let pd = fleet.pds.iter().find(|p| p.pd == PD).unwrap();
    assert_eq!(pd.agents.len(), 1);
    assert_eq!(
        pd.agents[0].sources[0].last_success,
        Some(at("2026-03-02T15:31:00Z"))
    );
    c.stop().await;
}

/// A controller with fleet status served from a document rebuilt every
/// `refresh_ms`, one enrolled agent, and its backup-now job handed out.
async fn served_fleet(refresh_ms: u64) -> (Controller, ApiClient, JobReport) {
    let (tmp, dir, admin, mut config) = prepare().await;
    config.fleet.status_refresh_ms = refresh_ms;
    let c = Controller::start_with(tmp, dir, admin, config, at("2026-03-02T15:30:00Z"), None).await;
    let (_, agent, job) = enrolled_with_job(&c).await;
    (c, agent, report(job, Some("s1"), Outcome::Succeeded))
}

/// Registers the PD, enrolls its agent, asks for a backup now and has the
/// agent poll: the enrollment, the agent's client and the job handed out.
async fn enrolled_with_job(c: &Controller) -> (EnrollResponse, ApiClient, String) {
    c.register_pd(&init_repository(&c.config, PD).await).await;
    let token = c.token(HOST, PD, 3600).await;
    let keys = AgentKeys::new(HOST);
    let (resp, agent) = enroll(c, &keys, &token).await.unwrap();
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
    (resp, agent, job.id)
}

async fn last_success(c: &Controller) -> Option<chrono::DateTime<chrono::Utc>> {
    let fleet: FleetStatus = c.admin().get("/api/v1/fleet").await.unwrap();
    let pd = fleet.pds.iter().find(|p| p.pd == PD).unwrap();
    pd.agents[0].sources.first().and_then(|s| s.last_success)
}

async fn send(agent: &ApiClient, r: &JobReport) {
    let ack: ReportAck = agent
        .post(
            cadang_proto::paths::REPORTS,
            &ReportBatch {
                reports: vec![r.clone()],
            },
        )
        .await
        .unwrap();
    assert_eq!(ack.accepted, vec![r.report_id.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_the_refresh_period_fleet_status_is_the_document_already_built() {
    // A minute: nothing rebuilds it during the test.
    let (c, agent, r) = served_fleet(60_000).await;
    assert_eq!(last_success(&c).await, None);
    send(&agent, &r).await;
    assert_eq!(
        last_success(&c).await,
        None,
        "a call inside the refresh period must not build its own document"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_reaches_the_served_fleet_status_within_a_few_refresh_periods() {
    let (c, agent, r) = served_fleet(200).await;
    assert_eq!(last_success(&c).await, None);
    send(&agent, &r).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if last_success(&c).await == Some(r.finished) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the report never reached the served fleet status"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    c.stop().await;
}
