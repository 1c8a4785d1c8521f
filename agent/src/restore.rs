//! Restoring a snapshot into a directory.
//!
//! Every backed-up absolute path comes back under the target, as restic
//! does: `/srv/data/x` is restored as `TARGET/srv/data/x`. The work runs in
//! four phases so that memory stays bounded and each pack is read once:
//!
//! 1. **Plan** (`plan`): walk the trees, check every name, and record where
//!    each chunk goes (file and offset). A hostile snapshot (a name that is
//!    `..`, contains `/` or NUL, or is listed twice in one directory) is
//!    refused here, before anything is written.
//! 2. **Create** (`create::create_dirs`): directories top-down.
//! 3. **Data** (`lanes`): the needed packs, each read and decrypted once, two
//!    at a time on blocking threads (`decode`); one writer thread (`files`)
//!    creates each regular file when its first chunk arrives, writes every
//!    chunk to all its places with positional writes (holes are never
//!    written, so sparse files stay sparse), and sets the file's owner, mode
//!    and times through the same descriptor after its last chunk: each file
//!    is opened once. Files without content are created at the end.
//! 4. **Finish** (`finish`): hard links, symlinks, special files and their
//!    metadata; directories last and deepest first, so that creating their
//!    children does not change their times afterwards.
//!
//! Restore never follows a symlink below the target: files are created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW` (reopened, when one had to be closed early,
//! with `O_NOFOLLOW` and checked to be the same inode), a directory that
//! already exists is used only when it is a real directory, and symlinks
//! are created after all data is written.
//!
//! **Restoring into a non-empty target** is allowed. A directory that already
//! exists is reused (merged). Any other existing entry at a path the snapshot
//! restores (a regular file, a symlink, a fifo...) is removed and created
//! anew, never written through: an old hard link to a file elsewhere is not
//! modified, and an old symlink is not followed. An existing *directory*
//! where the snapshot has a non-directory, or an existing non-directory
//! where the snapshot has a directory, is left alone and reported as an
//! error (with nothing restored below it): restore does not delete
//! directories.
//!
//! Problems with single entries (a damaged pack, a file that cannot be
//! written, a device node without root) do not stop the restore: everything
//! else is restored and the problems are listed in
//! [`RestoreSummary::errors`].

mod create;
mod decode;
mod files;
mod finish;
mod lanes;
mod meta;
mod plan;

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;
#[cfg(test)]
mod writer_tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cadang_core::repository::BlobReader;
use cadang_core::snapshot::Snapshot;
use cadang_core::Id;

use files::Writer;
use plan::Plan;

#[derive(Clone)]
pub struct RestoreOptions {
    /// Directory to restore into; created if missing.
    pub target: PathBuf,
    /// Absolute paths (as bytes, as in the snapshot) to restore, with
    /// everything below them and their parent directories. Empty: all.
    /// A leading `/` is optional; each must match something.
    pub include: Vec<Vec<u8>>,
    /// Called at each phase and after each pack.
    pub progress: Option<Arc<dyn Fn(RestoreProgress) + Send + Sync>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestorePhase {
    /// Reading the trees; nothing written yet.
    #[default]
    Planning,
    /// Creating directories and empty files.
    Creating,
    /// Writing file contents, pack by pack.
    Data,
    /// Links, special files, owners, modes and times.
    Finishing,
    Done,
}

#[derive(Clone, Debug, Default)]
pub struct RestoreProgress {
    pub phase: RestorePhase,
    /// Non-directory entries to restore (files, links, special files).
    pub files_total: u64,
    pub dirs_total: u64,
    /// File content to write (a chunk written to two files counts twice).
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub packs_total: u64,
    pub packs_done: u64,
}

#[derive(Debug, Default)]
pub struct RestoreSummary {
    /// Non-directory entries restored completely (regular files, hard
    /// links, symlinks, special files).
    pub files: u64,
    /// Directories created or reused (the target itself not counted).
    pub dirs: u64,
    /// File content written.
    pub bytes: u64,
    /// Entries not (or not completely) restored, one line each.
    pub errors: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Repository(#[from] cadang_core::Error),
    #[error("snapshot {snapshot} contains an unsafe name {name} in {dir}: refusing to restore it (nothing was written); the snapshot is damaged or was crafted to write outside the target")]
    UnsafeName {
        snapshot: String,
        dir: String,
        name: String,
    },
    #[error("snapshot {snapshot} lists the name {name} more than once in {dir}: refusing to restore it (nothing was written); the snapshot is damaged or was crafted to write through a link")]
    DuplicateName {
        snapshot: String,
        dir: String,
        name: String,
    },
    #[error("cannot read the directory {path} in snapshot {snapshot}: {reason}")]
    Tree {
        snapshot: String,
        path: String,
        reason: String,
    },
    #[error("invalid --include {path:?}: {reason}")]
    BadInclude { path: String, reason: String },
    #[error("--include {path} matches nothing in snapshot {snapshot} (nothing was written); list its contents with `cadang ls {snapshot}`")]
    IncludeNotFound { path: String, snapshot: String },
    #[error("cannot restore into {path}: {reason}")]
    Target { path: String, reason: String },
    #[error("{path} is not in snapshot {snapshot}; list its contents with `cadang ls {snapshot}`")]
    NotFound { path: String, snapshot: String },
    #[error("{path} in snapshot {snapshot} is a {kind}, not a regular file; dump writes one file (use `cadang restore --include {path}` for anything else)")]
    NotAFile {
        path: String,
        snapshot: String,
        kind: String,
    },
    #[error("pack {pack} cannot be read ({reason}); these files are incomplete: {files}")]
    DamagedPack {
        pack: String,
        reason: String,
        files: String,
    },
    #[error("the file {path} in the snapshot is damaged: {reason}")]
    DamagedFile { path: String, reason: String },
    #[error("writing {path} to the output failed: {reason}")]
    Output { path: String, reason: String },
    #[error("restore stopped: {0}")]
    Internal(String),
}

/// A snapshot path for messages: lossy UTF-8, `/` for the root.
pub(crate) fn show(path: &[u8]) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        String::from_utf8_lossy(path).into_owned()
    }
}

