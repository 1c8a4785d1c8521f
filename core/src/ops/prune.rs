//! Forget and prune, keyless and safe beside running backups.
//!
//! `forget` only deletes snapshot files. `prune` removes packs no snapshot
//! needs, in two steps (mark, then sweep) so that a backup running at the
//! same time never loses a pack it uses; see the `lock` module for the
//! protocol and why it is safe.
//!
//! Files under retention (S3 Object Lock) cannot be deleted before their
//! date. Both commands ask `retained_until` before deleting and keep such
//! files, and list them in their report (`locked`); that is not an error,
//! because the retention was set on purpose. Prune keeps a locked pack *and*
//! its index entries, keeps every pack that a locked index file mentions
//! (so no index is ever left pointing at a deleted pack), and keeps a mark
//! whose packs could not all go, so the next prune after the date finishes
//! the job.

use std::collections::HashSet;
use std::time::SystemTime;

use serde::Serialize;

use crate::backend::{BackendError, FileKind};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::IndexFile;
use crate::lock::{self, PruneLock, PruneMark};
use crate::repository::Repository;
use crate::session::write_index;

/// A file kept because the store holds it under retention.
#[derive(Debug, Clone, Serialize)]
pub struct LockedFile {
    pub kind: String,
    pub name: String,
    /// RFC 3339 (or the store's own words, e.g. for a legal hold).
    pub until: String,
}

#[derive(Debug, Default, Serialize)]
pub struct ForgetReport {
    pub deleted: usize,
    /// Snapshot files under Object Lock: still there, still counted by prune.
    pub locked: Vec<LockedFile>,
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What happened to one delete.
enum Deleted {
    Yes,
    Missing,
    Locked(LockedFile),
}

/// Deletes a file unless the store holds it under retention.
async fn delete_unless_locked(repo: &Repository, kind: FileKind, name: &str) -> Result<Deleted> {
    let b = repo.backend();
    let locked = |until: String| {
        Deleted::Locked(LockedFile {
            kind: kind.to_string(),
            name: name.to_string(),
            until,
        })
    };
    if let Some(t) = b.retained_until(kind, name).await? {
        return Ok(locked(rfc3339(t)));
    }
    match b.delete(kind, name).await {
        Ok(()) => Ok(Deleted::Yes),
        Err(BackendError::NotFound { .. }) => Ok(Deleted::Missing),
        // The store's clock disagrees with ours, or a legal hold.
        Err(BackendError::Locked { until, .. }) => Ok(locked(until)),
        Err(e) => Err(e.into()),
    }
}

pub async fn forget(repo: &Repository, ids: &[Id]) -> Result<ForgetReport> {
    let mut report = ForgetReport::default();
    for id in ids {
        match delete_unless_locked(repo, FileKind::Snapshots, &id.to_hex()).await? {
            Deleted::Yes => report.deleted += 1,
            Deleted::Missing => {}
            Deleted::Locked(l) => report.locked.push(l),
        }
    }
    Ok(report)
}

/// How long the latest of `locked` stays locked (RFC 3339 dates sort as text).
pub fn latest_until(locked: &[LockedFile]) -> Option<&str> {
    locked.iter().map(|l| l.until.as_str()).max()
}

#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    pub newly_marked: usize,
    pub deleted_packs: usize,
    pub deleted_bytes: u64,
    pub rewritten_index_files: usize,
    /// Marks kept because a running backup has not seen them yet.
    pub deferred_marks: usize,
    pub deferred_by: Vec<String>,
    /// Files that would have been deleted but are under retention (Object
    /// Lock); they stay, with the index entries for them.
    pub locked: Vec<LockedFile>,
}

async fn referenced_packs(repo: &Repository) -> Result<HashSet<Id>> {
    let (snapshots, bad) = repo.snapshots().await?;
    if let Some((name, e)) = bad.first() {
        return Err(Error::Conflict(format!(
            "refusing to prune: snapshot {name} is unreadable ({e}); its packs cannot be told apart from garbage. Check the repository, then repair or forget that snapshot first"
        )));
    }
    Ok(snapshots
        .iter()
        .flat_map(|s| s.payload.packs.iter().copied())
        .collect())
}

/// A lock belongs to a live backup unless it is stale, or it is from this
/// host and its process is gone.
fn is_live(l: &lock::LockInfo) -> bool {
    if l.is_stale() {
        return false;
    }
    if l.host == lock::hostname() && l.kind != "unreadable" {
        // SAFETY: kill with signal 0 only checks that the process exists.
        let r = unsafe { libc::kill(l.pid as libc::pid_t, 0) };
        if r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
            return false;
        }
    }
    true
}

