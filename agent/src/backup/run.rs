//! The stages of one backup ([`super::backup_with_signals`]): resolve the
//! sources, open the session, start the pipeline threads, walk and wait for
//! every thread, then commit the snapshot — or abort the session so nothing
//! half-written is left referenced.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use cadang_core::chunker::Chunker;
use cadang_core::keys::Credentials;
use cadang_core::session::BackupSession;
use cadang_core::snapshot::{SnapshotBody, SnapshotMeta, SnapshotStats};
use cadang_core::tree::FileName;
use cadang_core::{Id, Repository};
use globset::GlobSet;

use super::{hold_before_commit, run_command, BackupError, BackupOptions, BackupSummary, Source};
use crate::cache::FileCache;
use crate::progress::Progress;
use crate::signals::{self, Observer, SignalOptions};
use crate::walk::{self, PathTrie, Walker};

/// Checks every source path exists and arranges them as a trie from `/`.
/// A command source has no paths: both are empty.
pub(super) fn resolve_paths(source: &Source) -> Result<(PathTrie, Vec<PathBuf>), BackupError> {
    let mut trie = PathTrie::default();
    let mut abs_paths = Vec::new();
    let Source::Paths(paths) = source else {
        return Ok((trie, abs_paths));
    };
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
    Ok((trie, abs_paths))
}

/// The paths the snapshot records and, for a command source, the command.
pub(super) struct SnapshotPaths {
    paths: Vec<FileName>,
    stdin_command: Option<String>,
}

pub(super) fn snapshot_paths(source: &Source, abs_paths: &[PathBuf]) -> SnapshotPaths {
    match source {
        Source::Paths(_) => SnapshotPaths {
            paths: abs_paths
                .iter()
                .map(|p| FileName(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec()))
                .collect(),
            stdin_command: None,
        },
        Source::Command { name, command } => SnapshotPaths {
            paths: vec![FileName(format!("/{name}").into_bytes())],
            stdin_command: Some(command.clone()),
        },
    }
}

/// What the walker, the pipeline threads and the commit share for one backup.
pub(super) struct Run {
    session: Arc<BackupSession>,
    cache: Option<Arc<FileCache>>,
    observer: Option<Arc<Observer>>,
    fatal: walk::Fatal,
    problems: walk::Problems,
    progress: Arc<Progress>,
}

/// The walker and the threads it feeds, running.
pub(super) struct Pipeline {
    walker: Walker,
    threads: Vec<JoinHandle<()>>,
}

/// How the walk and the pipeline threads ended, once all have stopped.
pub(super) struct Outcome {
    walked: Result<walk::Slot, BackupError>,
    joined: Result<(), BackupError>,
}

/// A finished walk whose every chunk and tree is stored: ready to commit.
pub(super) struct Settled {
    session: BackupSession,
    tree: Id,
    cache: Option<Arc<FileCache>>,
    observer: Option<Arc<Observer>>,
    problems: walk::Problems,
    progress: Arc<Progress>,
}

impl Run {
    /// Opens the file cache, the signal observer and the backup session.
    pub(super) async fn open(
        repo: &Arc<Repository>,
        credentials: Credentials,
        opts: &BackupOptions,
        signal_opts: &SignalOptions,
        abs_paths: &[PathBuf],
        progress: Arc<Progress>,
    ) -> Result<Self, BackupError> {
        let cache = match &opts.cache_dir {
            Some(dir) => FileCache::open(dir, &repo.config.id).map(Arc::new),
            None => None,
        };
        let observer = Observer::start(
            signal_opts,
            opts.cache_dir.as_deref(),
            &repo.config.id,
            abs_paths,
        )
        .map(Arc::new);
        // The chunk index lives beside the file cache, so a backup's memory and
        // start-up do not grow with the repository (core::index_cache).
        let session = Arc::new(
            BackupSession::start_with_cache(repo.clone(), credentials, opts.cache_dir.as_deref())
                .await?,
        );
        Ok(Self {
            session,
            cache,
            observer,
            fatal: Arc::new(Mutex::new(None)),
            problems: Arc::new(Mutex::new(Vec::new())),
            progress,
        })
    }

