//! The agent daemon against a test double of the controller, backing up
//! into a real directory repository: dispatched jobs, unattended slots
//! while the controller is down, exactly-once delivery, revocation and
//! resumption after a restart.

mod daemon_support;

use std::sync::Arc;
use std::time::Duration;

use cadang_agent::daemon::ledger::{Ledger, Work, WorkKind};
use cadang_agent::daemon::{DaemonError, ManualClock};
use cadang_proto::agent::{Job, JobKind, Outcome, ReportKind};
use chrono::{DateTime, Utc};
use daemon_support as fake;

const HOST: &str = "srv-dinkes";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    fc: fake::FakeController,
    backend: Arc<dyn cadang_core::backend::Backend>,
    config: cadang_agent::daemon::AgentConfig,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(files.join("sub")).unwrap();
    std::fs::write(files.join("a.txt"), b"surat keputusan").unwrap();
    std::fs::write(files.join("sub/b.bin"), vec![7u8; 300_000]).unwrap();
    let (backend, grant, store) = fake::repository(dir.path()).await;
    // 02:00 WITA = 18:00 UTC the day before.
    let fc = fake::start(fake::pki("cadang"), fake::policy(HOST, &files, "0 2 * * *")).await;
    fc.with(|s| s.grant = Some((grant, store)));
    let config = fake::enrolled(&fc, &dir.path().join("agent"), HOST).await;
    Setup {
        _dir: dir,
        fc,
        backend,
        config,
    }
}

