//! One simulated agent: the real enrollment, then the agent's long-poll and
//! report exchange over mTLS, with no backup behind it (a job is answered by
//! an immediate report), so the controller carries a whole fleet's protocol
//! load from one client process.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cadang_agent::daemon::backoff::Backoff;
use cadang_agent::daemon::http::{CallError, ControllerClient};
use cadang_agent::daemon::{enroll, tls, EnrollOptions, EnrollmentToken};
use cadang_proto::agent::{
    JobKind, JobReport, Outcome, PollRequest, PollResponse, ReportAck, ReportBatch, ReportKind,
};
use cadang_proto::{paths, PROTO_VERSION};
use chrono::Utc;

use crate::stats::{Rate, Samples};

/// What every simulated agent reports into.
pub struct Shared {
    pub started: Instant,
    /// Due time to receipt, per backup job due after every agent had
    /// polled once (the fleet is up).
    pub delivery: Samples,
    /// The same for jobs due while the fleet was still starting (agents
    /// enroll one after another and start polling together at the end, so
    /// a slot that falls inside enrollment measures the start, not the
    /// steady state).
    pub delivery_startup: Samples,
    /// Agents that have completed their first poll.
    pub first_polls: AtomicU64,
    /// When the last of them did (UTC, ms since the epoch; 0 = not yet).
    pub ready_at_ms: AtomicU64,
    pub agents: u64,
    pub requests: Rate,
    pub jobs: AtomicU64,
    pub failures: AtomicU64,
    /// Set by the restart phase: polls that succeed after it count as
    /// reconnections.
    pub restart_ms: AtomicU64,
    pub reconnected: AtomicU64,
    /// Millisecond (since start) the last agent reconnected.
    pub last_reconnect_ms: AtomicU64,
    pub poll_wait_seconds: u32,
}

impl Shared {
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

pub struct SimAgent {
    client: ControllerClient,
}

impl SimAgent {
    /// Enrolls `host` with `token` into `state_dir` exactly as `cadang agent
    /// enroll` does, and opens its mTLS client.
    pub async fn enroll(
        controller: &str,
        token: &str,
        host: &str,
        state_dir: &Path,
    ) -> Result<SimAgent> {
        let token: EnrollmentToken = token.parse().context("token from the controller")?;
        let config = enroll(EnrollOptions {
            controller: controller.to_string(),
            token,
            state_dir: state_dir.to_path_buf(),
            host: host.to_string(),
        })
        .await
        .with_context(|| format!("enroll {host}"))?;
        let paths = config.paths();
        let read = |p: std::path::PathBuf| {
            std::fs::read_to_string(&p).with_context(|| p.display().to_string())
        };
        let tls = tls::mtls_config(
            &read(paths.ca_cert())?,
            &read(paths.client_cert())?,
            &read(paths.tls_key())?,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(SimAgent {
            client: ControllerClient::new(controller, tls),
        })
    }

    /// Polls until `stop`, answering every job with a report at once.
    pub async fn run(self, shared: Arc<Shared>, stop: tokio::sync::watch::Receiver<bool>) {
        let mut policy_version = String::new();
        // The agent's own reconnect rule: capped exponential backoff with full
        // jitter, so a restarted controller meets no storm.
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let mut counted_restart = 0u64;
        let mut polled_once = false;
        while !*stop.borrow() {
            let request = PollRequest {
                proto: PROTO_VERSION,
                policy_version: policy_version.clone(),
                running: Vec::new(),
                wait_seconds: shared.poll_wait_seconds,
            };
            shared.requests.hit(shared.now_ms() / 1000);
            let timeout = Duration::from_secs(shared.poll_wait_seconds as u64 + 15);
            match self
                .client
                .post::<_, PollResponse>(paths::POLL, &request, timeout)
                .await
            {
                Ok(resp) => {
                    backoff.reset();
                    if !polled_once {
                        polled_once = true;
                        if shared.first_polls.fetch_add(1, Ordering::SeqCst) + 1 == shared.agents {
                            let now = Utc::now().timestamp_millis().max(1) as u64;
                            shared.ready_at_ms.store(now, Ordering::SeqCst);
                        }
                    }
                    self.note_reconnect(&shared, &mut counted_restart);
                    if let Some(p) = resp.policy {
                        policy_version = p.version;
                    }
                    for job in resp.jobs {
                        self.answer(&shared, job).await;
                    }
                }
                Err(CallError::Status { status: 403, .. }) => {
                    shared.failures.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(_) => {
                    shared.failures.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    fn note_reconnect(&self, shared: &Shared, counted: &mut u64) {
        let restart = shared.restart_ms.load(Ordering::Relaxed);
        if restart != 0 && *counted != restart {
            *counted = restart;
            shared.reconnected.fetch_add(1, Ordering::Relaxed);
            shared
                .last_reconnect_ms
                .fetch_max(shared.now_ms(), Ordering::Relaxed);
        }
    }

    async fn answer(&self, shared: &Shared, job: cadang_proto::agent::Job) {
        let JobKind::Backup { source, slot } = job.kind else {
            return;
        };
        let now = Utc::now();
        if let Some(due) = job.due_at {
            let late = (now - due).to_std().unwrap_or_default();
            let ready = shared.ready_at_ms.load(Ordering::SeqCst);
            if ready != 0 && due.timestamp_millis() >= ready as i64 {
                shared.delivery.record(late);
            } else {
                shared.delivery_startup.record(late);
            }
        }
        shared.jobs.fetch_add(1, Ordering::Relaxed);
        let report = JobReport {
            report_id: random_id(),
            job_id: Some(job.id),
            kind: ReportKind::Backup {
                source,
                slot,
                snapshot: None,
                stats: Default::default(),
                signals: None,
            },
            started: now,
            finished: Utc::now(),
            outcome: Outcome::Succeeded,
            message: "simulated".into(),
        };
        let batch = ReportBatch {
            reports: vec![report],
        };
        shared.requests.hit(shared.now_ms() / 1000);
        if self
            .client
            .post::<_, ReportAck>(paths::REPORTS, &batch, Duration::from_secs(30))
            .await
            .is_err()
        {
            shared.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("random");
    hex::encode(b)
}
