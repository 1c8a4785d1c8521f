//! Running one backup for the daemon: opens the on-site store with the
//! enrolled access, backs up the source named by the cached policy, and
//! turns the outcome into a [`JobReport`].
//!
//! Never two backups of one source at once: one in-process mutex per
//! source (a second job for a busy source waits), and the state
//! directory's run lock keeps a second agent process away.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cadang_core::keys::Credentials;
use cadang_core::Repository;
use cadang_proto::agent::{
    BackupStats, JobProgress, JobReport, Outcome, ReportKind, SourceKind, SourceSpec, StoreAccess,
};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::guard::StopGuard;
use crate::{backup, BackupError, BackupOptions, Progress, Source};

/// What a backup needs that does not change between jobs.
pub struct BackupEnv {
    pub store: StoreAccess,
    pub credentials_path: PathBuf,
    pub host: String,
    pub cache_dir: PathBuf,
    pub workers: usize,
    pub stop_deadline: Duration,
}

/// A running job as `PollRequest.running` shows it.
pub struct Running {
    pub job_id: Option<String>,
    pub source: String,
    pub started: DateTime<Utc>,
    pub since: Instant,
    pub progress: Arc<Progress>,
}

impl Running {
    pub fn snapshot(&self) -> JobProgress {
        let bytes = self.progress.bytes.load(Ordering::Relaxed);
        let secs = self.since.elapsed().as_secs_f64().max(0.001);
        JobProgress {
            job_id: self.job_id.clone(),
            source: self.source.clone(),
            started: Some(self.started),
            files: self.progress.files.load(Ordering::Relaxed),
            bytes,
            rate: (bytes as f64 / secs) as u64,
        }
    }
}

/// One mutex per source name.
#[derive(Default)]
pub struct SourceLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl SourceLocks {
    pub fn of(&self, source: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(source.to_string())
            .or_default()
            .clone()
    }
}

/// A unique, never reused report id.
pub fn report_id() -> String {
    let mut b = [0u8; 16];
    cadang_core::keys::fill_random(&mut b);
    format!("r-{}", hex::encode(b))
}

/// The outcome of one backup, before it becomes a report.
pub struct Ended {
    pub outcome: Outcome,
    pub snapshot: Option<String>,
    pub stats: BackupStats,
    pub message: String,
    /// Ransomware early-warning counts (no names, no content), when measured.
    pub signals: Option<serde_json::Value>,
}

