//! Keyless replication of a repository to another store (the DR site).
//!
//! Order: keys and config, then packs, then index files, then snapshots, so
//! the target is a consistent repository after every file: a snapshot is
//! copied only when every pack it needs is at the target, an index file only
//! when every pack it lists is. Every pack, index file and snapshot is
//! re-hashed against its name after it is read from the source; a mismatch
//! is never written and is reported as damage at the source (repair it from
//! the other site's copy).
//!
//! What to copy is decided by listing the target, so a run killed at any
//! point resumes without sending a finished file again: stores write files
//! atomically, a killed write leaves nothing visible. Nothing at the target
//! is ever deleted.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::backend::{Backend, BackendError, FileKind};
use crate::config::RepoConfig;
use crate::error::{Error, Result};
use crate::index::IndexFile;
use crate::ratelimit::RateLimiter;
use crate::repository::{config_bytes, existing_config};
use crate::snapshot::Snapshot;
use crate::Id;

#[derive(Clone, Debug, Default)]
pub struct ReplicateOptions {
    /// Refuse unless the source repository belongs to this PD.
    pub pd: Option<String>,
    /// Files in flight at once (each holds one file in memory).
    pub parallel: usize,
    pub limiter: Option<Arc<RateLimiter>>,
    /// Write with Object Lock retention until then.
    pub retain_until: Option<SystemTime>,
    /// Start no new file after this (the end of the replication window).
    pub deadline: Option<Instant>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Transferred {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ReplicationReport {
    pub repository: String,
    pub pd: String,
    pub keys: Transferred,
    pub packs: Transferred,
    pub index: Transferred,
    pub snapshots: Transferred,
    /// Packs, index files and snapshots the target already had.
    pub already_present: u64,
    /// Files whose bytes at the source do not match their names: not copied.
    pub corrupt_at_source: Vec<String>,
    /// Snapshots and index files held back because a pack they need is not
    /// at the target (damaged at the source, or the window ended).
    pub held_back: Vec<String>,
    /// Files still missing at the target after this run.
    pub left: u64,
    pub stopped_at_window_end: bool,
    /// Age in seconds of the newest snapshot missing at the target when the
    /// run began: how far the DR site was behind. 0 when it was up to date.
    pub lag_seconds: i64,
    pub newest_missing: Option<String>,
}

/// Copies what `to` lacks from `from`.
pub async fn replicate(
    from: Arc<dyn Backend>,
    to: Arc<dyn Backend>,
    opts: &ReplicateOptions,
) -> Result<ReplicationReport> {
    let (config_bytes, config) = source_config(&*from, &*to, opts).await?;
    let mut report = ReplicationReport {
        repository: config.id.short(),
        pd: config.pd.clone(),
        ..Default::default()
    };
    let fresh_target = prepare_target(&*to, &config).await?;
    let copier = Copier {
        from: from.clone(),
        to: to.clone(),
        opts: opts.clone(),
    };
    copier.copy_keys(&mut report).await?;
    if fresh_target {
        copier
            .write(FileKind::Config, "config", config_bytes)
            .await?;
    }
    let missing_snaps = copier.missing_snapshots(&mut report).await?;
    let present = copier.copy_packs(&mut report).await?;
    copier.copy_index(&present, &mut report).await?;
    copier
        .copy_snapshots(missing_snaps, &present, &mut report)
        .await?;
    report.corrupt_at_source.sort();
    report.corrupt_at_source.dedup();
    copier.count_left(&mut report).await?;
    Ok(report)
}

/// Reads the source's config and refuses a source of another PD, or
/// retention the target would not enforce.
async fn source_config(
    from: &dyn Backend,
    to: &dyn Backend,
    opts: &ReplicateOptions,
) -> Result<(Vec<u8>, RepoConfig)> {
    let config_bytes = config_bytes(from).await?;
    let config = RepoConfig::from_json(&config_bytes)?;
    if let Some(pd) = &opts.pd {
        if !pd.eq_ignore_ascii_case(&config.pd) {
            return Err(Error::Conflict(format!(
                "the source repository belongs to PD {}, not {pd}; check which store is the source and which PD was asked for",
                config.pd
            )));
        }
    }
    if opts.retain_until.is_some() {
        // Locks the target would not enforce are a promise nobody keeps.
        to.check_retention().await?;
    }
    Ok((config_bytes, config))
}

/// Refuses a target holding another repository; creates an empty target.
/// Returns whether the target was fresh (so its config must be written).
async fn prepare_target(to: &dyn Backend, config: &RepoConfig) -> Result<bool> {
    let fresh_target = match existing_config(to).await? {
        Some(other) if other.id != config.id => {
            return Err(Error::Conflict(format!(
                "{} holds another repository ({}, PD {}), not {} of PD {}; replicate each repository to its own store",
                to.location(),
                other.id.short(),
                other.pd,
                config.id.short(),
                config.pd
            )));
        }
        Some(_) => false,
        None => true,
    };
    if fresh_target {
        match to.create().await {
            Ok(()) | Err(BackendError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(fresh_target)
}

/// The stages of one run, in the order that keeps the target consistent
/// (see the module documentation).
impl Copier {
    /// Keys are small and not hash-named: copied when missing.
    async fn copy_keys(&self, report: &mut ReplicationReport) -> Result<()> {
        let have_keys: HashSet<String> = names(&*self.to, FileKind::Keys).await?;
        for f in self.from.list(FileKind::Keys).await? {
            if !have_keys.contains(&f.name) {
                let n = self.copy(FileKind::Keys, f.name.clone(), false).await?;
                report.keys.files += 1;
                report.keys.bytes += n;
            }
        }
        Ok(())
    }

    /// Snapshots missing at the target, for the lag and to know what to hold
    /// back; records the lag in the report.
    async fn missing_snapshots(&self, report: &mut ReplicationReport) -> Result<Vec<Snapshot>> {
        let have_snaps = names(&*self.to, FileKind::Snapshots).await?;
        let mut missing_snaps: Vec<Snapshot> = Vec::new();
        for f in self.from.list(FileKind::Snapshots).await? {
            if have_snaps.contains(&f.name) {
                report.already_present += 1;
                continue;
            }
            match self.from.read(FileKind::Snapshots, &f.name).await {
                Ok(data) => match Snapshot::parse(&f.name, &data) {
                    Ok(s) => missing_snaps.push(s),
                    Err(_) => report
                        .corrupt_at_source
                        .push(format!("snapshots/{}", f.name)),
                },
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(newest) = missing_snaps.iter().map(|s| s.payload.time).max() {
            report.lag_seconds = (chrono::Utc::now() - newest.to_utc()).num_seconds().max(0);
            report.newest_missing = Some(newest.to_rfc3339());
        }
        Ok(missing_snaps)
    }

    /// Copies the packs the target lacks (or holds at another size); returns
    /// the packs present at the target afterwards.
    async fn copy_packs(&self, report: &mut ReplicationReport) -> Result<HashSet<Id>> {
        let target_packs: BTreeMap<String, u64> = self
            .to
            .list(FileKind::Packs)
            .await?
            .into_iter()
            .map(|f| (f.name, f.size))
            .collect();
        let mut todo = Vec::new();
        for f in self.from.list(FileKind::Packs).await? {
            match target_packs.get(&f.name) {
                Some(size) if *size == f.size => report.already_present += 1,
                _ => todo.push(f.name),
            }
        }
        let (packs, stopped) = self.copy_all(FileKind::Packs, todo, report).await?;
        report.packs = packs;
        report.stopped_at_window_end |= stopped;
        Ok(self
            .to
            .list(FileKind::Packs)
            .await?
            .into_iter()
            .filter_map(|f| f.name.parse().ok())
            .collect())
    }

    /// Index files whose packs are all at the target.
    async fn copy_index(
        &self,
        present: &HashSet<Id>,
        report: &mut ReplicationReport,
    ) -> Result<()> {
        let have_index = names(&*self.to, FileKind::Index).await?;
        let mut todo = Vec::new();
        for f in self.from.list(FileKind::Index).await? {
            if have_index.contains(&f.name) {
                report.already_present += 1;
                continue;
            }
            let data = self.from.read(FileKind::Index, &f.name).await?;
            match IndexFile::parse(&f.name, &data) {
                Ok(ix) if ix.packs.iter().all(|p| present.contains(&p.id)) => todo.push(f.name),
                Ok(_) => report.held_back.push(format!("index/{}", f.name)),
                Err(_) => report.corrupt_at_source.push(format!("index/{}", f.name)),
            }
        }
        let (index, stopped) = self.copy_all(FileKind::Index, todo, report).await?;
        report.index = index;
        report.stopped_at_window_end |= stopped;
        Ok(())
    }

    /// Snapshots last, oldest first, each only when its packs are there.
    async fn copy_snapshots(
        &self,
        mut missing_snaps: Vec<Snapshot>,
        present: &HashSet<Id>,
        report: &mut ReplicationReport,
    ) -> Result<()> {
        missing_snaps.sort_by_key(|s| s.payload.time);
        let mut todo = Vec::new();
        for s in &missing_snaps {
            if s.payload.packs.iter().all(|p| present.contains(p)) {
                todo.push(s.id.to_hex());
            } else {
                report
                    .held_back
                    .push(format!("snapshots/{}", s.id.to_hex()));
            }
        }
        let (snaps, stopped) = self.copy_all(FileKind::Snapshots, todo, report).await?;
        report.snapshots = snaps;
        report.stopped_at_window_end |= stopped;
        Ok(())
    }

    /// Files still missing at the target after this run.
    async fn count_left(&self, report: &mut ReplicationReport) -> Result<()> {
        for kind in [FileKind::Packs, FileKind::Index, FileKind::Snapshots] {
            let there = names(&*self.to, kind).await?;
            report.left += names(&*self.from, kind)
                .await?
                .iter()
                .filter(|n| !there.contains(*n))
                .count() as u64;
        }
        Ok(())
    }
}

async fn names(b: &dyn Backend, kind: FileKind) -> Result<HashSet<String>> {
    Ok(b.list(kind).await?.into_iter().map(|f| f.name).collect())
}

#[derive(Clone)]
struct Copier {
    from: Arc<dyn Backend>,
    to: Arc<dyn Backend>,
    opts: ReplicateOptions,
}

enum Outcome {
    Copied(u64),
    Corrupt(String),
}

impl Copier {
    async fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        if let Some(l) = &self.opts.limiter {
            l.acquire(data.len() as u64).await;
        }
        match self.opts.retain_until {
            Some(until) => self.to.write_retained(kind, name, data, until).await?,
            None => self.to.write(kind, name, data).await?,
        }
        Ok(())
    }

    /// Reads, checks the hash when the kind is hash-named, writes.
    async fn copy(&self, kind: FileKind, name: String, hashed: bool) -> Result<u64> {
        match self.copy_checked(kind, name, hashed).await? {
            Outcome::Copied(n) => Ok(n),
            Outcome::Corrupt(what) => Err(Error::Corrupt(what)),
        }
    }

    async fn copy_checked(&self, kind: FileKind, name: String, hashed: bool) -> Result<Outcome> {
        let data = self.from.read(kind, &name).await?;
        if hashed && Id::of_bytes(&data).to_hex() != name {
            return Ok(Outcome::Corrupt(format!("{kind}/{name}")));
        }
        let n = data.len() as u64;
        self.write(kind, &name, data).await?;
        Ok(Outcome::Copied(n))
    }

    /// Copies `names` with up to `parallel` in flight; stops starting new
    /// ones at the deadline. Returns what was copied and whether it stopped.
    async fn copy_all(
        &self,
        kind: FileKind,
        names: Vec<String>,
        report: &mut ReplicationReport,
    ) -> Result<(Transferred, bool)> {
        let mut done = Transferred::default();
        let mut set: JoinSet<Result<Outcome>> = JoinSet::new();
        let parallel = self.opts.parallel.max(1);
        let mut queue = names.into_iter();
        let mut stopped = false;
        loop {
            while set.len() < parallel && !stopped {
                if self.opts.deadline.is_some_and(|d| Instant::now() >= d) {
                    stopped = true;
                    break;
                }
                let Some(name) = queue.next() else { break };
                let me = self.clone();
                set.spawn(async move { me.copy_checked(kind, name, true).await });
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            match joined.map_err(|e| Error::task(&format!("copying {kind}"), e))? {
                Ok(Outcome::Copied(n)) => {
                    done.files += 1;
                    done.bytes += n;
                }
                Ok(Outcome::Corrupt(what)) => report.corrupt_at_source.push(what),
                Err(e) => {
                    set.shutdown().await;
                    return Err(e);
                }
            }
        }
        Ok((done, stopped))
    }
}