/// A name for messages, quoted with control characters escaped.
pub(crate) fn quote(name: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(name))
}

/// Restores `snapshot` (or the parts named by `opts.include`) under
/// `opts.target`. Fails before writing anything when the snapshot is
/// hostile or an include matches nothing; once writing has started, single
/// entries that cannot be restored are reported in the summary instead.
pub async fn restore(
    reader: &BlobReader<'_>,
    snapshot: &Snapshot,
    opts: &RestoreOptions,
) -> Result<RestoreSummary, RestoreError> {
    let body = snapshot.body(reader.identity())?;
    let includes = plan::Includes::parse(&opts.include)?;
    let mut plan = plan::build(reader, snapshot, body.tree, &opts.target, &includes).await?;
    // The trees are read; their packs need not stay in memory beside the data.
    reader.forget_cached();

    let progress = Reporter::new(opts.progress.clone(), &plan);
    progress.phase(RestorePhase::Creating);
    let target = opts.target.clone();
    let (mut plan, writer) = blocking(move || {
        create::prepare_target(&target)?;
        create::create_dirs(&mut plan);
        let writer = Writer::new(&mut plan);
        Ok::<_, RestoreError>((plan, writer))
    })
    .await??;

    progress.phase(RestorePhase::Data);
    let chunks = std::mem::take(&mut plan.chunks);
    let (writer, data) = lanes::write_data(reader, chunks, writer, &progress).await?;

    progress.phase(RestorePhase::Finishing);
    let (plan, writer, done) = blocking(move || {
        let done = finish::finish(&plan, &writer.slots);
        (plan, writer, done)
    })
    .await?;

    let mut errors = plan.problems;
    errors.extend(data.errors);
    errors.extend(writer.errors);
    errors.extend(done.errors);
    let mut damaged = data.damaged;
    damaged.extend(plan.incomplete.iter().copied());
    damaged.extend(writer.damaged.iter().copied());
    let files_ok = writer
        .slots
        .iter()
        .enumerate()
        .filter(|(i, f)| f.created && !damaged.contains(&(*i as u32)))
        .count() as u64;
    progress.phase(RestorePhase::Done);
    Ok(RestoreSummary {
        files: files_ok + done.others,
        dirs: done.dirs,
        bytes: writer.bytes,
        errors,
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RestoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RestoreError::Internal(format!("a restore thread failed: {e}")))
}

/// Sends progress reports; counters are shared by the pack lanes.
struct Reporter {
    callback: Option<Arc<dyn Fn(RestoreProgress) + Send + Sync>>,
    base: RestoreProgress,
    bytes_done: AtomicU64,
    packs_done: AtomicU64,
    phase: Mutex<RestorePhase>,
}

impl Reporter {
    fn new(callback: Option<Arc<dyn Fn(RestoreProgress) + Send + Sync>>, plan: &Plan) -> Reporter {
        let mut packs: Vec<Id> = plan.chunks.iter().map(|c| c.loc.pack).collect();
        packs.sort_unstable();
        packs.dedup();
        Reporter {
            callback,
            base: RestoreProgress {
                phase: RestorePhase::Planning,
                files_total: (plan.files.len() + plan.others.len()) as u64,
                dirs_total: plan.dirs.len().saturating_sub(1) as u64,
                bytes_total: plan.bytes_total,
                bytes_done: 0,
                packs_total: packs.len() as u64,
                packs_done: 0,
            },
            bytes_done: AtomicU64::new(0),
            packs_done: AtomicU64::new(0),
            phase: Mutex::new(RestorePhase::Planning),
        }
    }

    fn phase(&self, phase: RestorePhase) {
        *self.phase.lock().expect("not poisoned") = phase;
        self.send();
    }

    fn pack_done(&self, bytes: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        self.packs_done.fetch_add(1, Ordering::Relaxed);
        self.send();
    }

    fn send(&self) {
        if let Some(cb) = &self.callback {
            cb(RestoreProgress {
                phase: *self.phase.lock().expect("not poisoned"),
                bytes_done: self.bytes_done.load(Ordering::Relaxed),
                packs_done: self.packs_done.load(Ordering::Relaxed),
                ..self.base.clone()
            });
        }
    }
}