pub async fn prune(repo: &Repository) -> Result<PruneReport> {
    let b = repo.backend().clone();
    let guard = PruneLock::acquire(b.clone()).await?;
    let result = prune_locked(repo).await;
    guard.release().await?;
    result
}

/// What one prune decided and did so far; the stages below fill it in.
struct Sweep {
    report: PruneReport,
    /// Marks every live backup has seen, with their packs.
    marks: Vec<(String, PruneMark)>,
    swept: Vec<String>,
    /// Packs to delete: marked, swept, and still unreferenced.
    doomed: HashSet<Id>,
    /// Packs that must stay (retention on them or on an index naming them).
    locked_packs: HashSet<Id>,
}

impl Sweep {
    fn keep_locked(&mut self) {
        let locked = &self.locked_packs;
        self.doomed.retain(|p| !locked.contains(p));
    }
}

async fn prune_locked(repo: &Repository) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    mark_unreferenced(repo, &mut report).await?;
    let mut sweep = plan_sweep(repo, report).await?;
    keep_retained_packs(repo, &mut sweep).await?;
    let rewrite = index_files_to_rewrite(repo, &mut sweep).await?;
    // Index first, then packs: a crash in between leaves unindexed garbage
    // (removed next time), never an index pointing at nothing.
    rewrite_index_files(repo, &rewrite, &mut sweep).await?;
    delete_packs(repo, &mut sweep).await?;
    delete_swept_marks(repo, sweep).await
}

/// Stage 1: marks the packs that no snapshot needs and no earlier mark holds.
async fn mark_unreferenced(repo: &Repository, report: &mut PruneReport) -> Result<()> {
    let b = repo.backend();
    let referenced = referenced_packs(repo).await?;
    let marks = lock::read_marks(b.as_ref()).await?;
    let already: HashSet<Id> = marks
        .iter()
        .flat_map(|(_, m)| m.packs.iter().copied())
        .collect();
    let candidates: Vec<Id> = b
        .list(FileKind::Packs)
        .await?
        .iter()
        .filter_map(|f| f.name.parse::<Id>().ok())
        .filter(|id| !referenced.contains(id) && !already.contains(id))
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    report.newly_marked = candidates.len();
    let mark = PruneMark {
        created: chrono::Local::now().fixed_offset(),
        packs: candidates,
    };
    let data = serde_json::to_vec(&mark).expect("serialisable");
    b.write_new(FileKind::Pending, &Id::of_bytes(&data).to_hex(), data)
        .await?;
    Ok(())
}

/// Stage 2: the marks every live backup has seen are swept. Locks are read
/// before snapshots: a backup that finished in between is visible.
async fn plan_sweep(repo: &Repository, mut report: PruneReport) -> Result<Sweep> {
    let b = repo.backend();
    let marks = lock::read_marks(b.as_ref()).await?;
    let live: Vec<lock::LockInfo> = lock::read_locks(b.as_ref())
        .await?
        .into_iter()
        .filter(|(name, l)| name != lock::PRUNE_LOCK && is_live(l))
        .map(|(_, l)| l)
        .collect();
    let referenced = referenced_packs(repo).await?;
    let mut doomed: HashSet<Id> = HashSet::new();
    let mut swept = Vec::new();
    for (name, m) in &marks {
        let blockers: Vec<&lock::LockInfo> = live
            .iter()
            .filter(|l| !l.seen_marks.contains(name))
            .collect();
        if blockers.is_empty() {
            doomed.extend(m.packs.iter().filter(|p| !referenced.contains(p)));
            swept.push(name.clone());
            continue;
        }
        report.deferred_marks += 1;
        for l in blockers {
            let who = format!(
                "{} backup on {} (pid {}) since {}",
                l.kind, l.host, l.pid, l.created
            );
            if !report.deferred_by.contains(&who) {
                report.deferred_by.push(who);
            }
        }
    }
    Ok(Sweep {
        report,
        marks,
        swept,
        doomed,
        locked_packs: HashSet::new(),
    })
}

/// Stage 3: a pack under retention stays, and so do its index entries.
async fn keep_retained_packs(repo: &Repository, sweep: &mut Sweep) -> Result<()> {
    let b = repo.backend();
    for p in &sweep.doomed {
        if let Some(t) = b.retained_until(FileKind::Packs, &p.to_hex()).await? {
            sweep.locked_packs.insert(*p);
            sweep.report.locked.push(LockedFile {
                kind: FileKind::Packs.to_string(),
                name: p.to_hex(),
                until: rfc3339(t),
            });
        }
    }
    sweep.keep_locked();
    Ok(())
}

