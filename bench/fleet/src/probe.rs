//! What the bench watches beside the agents: the controller's memory, and
//! the people API's latency under the fleet's load.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadang_controller::client::ApiClient;
use tokio::sync::watch;

use crate::stats::{Samples, Summary};

/// Samples VmRSS of the PID in `pid_file` every 250 ms.
pub struct RssSampler {
    peak: Arc<AtomicU64>,
}

impl RssSampler {
    pub fn start(pid_file: PathBuf, stop: watch::Receiver<bool>) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(0));
        let p = peak.clone();
        tokio::spawn(async move {
            while !*stop.borrow() {
                if let Some(kib) = rss_kib(&pid_file) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        RssSampler { peak }
    }

    pub fn peak_kib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

fn rss_kib(pid_file: &PathBuf) -> Option<u64> {
    let pid = std::fs::read_to_string(pid_file).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Calls `GET /api/v1/fleet` and `GET /api/v1/jobs` in turn, five times a
/// second, as an operator's console and scripts would.
pub struct ApiProbe {
    fleet: Arc<Samples>,
    jobs: Arc<Samples>,
}

impl ApiProbe {
    pub fn start(api: ApiClient, stop: watch::Receiver<bool>) -> ApiProbe {
        let fleet = Arc::new(Samples::default());
        let jobs = Arc::new(Samples::default());
        let (f, j) = (fleet.clone(), jobs.clone());
        tokio::spawn(async move {
            let mut turn = 0u64;
            while !*stop.borrow() {
                let (path, into) = if turn.is_multiple_of(2) {
                    ("/api/v1/fleet", &f)
                } else {
                    ("/api/v1/jobs", &j)
                };
                turn += 1;
                let t = Instant::now();
                if let Ok((200, _)) = api.raw("GET", path, None).await {
                    into.record(t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        ApiProbe { fleet, jobs }
    }

    pub fn summaries(&self) -> (Summary, Summary) {
        (self.fleet.summary(), self.jobs.summary())
    }
}
