//! Enrollment over real TLS, and every way it must be refused without
//! changing the state.

mod common;

use cadang_controller::engine::Clock;
use cadang_proto::agent::{
    BackupStats, JobKind, JobReport, Outcome, PollRequest, PollResponse, ReportAck, ReportBatch,
    ReportKind,
};
use cadang_proto::api::{BackupNowRequest, BackupNowResponse, FleetStatus, JobList, SnapshotList};
use common::*;

fn poll(version: &str) -> PollRequest {
    PollRequest {
        proto: cadang_proto::PROTO_VERSION,
        policy_version: version.into(),
        running: vec![],
        wait_seconds: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolls_over_mtls_then_polls_jobs_and_reports_once() {
    let c = Controller::start().await;
    let token = c.token(HOST, PD, 3600).await;
    let keys = AgentKeys::new(HOST);
    let (resp, agent) = enroll(&c, &keys, &token).await.unwrap();
    assert_eq!((resp.host.as_str(), resp.pd.as_str()), (HOST, PD));
    assert!(
        resp.store.url.ends_with("/onsite/DUKCAPIL"),
        "{}",
        resp.store.url
    );
    assert_eq!(resp.policy.sources[0].name, "files");
    assert_eq!(resp.policy.zone, "Asia/Jakarta");
    // The token carried the fingerprint of the CA the response names.
    let fp = token
        .parse::<cadang_proto::EnrollmentToken>()
        .unwrap()
        .ca_fingerprint;
    let der = cadang_controller::ca::first_cert_der(&resp.ca_cert_pem).unwrap();
    assert_eq!(cadang_controller::ca::fingerprint(&der), fp);
    // The agent's signing key is certified by the controller in the repository.
    let repo_url = cadang_controller::engine::pd_repo_url(&c.config.stores["pusat-data"].url, PD);
    let repo = cadang_core::Repository::open(cadang_s3::open_store(&repo_url, None).unwrap())
        .await
        .unwrap();
    let keys_in_repo = repo.agent_keys().await.unwrap();
    let rec = &keys_in_repo[&keys.signing_public_key];
    assert!(rec.certification.is_some());

    // A stale policy version gets the policy; the current one does not.
    let first: PollResponse = agent
        .post(cadang_proto::paths::POLL, &poll(""))
        .await
        .unwrap();
    assert_eq!(first.policy.as_ref().unwrap().version, resp.policy.version);
    let again: PollResponse = agent
        .post(cadang_proto::paths::POLL, &poll(&resp.policy.version))
        .await
        .unwrap();
    assert!(again.policy.is_none() && again.jobs.is_empty());

    // backup-now queues one job; a second while it is queued is refused as busy.
    let queued: BackupNowResponse = c
        .admin()
        .post(
            &format!("/api/v1/hosts/{HOST}/backup-now"),
            &BackupNowRequest { source: None },
        )
        .await
        .unwrap();
    assert_eq!(queued.jobs.len(), 1);
    let busy: BackupNowResponse = c
        .admin()
        .post(
            &format!("/api/v1/hosts/{HOST}/backup-now"),
            &BackupNowRequest {
                source: Some("files".into()),
            },
        )
        .await
        .unwrap();
    assert!(busy.jobs.is_empty() && busy.busy == vec!["files".to_string()]);
    let got: PollResponse = agent
        .post(cadang_proto::paths::POLL, &poll(&resp.policy.version))
        .await
        .unwrap();
    assert_eq!(got.jobs.len(), 1);
    assert!(
        matches!(&got.jobs[0].kind, JobKind::Backup { source, slot: None } if source == "files")
    );
    // Delivered jobs are not handed out twice.
    let none: PollResponse = agent
        .post(cadang_proto::paths::POLL, &poll(&resp.policy.version))
        .await
        .unwrap();
    assert!(none.jobs.is_empty());

    let now = c.clock.now();
    let report = JobReport {
        report_id: "r-1".into(),
        job_id: Some(got.jobs[0].id.clone()),
        kind: ReportKind::Backup {
            source: "files".into(),
            slot: None,
            snapshot: Some("abc123".into()),
            stats: BackupStats {
                files: 3,
                bytes_read: 300,
                bytes_added: 100,
                ..Default::default()
            },
            signals: None,
        },
        started: now,
        finished: now + chrono::Duration::seconds(5),
        outcome: Outcome::Succeeded,
        message: String::new(),
    };
    let batch = ReportBatch {
        reports: vec![report.clone()],
    };
    let ack: ReportAck = agent
        .post(cadang_proto::paths::REPORTS, &batch)
        .await
        .unwrap();
    assert_eq!(ack.accepted, vec!["r-1".to_string()]);
    // A resend (the answer was lost) is acknowledged and applied no second time.
    let ack: ReportAck = agent
        .post(cadang_proto::paths::REPORTS, &batch)
        .await
        .unwrap();
    assert_eq!(ack.accepted, vec!["r-1".to_string()]);
    let jobs: JobList = c.admin().get("/api/v1/jobs").await.unwrap();
    assert_eq!(jobs.jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs.jobs[0].outcome.as_deref(), Some("succeeded"));
    assert_eq!(jobs.jobs[0].snapshot.as_deref(), Some("abc123"));
    let snaps: SnapshotList = c
        .admin()
        .get(&format!("/api/v1/pds/{PD}/snapshots"))
        .await
        .unwrap();
    assert_eq!(snaps.snapshots.len(), 1);
    let fleet: FleetStatus = c.admin().get("/api/v1/fleet").await.unwrap();
    let pd = fleet.pds.iter().find(|p| p.pd == PD).unwrap();
    assert!(pd.agents[0].connected);
    assert_eq!(pd.agents[0].sources[0].last_success, Some(report.finished));
    assert!(pd.sites[0].rpo_ok);
    // The backup success reached the engine's RunBook (replication follows it).
    assert_eq!(
        c.app.runbook.lock().unwrap().last_backup_success.get(PD),
        Some(&report.finished)
    );
    // The source is free again: another backup-now queues.
    let queued: BackupNowResponse = c
        .admin()
        .post(
            &format!("/api/v1/hosts/{HOST}/backup-now"),
            &BackupNowRequest { source: None },
        )
        .await
        .unwrap();
    assert_eq!(queued.jobs.len(), 1);
    let metrics = c.admin().raw("GET", "/metrics", None).await.unwrap();
    let text = String::from_utf8(metrics.1).unwrap();
    assert!(text.contains("cadang_backup_last_bytes_read{pd=\"DUKCAPIL\",host=\"srv-dukcapil\",source=\"files\"} 300"), "{text}");
    assert!(text.contains("cadang_connected_agents 1"), "{text}");
    assert!(
        text.contains("cadang_job_outcomes_total{kind=\"backup\",outcome=\"succeeded\"} 1"),
        "{text}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_token_is_refused_and_changes_nothing() {
    let c = Controller::start().await;
    let token = c.token(HOST, PD, 3600).await;
    enroll(&c, &AgentKeys::new(HOST), &token).await.unwrap();
    let before = c.counts();
    assert_eq!(before, (1, 1));
    let replay = enroll(&c, &AgentKeys::new(HOST), &token).await;
    assert_eq!(status_of(replay), 403);
    assert_eq!(c.counts(), before);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused_and_stays_unused() {
    let c = Controller::start().await;
    let token = c.token(HOST, PD, 600).await;
    c.clock.advance(chrono::Duration::seconds(601));
    let r = enroll(&c, &AgentKeys::new(HOST), &token).await;
    match r {
        Err(cadang_controller::Error::Api {
            status: 403,
            message,
        }) => assert!(message.contains("expired"), "{message}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(c.counts(), (0, 0));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_host_is_refused_and_still_works_for_its_own() {
    let c = Controller::start().await;
    let token = c.token(HOST, PD, 3600).await;
    let r = enroll(&c, &AgentKeys::new("intruder"), &token).await;
    assert_eq!(status_of(r), 403);
    assert_eq!(c.counts(), (0, 0));
    // An unknown token too.
    let forged = cadang_proto::EnrollmentToken {
        secret: [9; 32],
        ca_fingerprint: [0; 32],
    }
    .to_string();
    assert_eq!(
        status_of(enroll(&c, &AgentKeys::new(HOST), &forged).await),
        403
    );
    enroll(&c, &AgentKeys::new(HOST), &token).await.unwrap();
    assert_eq!(c.counts(), (1, 1));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_pd_is_refused() {
    let c = Controller::start().await;
    let token = c.token(OTHER_HOST, OTHER_PD, 3600).await;
    let r = enroll(&c, &AgentKeys::new(OTHER_HOST), &token).await;
    match r {
        Err(cadang_controller::Error::Api {
            status: 403,
            message,
        }) => assert!(message.contains("not registered"), "{message}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(c.counts(), (0, 0));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_is_refused_on_its_next_request() {
    let c = Controller::start().await;
    let token = c.token(HOST, PD, 3600).await;
    let (_, agent) = enroll(&c, &AgentKeys::new(HOST), &token).await.unwrap();
    let _: PollResponse = agent
        .post(cadang_proto::paths::POLL, &poll(""))
        .await
        .unwrap();
    let _: serde_json::Value = c
        .admin()
        .post(&format!("/api/v1/hosts/{HOST}/revoke"), &())
        .await
        .unwrap();
    let r: cadang_controller::Result<PollResponse> =
        agent.post(cadang_proto::paths::POLL, &poll("")).await;
    assert_eq!(status_of(r), 403);
    let r: cadang_controller::Result<ReportAck> = agent
        .post(
            cadang_proto::paths::REPORTS,
            &ReportBatch { reports: vec![] },
        )
        .await;
    assert_eq!(status_of(r), 403);
    // Agent routes without a certificate: 401.
    let r: cadang_controller::Result<PollResponse> = c
        .anonymous()
        .post(cadang_proto::paths::POLL, &poll(""))
        .await;
    assert_eq!(status_of(r), 401);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_a_foreign_ca_fails_the_handshake() {
    let c = Controller::start().await;
    let foreign = cadang_controller::ca::create_ca("Elsewhere").unwrap();
    let foreign = cadang_controller::ca::Ca::load(&foreign.cert_pem, &foreign.key_pem).unwrap();
    let keys = AgentKeys::new(HOST);
    let cert = foreign.sign_agent(&keys.csr_pem, "forged", HOST).unwrap();
    let client = cadang_controller::client::ApiClient::new(
        &c.url,
        &c.ca_pem,
        Some((&cert.cert_pem, &keys.key_pem)),
        None,
    )
    .unwrap();
    let r: cadang_controller::Result<PollResponse> =
        client.post(cadang_proto::paths::POLL, &poll("")).await;
    assert!(
        matches!(r, Err(cadang_controller::Error::Connect { .. })),
        "{:?}",
        r.map(|_| ())
    );
    assert_eq!(c.counts(), (0, 0));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_gets_no_http_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = Controller::start().await;
    let addr = c.url.trim_start_matches("https://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body =
        serde_json::to_vec(&AgentKeys::new(HOST).request(&c.token(HOST, PD, 3600).await)).unwrap();
    let head = format!("POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", cadang_proto::paths::ENROLL, body.len());
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body).await.unwrap();
    let mut buf = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(
        !buf.starts_with(b"HTTP/"),
        "plain HTTP was answered: {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert_eq!(c.counts(), (0, 0));
    // The client refuses http:// URLs outright.
    assert!(cadang_controller::client::ApiClient::new(
        &format!("http://{addr}"),
        &c.ca_pem,
        None,
        None
    )
    .is_err());
    c.stop().await;
}
