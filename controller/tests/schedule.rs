//! The scheduler with a manual clock, and the state across a restart.

mod common;

use cadang_proto::agent::JobKind;
use cadang_proto::api::{BackupNowRequest, BackupNowResponse, JobList};
use common::*;

async fn backups(c: &Controller) -> JobList {
    c.admin()
        .get(&format!("/api/v1/jobs?kind=backup&pd={PD}"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_backup_reaches_the_agent_and_the_state_survives_a_restart() {
    let (tmp, dir, admin, config) = prepare().await;
    // 00:50 WIB: the 01:00 WIB (18:00 UTC) slot is ten minutes away.
    let c = Controller::start_in(tmp, dir, admin, config, at("2026-03-02T17:50:00Z")).await;
    c.register_pd(&init_repository(&c.config, PD).await).await;
    let token = c.token(HOST, PD, 3600).await;
    let keys = AgentKeys::new(HOST);
    let (resp, agent) = enroll(&c, &keys, &token).await.unwrap();
    let v = resp.policy.version.clone();
    assert!(poll_jobs(&agent, &v, 0).await.jobs.is_empty());
    // Past the slot and its jitter (at most five minutes); the held poll
    // answers as soon as the dispatcher queues the job.
    c.clock.set(at("2026-03-02T18:06:00Z"));
    let got = poll_jobs(&agent, &v, 10).await;
    assert_eq!(got.jobs.len(), 1, "{got:?}");
    let slot = at("2026-03-02T18:00:00Z").timestamp();
    assert!(
        matches!(&got.jobs[0].kind, JobKind::Backup { source, slot: Some(s) } if source == "files" && *s == slot)
    );

    // Two nights down; the restarted controller knows the agent and its job.
    let (tmp, dir, admin, config) = c.stop().await;
    let c = Controller::start_in(tmp, dir, admin, config, at("2026-03-04T19:00:00Z")).await;
    let agent = agent_client(&c, &resp, &keys);
    let jobs = backups(&c).await;
    assert_eq!(jobs.jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs.jobs[0].state, "delivered");
    // The missed slots add no job while that one is not finished: never two
    // jobs on one source.
    assert!(poll_jobs(&agent, &v, 1).await.jobs.is_empty());
    assert_eq!(backups(&c).await.jobs.len(), 1);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_missed_while_the_controller_was_down_is_dispatched_once() {
    let (tmp, dir, admin, config) = prepare().await;
    let c = Controller::start_in(tmp, dir, admin, config, at("2026-03-02T12:00:00Z")).await;
    c.register_pd(&init_repository(&c.config, PD).await).await;
    let token = c.token(HOST, PD, 3600).await;
    let keys = AgentKeys::new(HOST);
    let (resp, agent) = enroll(&c, &keys, &token).await.unwrap();
    let v = resp.policy.version.clone();
    assert!(poll_jobs(&agent, &v, 0).await.jobs.is_empty());
    let (tmp, dir, admin, config) = c.stop().await;
    // Three nights later: three slots missed, one job, for the newest.
    let c = Controller::start_in(tmp, dir, admin, config, at("2026-03-05T12:00:00Z")).await;
    let agent = agent_client(&c, &resp, &keys);
    let got = poll_jobs(&agent, &v, 10).await;
    assert_eq!(got.jobs.len(), 1, "{got:?}");
    let newest = at("2026-03-04T18:00:00Z").timestamp();
    assert!(
        matches!(&got.jobs[0].kind, JobKind::Backup { slot: Some(s), .. } if *s == newest),
        "{got:?}"
    );
    assert_eq!(backups(&c).await.jobs.len(), 1);
    // backup-now while that job runs is refused as busy.
    let busy: BackupNowResponse = c
        .admin()
        .post(
            &format!("/api/v1/hosts/{HOST}/backup-now"),
            &BackupNowRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(busy.busy, vec!["files".to_string()]);
    c.stop().await;
}
