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

async fn prune_locked(repo: &Repository) -> Result<PruneReport> {
    let b = repo.backend();
    let mut report = PruneReport::default();

    // 1. Mark packs that no snapshot needs and no earlier mark holds.
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
    if !candidates.is_empty() {
        report.newly_marked = candidates.len();
        let mark = PruneMark {
            created: chrono::Local::now().fixed_offset(),
            packs: candidates,
        };
        let data = serde_json::to_vec(&mark).expect("serialisable");
        b.write_new(FileKind::Pending, &Id::of_bytes(&data).to_hex(), data)
            .await?;
    }

    // 2. Sweep every mark that all live backups have seen. Locks are read
    //    before snapshots: a backup that finished in between is visible.
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
        } else {
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
    }

    // 3. Retention: a locked pack stays, and so do its index entries. An
    //    index file that cannot be deleted keeps every pack it lists, so no
    //    index is left pointing at a deleted pack.
    let mut locked_packs: HashSet<Id> = HashSet::new();
    for p in &doomed {
        if let Some(t) = b.retained_until(FileKind::Packs, &p.to_hex()).await? {
            locked_packs.insert(*p);
            report.locked.push(LockedFile {
                kind: FileKind::Packs.to_string(),
                name: p.to_hex(),
                until: rfc3339(t),
            });
        }
    }
    doomed.retain(|p| !locked_packs.contains(p));
    let mut rewrite = Vec::new();
    if !doomed.is_empty() {
        for f in b.list(FileKind::Index).await? {
            let data = match b.read(FileKind::Index, &f.name).await {
                Ok(d) => d,
                Err(BackendError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let Ok(idx) = IndexFile::parse(&f.name, &data) else {
                continue;
            };
            if !idx.packs.iter().any(|p| doomed.contains(&p.id)) {
                continue;
            }
            if let Some(t) = b.retained_until(FileKind::Index, &f.name).await? {
                for p in &idx.packs {
                    if doomed.contains(&p.id) {
                        locked_packs.insert(p.id);
                    }
                }
                report.locked.push(LockedFile {
                    kind: FileKind::Index.to_string(),
                    name: f.name.clone(),
                    until: rfc3339(t),
                });
                continue;
            }
            rewrite.push((f.name, idx));
        }
    }
    doomed.retain(|p| !locked_packs.contains(p));

    // 4. Index first, then packs: a crash in between leaves unindexed
    //    garbage (removed next time), never an index pointing at nothing.
    for (name, idx) in rewrite {
        if !idx.packs.iter().any(|p| doomed.contains(&p.id)) {
            // Only packs kept for a locked index file: nothing to change.
            continue;
        }
        let (gone, keep): (Vec<_>, Vec<_>) =
            idx.packs.into_iter().partition(|p| doomed.contains(&p.id));
        if !keep.is_empty() {
            write_index(repo, keep).await?;
        }
        match b.delete(FileKind::Index, &name).await {
            Ok(()) | Err(BackendError::NotFound { .. }) => {}
            // Locked since we asked: it still lists these packs, so they stay.
            Err(BackendError::Locked { kind, name, until }) => {
                locked_packs.extend(gone.iter().map(|p| p.id));
                report.locked.push(LockedFile {
                    kind: kind.to_string(),
                    name,
                    until,
                });
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        report.rewritten_index_files += 1;
    }
    doomed.retain(|p| !locked_packs.contains(p));
    for p in &doomed {
        let name = p.to_hex();
        let size = b.stat(FileKind::Packs, &name).await?.unwrap_or(0);
        match b.delete(FileKind::Packs, &name).await {
            Ok(()) => {
                report.deleted_packs += 1;
                report.deleted_bytes += size;
            }
            Err(BackendError::NotFound { .. }) => {}
            // Its index entries are gone already: it is now unindexed
            // garbage that a later prune removes once the lock expires.
            Err(BackendError::Locked { kind, name, until }) => {
                locked_packs.insert(*p);
                report.locked.push(LockedFile {
                    kind: kind.to_string(),
                    name,
                    until,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    // A mark whose packs could not all go stays for a later prune.
    let swept: Vec<String> = swept
        .into_iter()
        .filter(|name| {
            marks
                .iter()
                .find(|(n, _)| n == name)
                .is_none_or(|(_, m)| !m.packs.iter().any(|p| locked_packs.contains(p)))
        })
        .collect();
    for name in swept {
        if let Deleted::Locked(l) = delete_unless_locked(repo, FileKind::Pending, &name).await? {
            report.locked.push(l);
        }
    }
    Ok(report)
}