fn backup_job(id: &str, source: &str, slot: Option<i64>) -> Job {
    Job {
        id: id.into(),
        kind: JobKind::Backup {
            source: source.into(),
            slot,
        },
        not_after: None,
        due_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatched_jobs_run_and_their_reports_arrive_once_despite_a_lost_ack() {
    let s = setup().await;
    let clock = Arc::new(ManualClock::new(t("2026-12-02T10:00:00Z")));
    s.fc.with(|st| {
        st.lose_acks = 1;
        st.jobs.push_back(backup_job("j1", "files", None));
        st.jobs.push_back(backup_job("j2", "db", None));
        st.jobs.push_back(Job {
            id: "j3".into(),
            kind: JobKind::Restore {
                request_id: "rq1".into(),
                envelope: "sealed".into(),
                dr_store: None,
            },
            not_after: None,
            due_at: None,
        });
    });
    let agent = fake::spawn(&s.config, clock.clone());
    fake::wait_snapshots(&s.backend, 2, 60).await;
    fake::eventually(30, "three reports delivered and acked", || {
        s.fc.with(|st| st.reports.len()) == 3 && fake::spooled(&s.config) == 0
    })
    .await;
    s.fc.with(|st| {
        assert!(fake::unique_ids(&st.reports));
        assert!(st.report_posts >= 2, "the lost ack made the agent resend");
        assert!(
            st.polls_with_cert > 0 && st.polls_without_cert == 0,
            "polls use the client certificate"
        );
        for r in &st.reports {
            match (r.job_id.as_deref(), &r.kind) {
                (
                    Some("j1"),
                    ReportKind::Backup {
                        source,
                        snapshot,
                        stats,
                        ..
                    },
                ) => {
                    assert_eq!(r.outcome, Outcome::Succeeded, "{}", r.message);
                    assert_eq!(source, "files");
                    assert!(snapshot.is_some());
                    assert_eq!(stats.files, 2);
                    assert!(stats.bytes_read >= 300_000);
                }
                (Some("j2"), ReportKind::Backup { source, .. }) => {
                    assert_eq!(r.outcome, Outcome::Succeeded, "{}", r.message);
                    assert_eq!(source, "db");
                }
                (Some("j3"), ReportKind::Restore { request_id, .. }) => {
                    assert_eq!(r.outcome, Outcome::Failed);
                    assert_eq!(request_id, "rq1");
                    // Not an envelope: refused before anything is read.
                    assert!(r.message.contains("envelope"), "{}", r.message);
                }
                other => panic!("unexpected report {other:?}"),
            }
        }
    });
    // The same job dispatched again is answered from the ledger.
    s.fc.with(|st| st.jobs.push_back(backup_job("j1", "files", None)));
    let posts = s.fc.with(|st| st.report_posts);
    fake::eventually(30, "the report is sent again", || {
        s.fc.with(|st| st.report_posts) > posts
    })
    .await;
    assert_eq!(s.fc.with(|st| st.reports.len()), 3);
    assert_eq!(
        fake::snapshot_count(&s.backend).await,
        2,
        "no second backup"
    );
    agent.stop().await.unwrap();
    assert_eq!(fake::lock_count(&s.backend).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_controller_down_the_slot_runs_unattended_and_is_reported_exactly_once_later() {
    let s = setup().await;
    let slot = t("2026-12-02T18:00:00Z");
    let clock = Arc::new(ManualClock::new(t("2026-12-02T17:00:00Z")));
    s.fc.with(|st| st.down = true);
    let agent = fake::spawn(&s.config, clock.clone());
    // The agent's first start fixes the time before which it never runs a
    // slot itself; let it happen before the clock moves.
    let ledger = s.config.paths().ledger();
    fake::eventually(30, "the agent started", || ledger.exists()).await;
    // Due, but within the grace the controller has to dispatch it.
    clock.set(slot + chrono::Duration::seconds(60));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake::snapshot_count(&s.backend).await, 0);
    clock.set(slot + chrono::Duration::seconds(121));
    fake::wait_snapshots(&s.backend, 1, 60).await;
    fake::eventually(30, "the report is spooled", || {
        fake::spooled(&s.config) == 1
    })
    .await;
    // The agent restarts while the controller is still down.
    agent.stop().await.unwrap();
    let agent = fake::spawn(&s.config, clock.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake::snapshot_count(&s.backend).await,
        1,
        "the slot is not repeated after a restart"
    );
    // The controller returns; its first ack is lost.
    s.fc.with(|st| {
        st.down = false;
        st.lose_acks = 1;
    });
    fake::eventually(30, "delivered and acked", || {
        fake::spooled(&s.config) == 0 && s.fc.with(|st| st.report_posts) >= 2
    })
    .await;
    let first = s.fc.with(|st| {
        let r = fake::reports_for_slot(st, slot.timestamp());
        assert_eq!(r.len(), 1, "exactly once");
        assert_eq!(r[0].outcome, Outcome::Succeeded, "{}", r[0].message);
        assert_eq!(r[0].job_id, None, "run by the agent itself");
        r[0].clone()
    });
    // The controller now dispatches the slot it missed: the agent answers
    // with the report it has, and backs up nothing.
    let posts = s.fc.with(|st| st.report_posts);
    s.fc.with(|st| {
        st.jobs
            .push_back(backup_job("late-1", "files", Some(slot.timestamp())))
    });
    fake::eventually(30, "the report is sent again", || {
        s.fc.with(|st| st.report_posts) > posts
    })
    .await;
    s.fc.with(|st| {
        assert_eq!(
            fake::reports_for_slot(st, slot.timestamp()),
            vec![first.clone()]
        )
    });
    assert_eq!(fake::snapshot_count(&s.backend).await, 1);
    // With the controller reachable, a slot is left for it to dispatch.
    // (A new policy: every ten minutes, and the dump once a year.)
    s.fc.with(|st| {
        st.policy.version = "v2".into();
        st.policy.sources[0].schedule = "*/10 * * * *".into();
        st.policy.sources[1].schedule = "0 3 1 1 *".into();
    });
    let policy_file = s.config.paths().policy();
    fake::eventually(30, "the new policy is stored", || {
        std::fs::read_to_string(&policy_file)
            .unwrap()
            .contains("*/10 * * * *")
    })
    .await;
    for at in [590, 605, 750] {
        clock.set(slot + chrono::Duration::seconds(at));
        let polls = s.fc.with(|st| st.polls_with_cert);
        fake::eventually(30, "polls go on", || {
            s.fc.with(|st| st.polls_with_cert) >= polls + 2
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake::snapshot_count(&s.backend).await, 1);
    agent.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cut_off_by_a_crash_runs_again_once_after_the_restart() {
    let s = setup().await;
    let clock = Arc::new(ManualClock::new(t("2026-12-02T10:00:00Z")));
    // What a kill -9 mid-backup leaves: the job taken on, no report.
    let work = Work {
        key: "job:j7".into(),
        job_id: Some("j7".into()),
        kind: WorkKind::Backup {
            source: "files".into(),
            slot: None,
        },
        not_after: None,
    };
    Ledger::open(
        &s.config.paths().ledger(),
        HOST,
        cadang_agent::daemon::Clock::now(clock.as_ref()),
    )
    .unwrap()
    .begin(&work)
    .unwrap();
    let agent = fake::spawn(&s.config, clock.clone());
    fake::wait_snapshots(&s.backend, 1, 60).await;
    fake::eventually(30, "the retried job's report", || {
        s.fc.with(|st| st.reports.iter().any(|r| r.job_id.as_deref() == Some("j7")))
    })
    .await;
    agent.stop().await.unwrap();
    let agent = fake::spawn(&s.config, clock.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    agent.stop().await.unwrap();
    assert_eq!(
        fake::snapshot_count(&s.backend).await,
        1,
        "run once, not again after a second restart"
    );
    assert_eq!(s.fc.with(|st| st.reports.len()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_stops_with_a_clear_error() {
    let s = setup().await;
    let clock = Arc::new(ManualClock::new(t("2026-12-02T10:00:00Z")));
    s.fc.with(|st| st.revoked = true);
    let agent = fake::spawn(&s.config, clock);
    let ended = tokio::time::timeout(Duration::from_secs(30), agent.task)
        .await
        .unwrap()
        .unwrap();
    let err = ended.unwrap_err();
    assert!(matches!(err, DaemonError::Revoked { .. }), "{err}");
    assert!(
        err.to_string().contains("this agent was revoked by admin"),
        "{err}"
    );
    assert!(err.to_string().contains("enroll it anew"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_on_the_same_state_directory_is_refused() {
    let s = setup().await;
    let clock = Arc::new(ManualClock::new(t("2026-12-02T10:00:00Z")));
    let first = fake::spawn(&s.config, clock.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = fake::spawn(&s.config, clock);
    let err = tokio::time::timeout(Duration::from_secs(10), second.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, DaemonError::Busy(_)), "{err}");
    first.stop().await.unwrap();
}
