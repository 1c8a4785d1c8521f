//! `agent.toml` and the files of the state directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::DaemonError;

/// What `cadang agent enroll` writes and `cadang agent run --config` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// `https://HOST:PORT` of the controller.
    pub controller: String,
    /// Keys, certificates, policy, spool and ledger live here.
    pub state_dir: PathBuf,
    pub host: String,
    pub agent_id: String,
    pub pd: String,
    /// The file cache (default `STATE_DIR/cache`).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    #[serde(default)]
    pub tuning: Tuning,
}

/// Timings and bounds; the defaults suit production, tests shrink them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tuning {
    /// How long the controller may hold a poll open (it caps this; 30 s
    /// today), well below the unattended grace.
    pub poll_wait_seconds: u32,
    /// A slot runs locally when no poll succeeded since it fell due and
    /// this long has passed after it.
    pub unattended_grace_seconds: u64,
    /// How often the cached schedule is evaluated.
    pub tick_millis: u64,
    pub backoff_min_millis: u64,
    pub backoff_max_millis: u64,
    pub spool_max_reports: usize,
    pub spool_max_bytes: u64,
    /// Reports per delivery request.
    pub report_batch: usize,
    /// How long a stopping backup may take to reach a safe point.
    pub stop_deadline_seconds: u64,
    /// Worker threads per backup (0: one per core).
    pub workers: usize,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            poll_wait_seconds: 30,
            unattended_grace_seconds: 120,
            tick_millis: 1000,
            backoff_min_millis: 1000,
            backoff_max_millis: 60_000,
            spool_max_reports: 10_000,
            spool_max_bytes: 64 * 1024 * 1024,
            report_batch: 100,
            stop_deadline_seconds: 30,
            workers: 0,
        }
    }
}

impl Tuning {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_millis.max(10))
    }
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, DaemonError> {
        let text = std::fs::read_to_string(path).map_err(DaemonError::io("read", path))?;
        toml::from_str(&text).map_err(|e| DaemonError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), DaemonError> {
        let text = toml::to_string_pretty(self).map_err(|e| DaemonError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        super::fsutil::write_atomic(path, text.as_bytes())
    }

    pub fn paths(&self) -> StatePaths {
        StatePaths(self.state_dir.clone())
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("cache"))
    }
}

/// Where each file of the state directory is.
#[derive(Debug, Clone)]
pub struct StatePaths(pub PathBuf);

impl StatePaths {
    pub fn config(&self) -> PathBuf {
        self.0.join("agent.toml")
    }
    /// The TLS client key (PKCS#8 PEM); made here, never sent.
    pub fn tls_key(&self) -> PathBuf {
        self.0.join("client.key")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.0.join("client.crt")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.crt")
    }
    /// The age identity restore envelopes are sealed to.
    pub fn age_identity(&self) -> PathBuf {
        self.0.join("restore-identity.age.txt")
    }
    /// `cadang_core::keys::Credentials` (repository grant + signing key).
    pub fn credentials(&self) -> PathBuf {
        self.0.join("credentials.json")
    }
    pub fn store(&self) -> PathBuf {
        self.0.join("store.json")
    }
    pub fn policy(&self) -> PathBuf {
        self.0.join("policy.json")
    }
    pub fn ledger(&self) -> PathBuf {
        self.0.join("ledger.json")
    }
    pub fn spool(&self) -> PathBuf {
        self.0.join("spool.jsonl")
    }
    /// Held (flock) by the running agent.
    pub fn run_lock(&self) -> PathBuf {
        self.0.join("run.lock")
    }
}
