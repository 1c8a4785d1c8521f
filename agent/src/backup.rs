//! Backing up paths or a command's output into a repository.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cadang_core::chunker::Chunker;
use cadang_core::keys::Credentials;
use cadang_core::session::BackupSession;
use cadang_core::snapshot::{SnapshotBody, SnapshotMeta, SnapshotStats};
use cadang_core::tree::FileName;
use cadang_core::{Id, Repository};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::cache::FileCache;
use crate::signals::{self, Observer, SignalOptions};
use crate::walk::{self, PathTrie, Walker};

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
    let mut trie = PathTrie::default();
    let mut abs_paths = Vec::new();
    if let Source::Paths(paths) = &source {
        if paths.is_empty() {
            return Err(BackupError::Source {
                path: "(none)".into(),
                reason: "give at least one path to back up".into(),
            });
        }
        for p in paths {
            let abs = walk::absolute(p).map_err(|e| BackupError::Source {
                path: p.display().to_string(),
                reason: e.to_string(),
            })?;
            std::fs::symlink_metadata(&abs).map_err(|e| BackupError::Source {
                path: abs.display().to_string(),
                reason: e.to_string(),
            })?;
            trie.insert(&abs);
            abs_paths.push(abs);
        }
    }

    let cache = match &opts.cache_dir {
        Some(dir) => FileCache::open(dir, &repo.config.id).map(Arc::new),
        None => None,
    };
    let observer = Observer::start(
        &signal_opts,
        opts.cache_dir.as_deref(),
        &repo.config.id,
        &abs_paths,
    )
    .map(Arc::new);
    let new_data = observer.as_ref().map(|o| o.new_data.clone());
    // The chunk index lives beside the file cache, so a backup's memory and
    // start-up do not grow with the repository (core::index_cache).
    let session = Arc::new(
        BackupSession::start_with_cache(repo.clone(), credentials, opts.cache_dir.as_deref())
            .await?,
    );
    let fatal: walk::Fatal = Arc::new(Mutex::new(None));
    let problems: walk::Problems = Arc::new(Mutex::new(Vec::new()));
    let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(opts.workers.max(1) * 2);
    let (dirs_tx, dirs_rx) = crossbeam_channel::bounded(4096);

    let mut threads = Vec::new();
    for i in 0..opts.workers.max(1) {
        let (s, rx, f) = (session.clone(), jobs_rx.clone(), fatal.clone());
        let nd = new_data.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("cadang-worker-{i}"))
                .spawn(move || walk::worker(s, rx, f, nd))
                .map_err(|e| BackupError::Internal(e.to_string()))?,
        );
    }
    drop(jobs_rx);
    {
        let (s, c, p, f, pr) = (
            session.clone(),
            cache.clone(),
            problems.clone(),
            fatal.clone(),
            progress.clone(),
        );
        threads.push(
            std::thread::Builder::new()
                .name("cadang-trees".into())
                .spawn(move || walk::assembler(s, dirs_rx, c, p, f, pr))
                .map_err(|e| BackupError::Internal(e.to_string()))?,
        );
    }

    let mut walker = Walker {
        session: session.clone(),
        chunker: Chunker::new(repo.config.chunker.clone(), session.secret().gear_seed),
        jobs: jobs_tx,
        dirs: dirs_tx,
        cache: cache.clone(),
        excludes,
        name_excludes,
        problems: problems.clone(),
        fatal: fatal.clone(),
        progress: progress.clone(),
        signals: observer.clone(),
    };
    let (body_paths, stdin_command) = match &source {
        Source::Paths(_) => (
            abs_paths
                .iter()
                .map(|p| FileName(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec()))
                .collect(),
            None,
        ),
        Source::Command { name, command } => (
            vec![FileName(format!("/{name}").into_bytes())],
            Some(command.clone()),
        ),
    };
    let walked = tokio::task::spawn_blocking(move || -> Result<walk::Slot, BackupError> {
        let slot = match source {
            Source::Paths(_) => walker.walk_trie(std::path::Path::new("/"), &trie),
            Source::Command { name, command } => run_command(&mut walker, &name, &command)?,
        };
        drop(walker); // closes the channels so the workers and assembler finish
        Ok(slot)
    })
    .await
    .map_err(|e| BackupError::Internal(e.to_string()))?;
    let joined = tokio::task::spawn_blocking(move || {
        for t in threads {
            if t.join().is_err() {
                return Err(BackupError::Internal("a backup thread panicked".into()));
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| BackupError::Internal(e.to_string()))?;

    let session = Arc::try_unwrap(session)
        .map_err(|_| BackupError::Internal("backup session still shared".into()))?;
    let failure = match (walked, joined, fatal.lock().expect("not poisoned").take()) {
        (_, _, Some(e)) => Err(BackupError::Repository(e)),
        (Err(e), _, _) | (_, Err(e), _) => Err(e),
        (Ok(slot), Ok(()), None) => Ok(slot),
    };
    let slot = match failure {
        Ok(s) => s,
        Err(e) => {
            session.abort().await;
            return Err(e);
        }
    };
    let Some(tree) = slot.get().copied() else {
        session.abort().await;
        return Err(BackupError::Internal("the root tree was not stored".into()));
    };
    let recovered_packs = session.recovered_packs;
    let stats = SnapshotStats {
        files: progress.files.load(Ordering::Relaxed),
        dirs: progress.dirs.load(Ordering::Relaxed),
        bytes: progress.bytes.load(Ordering::Relaxed),
        duration_ms: started.elapsed().as_millis() as u64,
        ..Default::default()
    };
    let meta = SnapshotMeta {
        host: opts.host,
        tags: opts.tags,
        agent: opts.agent,
    };
    let body = SnapshotBody {
        paths: body_paths,
        tree,
        stdin_command,
        excludes: opts.excludes,
    };
    // The walker and workers are done, so this is the last reference.
    let measured = observer
        .and_then(|o| Arc::try_unwrap(o).ok())
        .map(Observer::finish);
    hold_before_commit().await;
    let (id, snap) = session.commit(meta, body, stats).await?;
    if let Some(c) = &cache {
        c.flush();
    }
    let signals = measured.map(|(s, table)| {
        signals::save_table(table);
        s
    });
    let problems = std::mem::take(&mut *problems.lock().expect("not poisoned"));
    Ok(BackupSummary {
        snapshot: id,
        stats: snap.payload.stats,
        problems,
        recovered_packs,
        signals,
    })
}

/// Runs `sh -c command`, chunking its output as it comes. A non-zero exit
/// fails the backup: a truncated dump must never look like a good one.
fn run_command(walker: &mut Walker, name: &str, command: &str) -> Result<walk::Slot, BackupError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(BackupError::Source {
            path: name.into(),
            reason: "--stdin-name must be a plain file name".into(),
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
