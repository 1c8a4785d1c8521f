//! Backing up paths or a command's output into a repository.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use cadang_core::keys::Credentials;
use cadang_core::snapshot::SnapshotStats;
use cadang_core::{Id, Repository};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::signals::SignalOptions;
use crate::walk::{self, Walker};

mod run;

pub enum Source {
    Paths(Vec<PathBuf>),
    /// Streams a command's standard output (e.g. `pg_dump -Fc db`) without
    /// a temporary file; it is stored as one file called `name`.
    Command {
        name: String,
        command: String,
    },
}

pub struct BackupOptions {
    pub host: String,
    pub agent: String,
    pub tags: Vec<String>,
    pub excludes: Vec<String>,
    pub cache_dir: Option<PathBuf>,
    /// Worker threads for hashing, compression and encryption.
    pub workers: usize,
}

pub use crate::progress::Progress;

#[derive(Debug)]
pub struct BackupSummary {
    pub snapshot: Id,
    pub stats: SnapshotStats,
    /// Files that could not be read: the snapshot does not contain them.
    pub problems: Vec<String>,
    pub recovered_packs: usize,
    /// Ransomware early-warning signals (counts only) for the controller's
    /// verdict; `None` when measurement was turned off.
    pub signals: Option<cadang_proto::signals::BackupSignals>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Repository(#[from] cadang_core::Error),
    #[error("cannot back up {path}: {reason}")]
    Source { path: String, reason: String },
    #[error("invalid exclude pattern {pattern:?}: {reason}")]
    Exclude { pattern: String, reason: String },
    #[error("the command `{command}` failed ({status}); no snapshot was written")]
    CommandFailed { command: String, status: String },
    #[error("the backup stopped: {0}")]
    Internal(String),
}

fn exclude_sets(patterns: &[String]) -> Result<(GlobSet, GlobSet), BackupError> {
    let mut paths = GlobSetBuilder::new();
    let mut names = GlobSetBuilder::new();
    for p in patterns {
        let err = |e: globset::Error| BackupError::Exclude {
            pattern: p.clone(),
            reason: e.to_string(),
        };
        // Like restic: a pattern with a slash matches whole paths, one
        // without matches a name at any depth.
        if p.contains('/') {
            let g = GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map_err(err)?;
            paths.add(g);
            let sub = GlobBuilder::new(&format!("{}/**", p.trim_end_matches('/')))
                .literal_separator(true)
                .build()
                .map_err(err)?;
            paths.add(sub);
        } else {
            names.add(GlobBuilder::new(p).build().map_err(err)?);
        }
    }
    let build = |b: GlobSetBuilder| {
        b.build().map_err(|e| BackupError::Exclude {
            pattern: patterns.join(" "),
            reason: e.to_string(),
        })
    };
    Ok((build(paths)?, build(names)?))
}

pub async fn backup(
    repo: Arc<Repository>,
    credentials: Credentials,
    source: Source,
    opts: BackupOptions,
    progress: Arc<Progress>,
) -> Result<BackupSummary, BackupError> {
    backup_with_signals(
        repo,
        credentials,
        source,
        opts,
        progress,
        SignalOptions::default(),
    )
    .await
}

/// [`backup`] with explicit ransomware-signal options (lists from files,
/// another state directory, or measurement off).
pub async fn backup_with_signals(
    repo: Arc<Repository>,
    credentials: Credentials,
    source: Source,
    opts: BackupOptions,
    progress: Arc<Progress>,
    signal_opts: SignalOptions,
) -> Result<BackupSummary, BackupError> {
    let started = Instant::now();
    let (excludes, name_excludes) = exclude_sets(&opts.excludes)?;
    let (trie, abs_paths) = run::resolve_paths(&source)?;
    let run = run::Run::open(
        &repo,
        credentials,
        &opts,
        &signal_opts,
        &abs_paths,
        progress,
    )
    .await?;
    let pipeline = run.spawn_pipeline(&repo, opts.workers, excludes, name_excludes)?;
    let snapshot_paths = run::snapshot_paths(&source, &abs_paths);
    let outcome = pipeline.finish(source, trie).await?;
    let settled = run.settle(outcome).await?;
    settled.commit(snapshot_paths, opts, started).await
}

/// Runs `sh -c command`, chunking its output as it comes. A non-zero exit
/// fails the backup: a truncated dump must never look like a good one.
fn run_command(walker: &mut Walker, name: &str, command: &str) -> Result<walk::Slot, BackupError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(BackupError::Source {
            path: name.into(),
            reason: "the stream's name must be a plain file name (no /, not . or ..)".into(),
        });
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| BackupError::Source {
            path: command.into(),
            reason: format!("cannot start the command: {e}"),
        })?;
    let out = child.stdout.take().expect("piped");
    let streamed = walker.stdin(name.as_bytes(), out);
    let status = child.wait().map_err(|e| BackupError::Source {
        path: command.into(),
        reason: e.to_string(),
    })?;
    if !status.success() {
        return Err(BackupError::CommandFailed {
            command: command.into(),
            status: status.to_string(),
        });
    }
    streamed.map_err(|e| BackupError::Source {
        path: command.into(),
        reason: format!("reading its output failed: {e}"),
    })
}

/// Test hook: while the file named by `CADANG_TEST_HOLD_BEFORE_COMMIT`
/// exists, the backup waits after its packs and index are written and before
/// its snapshot is. Lets tests run prune or a second backup at exactly the
/// moment a backup is most exposed.
async fn hold_before_commit() {
    if let Some(p) = std::env::var_os("CADANG_TEST_HOLD_BEFORE_COMMIT") {
        let p = PathBuf::from(p);
        let ready = p.with_extension("waiting");
        let _ = std::fs::write(&ready, b"");
        while p.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = std::fs::remove_file(&ready);
    }
}