/// Stage 4: the index files naming a doomed pack. One file is in memory at
/// a time and only names are kept (prune's memory is per pack and per
/// index file, never per chunk); they are read again when rewritten. An
/// index file that cannot be deleted keeps every pack it lists, so no index
/// is left pointing at a deleted pack.
async fn index_files_to_rewrite(repo: &Repository, sweep: &mut Sweep) -> Result<Vec<String>> {
    let b = repo.backend();
    let mut rewrite = Vec::new();
    if sweep.doomed.is_empty() {
        return Ok(rewrite);
    }
    for f in b.list(FileKind::Index).await? {
        let data = match b.read(FileKind::Index, &f.name).await {
            Ok(d) => d,
            Err(BackendError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let Ok(idx) = IndexFile::parse(&f.name, &data) else {
            continue;
        };
        drop(data);
        if !idx.packs.iter().any(|p| sweep.doomed.contains(&p.id)) {
            continue;
        }
        if let Some(t) = b.retained_until(FileKind::Index, &f.name).await? {
            for p in &idx.packs {
                if sweep.doomed.contains(&p.id) {
                    sweep.locked_packs.insert(p.id);
                }
            }
            sweep.report.locked.push(LockedFile {
                kind: FileKind::Index.to_string(),
                name: f.name.clone(),
                until: rfc3339(t),
            });
            continue;
        }
        rewrite.push(f.name);
    }
    sweep.keep_locked();
    Ok(rewrite)
}

/// Stage 5: each index file naming a doomed pack is replaced by one without
/// it (new file first, old deleted after).
async fn rewrite_index_files(repo: &Repository, names: &[String], sweep: &mut Sweep) -> Result<()> {
    let b = repo.backend();
    for name in names {
        // Index files are immutable and named by their hash, and the prune
        // lock keeps other prunes out: this is the file seen in stage 4.
        let data = match b.read(FileKind::Index, name).await {
            Ok(d) => d,
            Err(BackendError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let idx = IndexFile::parse(name, &data)?;
        drop(data);
        if !idx.packs.iter().any(|p| sweep.doomed.contains(&p.id)) {
            // Only packs kept for a locked index file: nothing to change.
            continue;
        }
        let (gone, keep): (Vec<_>, Vec<_>) = idx
            .packs
            .into_iter()
            .partition(|p| sweep.doomed.contains(&p.id));
        if !keep.is_empty() {
            write_index(repo, keep).await?;
        }
        match b.delete(FileKind::Index, name).await {
            Ok(()) | Err(BackendError::NotFound { .. }) => {}
            // Locked since we asked: it still lists these packs, so they stay.
            Err(BackendError::Locked { kind, name, until }) => {
                sweep.locked_packs.extend(gone.iter().map(|p| p.id));
                sweep.report.locked.push(LockedFile {
                    kind: kind.to_string(),
                    name,
                    until,
                });
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        sweep.report.rewritten_index_files += 1;
    }
    sweep.keep_locked();
    Ok(())
}

/// Stage 6: the doomed packs go.
async fn delete_packs(repo: &Repository, sweep: &mut Sweep) -> Result<()> {
    let b = repo.backend();
    for p in &sweep.doomed {
        let name = p.to_hex();
        let size = b.stat(FileKind::Packs, &name).await?.unwrap_or(0);
        match b.delete(FileKind::Packs, &name).await {
            Ok(()) => {
                sweep.report.deleted_packs += 1;
                sweep.report.deleted_bytes += size;
            }
            Err(BackendError::NotFound { .. }) => {}
            // Its index entries are gone already: it is now unindexed
            // garbage that a later prune removes once the lock expires.
            Err(BackendError::Locked { kind, name, until }) => {
                sweep.locked_packs.insert(*p);
                sweep.report.locked.push(LockedFile {
                    kind: kind.to_string(),
                    name,
                    until,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Stage 7: swept marks are deleted, except one whose packs could not all
/// go: it stays for a later prune.
async fn delete_swept_marks(repo: &Repository, sweep: Sweep) -> Result<PruneReport> {
    let Sweep {
        mut report,
        marks,
        swept,
        locked_packs,
        ..
    } = sweep;
    let done = swept.into_iter().filter(|name| {
        marks
            .iter()
            .find(|(n, _)| n == name)
            .is_none_or(|(_, m)| !m.packs.iter().any(|p| locked_packs.contains(p)))
    });
    for name in done {
        if let Deleted::Locked(l) = delete_unless_locked(repo, FileKind::Pending, &name).await? {
            report.locked.push(l);
        }
    }
    Ok(report)
}
