//! Forget and prune, keyless and safe beside running backups.
//!
//! `forget` only deletes snapshot files. `prune` removes packs no snapshot
//! needs, in two steps (mark, then sweep) so that a backup running at the
//! same time never loses a pack it uses; see the `lock` module for the
//! protocol and why it is safe.

use std::collections::HashSet;

use serde::Serialize;

use crate::backend::{BackendError, FileKind};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::IndexFile;
use crate::lock::{self, PruneLock, PruneMark};
use crate::repository::Repository;
use crate::session::write_index;

pub async fn forget(repo: &Repository, ids: &[Id]) -> Result<()> {
    for id in ids {
        match repo
            .backend()
            .delete(FileKind::Snapshots, &id.to_hex())
            .await
        {
            Ok(()) | Err(BackendError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
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
}

async fn referenced_packs(repo: &Repository) -> Result<HashSet<Id>> {
    let (snapshots, bad) = repo.snapshots().await?;
    if let Some((name, e)) = bad.first() {
        return Err(Error::Conflict(format!(
            "refusing to prune: snapshot {name} is unreadable ({e}); its packs cannot be told apart from garbage. Run `cadang check` and repair or forget it first"
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

    // 3. Index first, then packs: a crash in between leaves unindexed
    //    garbage (removed next time), never an index pointing at nothing.
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
            let keep: Vec<_> = idx
                .packs
                .into_iter()
                .filter(|p| !doomed.contains(&p.id))
                .collect();
            if !keep.is_empty() {
                write_index(repo, keep).await?;
            }
            b.delete(FileKind::Index, &f.name).await?;
            report.rewritten_index_files += 1;
        }
        for p in &doomed {
            let name = p.to_hex();
            let size = b.stat(FileKind::Packs, &name).await?.unwrap_or(0);
            match b.delete(FileKind::Packs, &name).await {
                Ok(()) => {
                    report.deleted_packs += 1;
                    report.deleted_bytes += size;
                }
                Err(BackendError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    for name in swept {
        match b.delete(FileKind::Pending, &name).await {
            Ok(()) | Err(BackendError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}