    /// Starts the workers and the tree assembler, and builds the walker
    /// that feeds them through bounded channels.
    pub(super) fn spawn_pipeline(
        &self,
        repo: &Repository,
        workers: usize,
        excludes: GlobSet,
        name_excludes: GlobSet,
    ) -> Result<Pipeline, BackupError> {
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(workers.max(1) * 2);
        let (dirs_tx, dirs_rx) = crossbeam_channel::bounded(4096);
        let new_data = self.observer.as_ref().map(|o| o.new_data.clone());
        let mut threads = Vec::new();
        for i in 0..workers.max(1) {
            let (s, rx, f) = (self.session.clone(), jobs_rx.clone(), self.fatal.clone());
            let nd = new_data.clone();
            threads.push(spawn(format!("cadang-worker-{i}"), move || {
                walk::worker(s, rx, f, nd)
            })?);
        }
        drop(jobs_rx);
        let (s, c, p, f, pr) = (
            self.session.clone(),
            self.cache.clone(),
            self.problems.clone(),
            self.fatal.clone(),
            self.progress.clone(),
        );
        threads.push(spawn("cadang-trees".into(), move || {
            walk::assembler(s, dirs_rx, c, p, f, pr)
        })?);
        let walker = Walker {
            session: self.session.clone(),
            chunker: Chunker::new(repo.config.chunker.clone(), self.session.secret().gear_seed),
            jobs: jobs_tx,
            dirs: dirs_tx,
            cache: self.cache.clone(),
            excludes,
            name_excludes,
            problems: self.problems.clone(),
            fatal: self.fatal.clone(),
            progress: self.progress.clone(),
            signals: self.observer.clone(),
        };
        Ok(Pipeline { walker, threads })
    }

    /// Takes the session back from the finished pipeline. Any failure — the
    /// walk's, a thread's, or a fatal store error — aborts the session.
    pub(super) async fn settle(self, outcome: Outcome) -> Result<Settled, BackupError> {
        let session = Arc::try_unwrap(self.session)
            .map_err(|_| BackupError::Internal("backup session still shared".into()))?;
        let fatal = self.fatal.lock().expect("not poisoned").take();
        let slot = match (outcome.walked, outcome.joined, fatal) {
            (_, _, Some(e)) => Err(BackupError::Repository(e)),
            (Err(e), _, _) | (_, Err(e), _) => Err(e),
            (Ok(slot), Ok(()), None) => Ok(slot),
        };
        let slot = match slot {
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
        Ok(Settled {
            session,
            tree,
            cache: self.cache,
            observer: self.observer,
            problems: self.problems,
            progress: self.progress,
        })
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, BackupError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map_err(|e| BackupError::Internal(e.to_string()))
}

impl Pipeline {
    /// Walks the source on a blocking thread, then waits for the workers
    /// and the assembler. The walker is dropped when the walk ends, which
    /// closes the channels so the threads finish.
    pub(super) async fn finish(
        self,
        source: Source,
        trie: PathTrie,
    ) -> Result<Outcome, BackupError> {
        let Pipeline {
            mut walker,
            threads,
        } = self;
        let walked = tokio::task::spawn_blocking(move || -> Result<walk::Slot, BackupError> {
            let slot = match source {
                Source::Paths(_) => walker.walk_trie(Path::new("/"), &trie),
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
        Ok(Outcome { walked, joined })
    }
}

impl Settled {
    /// Writes the snapshot, then flushes the file cache and saves the
    /// signal table — only once the snapshot that justifies them exists.
    pub(super) async fn commit(
        self,
        paths: SnapshotPaths,
        opts: BackupOptions,
        started: Instant,
    ) -> Result<BackupSummary, BackupError> {
        let recovered_packs = self.session.recovered_packs;
        let stats = SnapshotStats {
            files: self.progress.files.load(Ordering::Relaxed),
            dirs: self.progress.dirs.load(Ordering::Relaxed),
            bytes: self.progress.bytes.load(Ordering::Relaxed),
            duration_ms: started.elapsed().as_millis() as u64,
            ..Default::default()
        };
        let meta = SnapshotMeta {
            host: opts.host,
            tags: opts.tags,
            agent: opts.agent,
        };
        let body = SnapshotBody {
            paths: paths.paths,
            tree: self.tree,
            stdin_command: paths.stdin_command,
            excludes: opts.excludes,
        };
        // The walker and workers are done, so this is the last reference.
        let measured = self
            .observer
            .and_then(|o| Arc::try_unwrap(o).ok())
            .map(Observer::finish);
        hold_before_commit().await;
        let (id, snap) = self.session.commit(meta, body, stats).await?;
        if let Some(c) = &self.cache {
            c.flush();
        }
        let signals = measured.map(|(s, table)| {
            signals::save_table(table);
            s
        });
        let problems = std::mem::take(&mut *self.problems.lock().expect("not poisoned"));
        Ok(BackupSummary {
            snapshot: id,
            stats: snap.payload.stats,
            problems,
            recovered_packs,
            signals,
        })
    }
}
