//! Repairing a store from the other site: missing or damaged packs and
//! index files are replaced by good copies, checked against their names.
//!
//! Keyless. Every pack the store's snapshots or index files need is read and
//! re-hashed (as `check --read-data` does), so a flipped byte is found, not
//! only a missing file. Snapshots are not copied: a snapshot missing at one
//! site is replication's business, not repair's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use crate::backend::{Backend, FileKind};
use crate::config::RepoConfig;
use crate::error::{Error, Result};
use crate::index::IndexFile;
use crate::pack_read::{PackRead, PackReads, PARALLEL_READS};
use crate::repository::config_bytes;
use crate::snapshot::Snapshot;
use crate::Id;

#[derive(Clone, Debug, Serialize)]
pub struct RepairItem {
    /// `packs/<name>` or `index/<name>`.
    pub file: String,
    /// What was wrong with it at the repaired store.
    pub problem: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairReport {
    pub packs_checked: u64,
    pub replaced: Vec<RepairItem>,
    /// Broken here and not available whole at the other site either.
    pub unrepaired: Vec<RepairItem>,
}

/// Replaces what is missing or damaged in `store` with good copies from `other`.
pub async fn repair(store: Arc<dyn Backend>, other: Arc<dyn Backend>) -> Result<RepairReport> {
    let mine = RepoConfig::from_json(&config_bytes(&*store).await?)?;
    let theirs = RepoConfig::from_json(&config_bytes(&*other).await?)?;
    if mine.id != theirs.id {
        return Err(Error::Conflict(format!(
            "{} holds repository {}, not {} as {} does; repair only from a replica of the same repository",
            other.location(),
            theirs.id.short(),
            mine.id.short(),
            store.location()
        )));
    }
    // A prune deleting packs while repair writes them back would undo one
    // or the other; hold the prune lock for the whole repair.
    let lock = crate::lock::PruneLock::acquire(store.clone()).await?;
    let result = repair_locked(&store, &other).await;
    lock.release().await?;
    result
}

async fn repair_locked(store: &Arc<dyn Backend>, other: &Arc<dyn Backend>) -> Result<RepairReport> {
    let mut run = Repair {
        store,
        other,
        report: RepairReport::default(),
    };
    let snapshot_packs = run.snapshot_packs().await?;
    let (here, mut indexed) = run.replace_damaged_index().await?;
    let unindexed: BTreeSet<Id> = snapshot_packs.difference(&indexed).copied().collect();
    if !unindexed.is_empty() {
        run.recover_lost_index(&here, &unindexed, &mut indexed)
            .await?;
    }
    let needed: BTreeSet<Id> = snapshot_packs.union(&indexed).copied().collect();
    let broken = run.broken_packs(&needed).await?;
    run.replace_packs(broken).await?;
    let mut report = run.report;
    report.replaced.sort_by(|a, b| a.file.cmp(&b.file));
    report.unrepaired.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(report)
}

/// One repair's stores and what it has done so far.
struct Repair<'a> {
    store: &'a Arc<dyn Backend>,
    other: &'a Arc<dyn Backend>,
    report: RepairReport,
}

