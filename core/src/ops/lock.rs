//! Locks and prune marks: how backups and prune run at the same time.
//!
//! | who        | writes                  | reads                      |
//! |------------|-------------------------|----------------------------|
//! | backup     | `locks/<random>` (shared, refreshed every minute), then `seen_marks` | `pending/*` |
//! | prune      | `locks/prune` (exclusive among prunes), `pending/<id>` marks | `locks/*`, `snapshots/*` |
//!
//! Prune never deletes a pack the moment it finds it unreferenced. It first
//! writes a *mark* listing such packs. A backup that has seen a mark does not
//! deduplicate against the marked packs (it stores those chunks again). A
//! mark is swept (its packs deleted) only when every live backup lock lists it
//! in `seen_marks` — so no running backup can still be pointing at a marked
//! pack — and only packs that are still unreferenced after reading the
//! snapshots *after* the locks are deleted. A backup that finished in the
//! meantime wrote its snapshot before removing its lock, so its packs are
//! seen as referenced. Locks not refreshed for `STALE_AFTER` belong to dead
//! backups and are ignored; a backup also lists the packs it references right
//! before writing its snapshot and fails rather than commit a snapshot with a
//! missing pack.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendError, FileKind};
use crate::error::{Error, Result};
use crate::id::Id;

pub const REFRESH_EVERY: Duration = Duration::from_secs(60);
pub const STALE_AFTER_SECS: i64 = 30 * 60;
pub const PRUNE_LOCK: &str = "prune";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockInfo {
    pub kind: String,
    pub host: String,
    pub pid: u32,
    pub created: DateTime<FixedOffset>,
    pub refreshed: DateTime<FixedOffset>,
    #[serde(default)]
    pub seen_marks: Vec<String>,
}

impl LockInfo {
    fn new(kind: &str) -> LockInfo {
        let now = chrono::Local::now().fixed_offset();
        LockInfo {
            kind: kind.into(),
            host: hostname(),
            pid: std::process::id(),
            created: now,
            refreshed: now,
            seen_marks: Vec::new(),
        }
    }

    pub fn is_stale(&self) -> bool {
        (chrono::Local::now().fixed_offset() - self.refreshed).num_seconds() > STALE_AFTER_SECS
    }
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// A prune mark: packs found unreferenced at `created`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PruneMark {
    pub created: DateTime<FixedOffset>,
    pub packs: Vec<Id>,
}

pub async fn read_marks(backend: &dyn Backend) -> Result<Vec<(String, PruneMark)>> {
    let mut out = Vec::new();
    for f in backend.list(FileKind::Pending).await? {
        match backend.read(FileKind::Pending, &f.name).await {
            Ok(d) => {
                let m: PruneMark = serde_json::from_slice(&d)
                    .map_err(|e| Error::Corrupt(format!("pending/{}: {e}", f.name)))?;
                out.push((f.name, m));
            }
            Err(BackendError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

pub async fn read_locks(backend: &dyn Backend) -> Result<Vec<(String, LockInfo)>> {
    let mut out = Vec::new();
    for f in backend.list(FileKind::Locks).await? {
        match backend.read(FileKind::Locks, &f.name).await {
            Ok(d) => match serde_json::from_slice::<LockInfo>(&d) {
                Ok(l) => out.push((f.name, l)),
                // An unreadable lock is treated as live: prune must not guess.
                Err(_) => out.push((
                    f.name,
                    LockInfo {
                        kind: "unreadable".into(),
                        ..LockInfo::new("unreadable")
                    },
                )),
            },
            Err(BackendError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// A backup's shared lock, refreshed in the background until released.
pub struct BackupLock {
    backend: Arc<dyn Backend>,
    name: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// Packs marked for deletion when the backup started: not to be reused.
    pub excluded_packs: HashSet<Id>,
}

impl BackupLock {
    pub async fn acquire(backend: Arc<dyn Backend>) -> Result<BackupLock> {
        let name = format!("backup-{}", Id::random().short());
        let mut info = LockInfo::new("backup");
        let encode = |i: &LockInfo| serde_json::to_vec(i).expect("serialisable");
        backend
            .write_new(FileKind::Locks, &name, encode(&info))
            .await?;
        // Marks are read only after the lock is durable: a prune that does not
        // see this lock wrote its mark before, so the mark is seen here.
        let marks = read_marks(backend.as_ref()).await?;
        info.seen_marks = marks.iter().map(|(n, _)| n.clone()).collect();
        let excluded_packs = marks
            .iter()
            .flat_map(|(_, m)| m.packs.iter().copied())
            .collect();
        backend.write(FileKind::Locks, &name, encode(&info)).await?;

        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (b, n) = (backend.clone(), name.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(REFRESH_EVERY) => {}
                    _ = stopped.changed() => return,
                }
                info.refreshed = chrono::Local::now().fixed_offset();
                if let Err(e) = b.write(FileKind::Locks, &n, encode(&info)).await {
                    tracing::warn!(lock = %n, error = %e, "could not refresh the backup lock");
                }
            }
        });
        Ok(BackupLock {
            backend,
            name,
            stop,
            task,
            excluded_packs,
        })
    }

    pub async fn release(self) -> Result<()> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        match self.backend.delete(FileKind::Locks, &self.name).await {
            Ok(()) | Err(BackendError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Prune's exclusive lock among prunes.
pub struct PruneLock {
    backend: Arc<dyn Backend>,
}

impl PruneLock {
    pub async fn acquire(backend: Arc<dyn Backend>) -> Result<PruneLock> {
        let data = serde_json::to_vec(&LockInfo::new("prune")).expect("serialisable");
        match backend
            .write_new(FileKind::Locks, PRUNE_LOCK, data.clone())
            .await
        {
            Ok(()) => Ok(PruneLock { backend }),
            Err(BackendError::AlreadyExists { .. }) => {
                let held = backend.read(FileKind::Locks, PRUNE_LOCK).await?;
                let info: Option<LockInfo> = serde_json::from_slice(&held).ok();
                match info {
                    Some(i) if i.is_stale() => {
                        backend.write(FileKind::Locks, PRUNE_LOCK, data).await?;
                        Ok(PruneLock { backend })
                    }
                    Some(i) => Err(Error::Conflict(format!(
                        "another prune is running (host {}, pid {}, since {}); wait for it to finish",
                        i.host, i.pid, i.created
                    ))),
                    None => Err(Error::Conflict(
                        "locks/prune exists and is unreadable; if no prune is running, delete it".into(),
                    )),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn release(self) -> Result<()> {
        match self.backend.delete(FileKind::Locks, PRUNE_LOCK).await {
            Ok(()) | Err(BackendError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