/// Backs up `spec`. When `stop` turns true the backup ends at its next
/// store operation (or is abandoned after the stop deadline) and its lock
/// is removed; the result is then `Interrupted`.
pub async fn run_backup(
    env: &BackupEnv,
    spec: &SourceSpec,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> Ended {
    let (guard, repo, creds) = match open(env).await {
        Ok(x) => x,
        Err(message) => return failed(message),
    };
    let source = match &spec.kind {
        SourceKind::Paths { paths } => Source::Paths(paths.iter().map(PathBuf::from).collect()),
        SourceKind::Command {
            stream_name,
            command,
        } => Source::Command {
            name: stream_name.clone(),
            command: command.clone(),
        },
    };
    let opts = BackupOptions {
        host: env.host.clone(),
        agent: creds.agent_name.clone(),
        tags: spec.tags.clone(),
        excludes: spec.excludes.clone(),
        // One cache per source: sled allows one user per directory, and
        // two sources back up at the same time.
        cache_dir: Some(env.cache_dir.join(cache_name(&spec.name))),
        workers: env.workers,
    };
    let job = backup(repo, creds, source, opts, progress.clone());
    tokio::pin!(job);
    let result = tokio::select! {
        r = &mut job => r,
        _ = super::stopped(&mut stop) => {
            guard.stop();
            match tokio::time::timeout(env.stop_deadline, &mut job).await {
                // It finished (its snapshot was written) before a safe point.
                Ok(Ok(s)) => Ok(s),
                Ok(Err(_)) | Err(_) => {
                    guard.remove_leftover_locks().await;
                    return Ended {
                        outcome: Outcome::Interrupted,
                        snapshot: None,
                        stats: stats_of(&progress, Vec::new(), 0),
                        message: "the agent was stopped; the backup ended at a safe point, its lock was released, and it runs again when the agent starts".into(),
                        signals: None,
                    };
                }
            }
        }
    };
    guard.remove_leftover_locks().await;
    match result {
        Ok(s) => {
            let outcome = if s.problems.is_empty() {
                Outcome::Succeeded
            } else {
                Outcome::Partial
            };
            let message = if s.problems.is_empty() {
                String::new()
            } else {
                format!(
                    "{} item(s) could not be read and are not in the snapshot",
                    s.problems.len()
                )
            };
            let signals = s.signals.as_ref().map(|x| x.to_json());
            Ended {
                outcome,
                snapshot: Some(s.snapshot.to_hex()),
                stats: BackupStats {
                    files: s.stats.files,
                    dirs: s.stats.dirs,
                    bytes_read: s.stats.bytes,
                    bytes_added: s.stats.added_bytes,
                    problems: s.problems,
                },
                message,
                signals,
            }
        }
        Err(e) => Ended {
            stats: stats_of(&progress, Vec::new(), 0),
            ..failed(describe(&e))
        },
    }
}

async fn open(env: &BackupEnv) -> Result<(Arc<StopGuard>, Arc<Repository>, Credentials), String> {
    let creds_data = std::fs::read(&env.credentials_path).map_err(|e| {
        format!(
            "cannot read the repository credentials {}: {e}; enroll the agent again",
            env.credentials_path.display()
        )
    })?;
    let creds = Credentials::from_json(&creds_data).map_err(|e| e.to_string())?;
    let s3 = match (&env.store.access_key_id, &env.store.secret_access_key) {
        (Some(k), Some(s)) => Some(cadang_s3::StaticCredentials {
            access_key_id: k.clone(),
            secret_access_key: s.clone(),
            session_token: None,
        }),
        _ => None,
    };
    let backend = cadang_s3::open_store(&env.store.url, s3)
        .map_err(|e| format!("cannot open the on-site store {}: {e}", env.store.url))?;
    let guard = Arc::new(StopGuard::new(backend));
    let repo = Repository::open(guard.clone())
        .await
        .map_err(|e| format!("cannot open the repository at {}: {e}", env.store.url))?;
    Ok((guard, Arc::new(repo), creds))
}

/// A directory name for a source's cache (source names are free text).
fn cache_name(source: &str) -> String {
    let safe: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let tag = blake3::hash(source.as_bytes()).to_hex();
    format!("{safe}-{}", &tag[..8])
}

fn failed(message: String) -> Ended {
    Ended {
        outcome: Outcome::Failed,
        snapshot: None,
        stats: BackupStats::default(),
        message,
        signals: None,
    }
}

fn stats_of(p: &Progress, problems: Vec<String>, added: u64) -> BackupStats {
    BackupStats {
        files: p.files.load(Ordering::Relaxed),
        dirs: p.dirs.load(Ordering::Relaxed),
        bytes_read: p.bytes.load(Ordering::Relaxed),
        bytes_added: added,
        problems,
    }
}

fn describe(e: &BackupError) -> String {
    super::http::chain(e)
}

/// Builds the report of a finished backup.
pub fn backup_report(
    job_id: Option<String>,
    source: &str,
    slot: Option<i64>,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    ended: Ended,
) -> JobReport {
    JobReport {
        report_id: report_id(),
        job_id,
        kind: ReportKind::Backup {
            source: source.to_string(),
            slot,
            snapshot: ended.snapshot,
            stats: ended.stats,
            signals: ended.signals,
        },
        started,
        finished,
        outcome: ended.outcome,
        message: ended.message,
    }
}