impl Repair<'_> {
    /// Packs every snapshot here needs; index files here tell the rest.
    async fn snapshot_packs(&self) -> Result<BTreeSet<Id>> {
        let mut snapshot_packs: BTreeSet<Id> = BTreeSet::new();
        for f in self.store.list(FileKind::Snapshots).await? {
            if let Ok(d) = self.store.read(FileKind::Snapshots, &f.name).await {
                if let Ok(s) = Snapshot::parse(&f.name, &d) {
                    snapshot_packs.extend(s.payload.packs.iter().copied());
                }
            }
        }
        Ok(snapshot_packs)
    }

    /// Replaces damaged index files here from the other site. Returns the
    /// index files here and the packs the (repaired) index lists.
    async fn replace_damaged_index(&mut self) -> Result<(BTreeSet<String>, BTreeSet<Id>)> {
        let here: BTreeSet<String> = self
            .store
            .list(FileKind::Index)
            .await?
            .into_iter()
            .map(|f| f.name)
            .collect();
        let mut indexed: BTreeSet<Id> = BTreeSet::new();
        for name in &here {
            let problem = match self.store.read(FileKind::Index, name).await {
                Ok(d) => match IndexFile::parse(name, &d) {
                    Ok(ix) => {
                        indexed.extend(ix.packs.iter().map(|p| p.id));
                        continue;
                    }
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            let item = RepairItem {
                file: format!("index/{name}"),
                problem,
            };
            match fetch(&**self.other, FileKind::Index, name).await {
                Some(data) => {
                    if let Ok(ix) = IndexFile::parse(name, &data) {
                        indexed.extend(ix.packs.iter().map(|p| p.id));
                    }
                    self.store.write(FileKind::Index, name, data).await?;
                    self.report.replaced.push(item);
                }
                None => self.report.unrepaired.push(item),
            }
        }
        Ok((here, indexed))
    }

    /// An index file only the other site has is copied only when it lists a
    /// pack a snapshot here needs and no index here lists (it was lost here);
    /// otherwise it may be one a prune here removed, and must stay removed.
    async fn recover_lost_index(
        &mut self,
        here: &BTreeSet<String>,
        unindexed: &BTreeSet<Id>,
        indexed: &mut BTreeSet<Id>,
    ) -> Result<()> {
        for f in self.other.list(FileKind::Index).await? {
            if here.contains(&f.name) {
                continue;
            }
            let Some(data) = fetch(&**self.other, FileKind::Index, &f.name).await else {
                continue;
            };
            let Ok(ix) = IndexFile::parse(&f.name, &data) else {
                continue;
            };
            if ix.packs.iter().any(|p| unindexed.contains(&p.id)) {
                indexed.extend(ix.packs.iter().map(|p| p.id));
                self.store.write(FileKind::Index, &f.name, data).await?;
                self.report.replaced.push(RepairItem {
                    file: format!("index/{}", f.name),
                    problem: "missing".into(),
                });
            }
        }
        Ok(())
    }

    /// Reads and re-hashes every pack here that is needed or present;
    /// returns the missing or damaged ones with what is wrong with each.
    async fn broken_packs(&mut self, needed: &BTreeSet<Id>) -> Result<BTreeMap<String, String>> {
        let sizes: BTreeMap<String, u64> = self
            .store
            .list(FileKind::Packs)
            .await?
            .into_iter()
            .map(|f| (f.name, f.size))
            .collect();
        let all: BTreeSet<String> = needed
            .iter()
            .map(Id::to_hex)
            .chain(sizes.keys().cloned())
            .collect();
        self.report.packs_checked = all.len() as u64;
        let (present, missing): (Vec<String>, Vec<String>) =
            all.into_iter().partition(|n| sizes.contains_key(n));
        let mut broken: BTreeMap<String, String> = missing
            .into_iter()
            .map(|n| (n, "missing".to_string()))
            .collect();
        let mut reads = PackReads::new(self.store.clone(), present, PARALLEL_READS);
        while let Some((name, read)) = reads.next().await {
            match read {
                PackRead::Whole(_) => {}
                PackRead::Damaged => {
                    broken.insert(name, "its content does not match its name (damaged)".into());
                }
                PackRead::Unreadable(e) => {
                    broken.insert(name, e);
                }
            }
        }
        Ok(broken)
    }

    /// A lost site makes every pack "broken", so the good copies are fetched
    /// the same way: several at once, each checked against its name.
    async fn replace_packs(&mut self, mut broken: BTreeMap<String, String>) -> Result<()> {
        let mut copies = PackReads::new(
            self.other.clone(),
            broken.keys().cloned().collect(),
            PARALLEL_READS,
        );
        while let Some((name, read)) = copies.next().await {
            let item = RepairItem {
                file: format!("packs/{name}"),
                problem: broken.remove(&name).unwrap_or_default(),
            };
            match read {
                PackRead::Whole(data) => {
                    self.store.write(FileKind::Packs, &name, data).await?;
                    self.report.replaced.push(item);
                }
                PackRead::Damaged | PackRead::Unreadable(_) => self.report.unrepaired.push(item),
            }
        }
        Ok(())
    }
}

/// The other site's copy, only when it is whole (hashes to its name).
async fn fetch(other: &dyn Backend, kind: FileKind, name: &str) -> Option<Vec<u8>> {
    let data = other.read(kind, name).await.ok()?;
    (Id::of_bytes(&data).to_hex() == name).then_some(data)
}
