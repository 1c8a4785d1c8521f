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

use crate::backend::{Backend, BackendError, FileKind};
use crate::config::RepoConfig;
use crate::error::{Error, Result};
use crate::index::IndexFile;
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

async fn config_of(b: &dyn Backend) -> Result<RepoConfig> {
    match b.read(FileKind::Config, "config").await {
        Ok(d) => RepoConfig::from_json(&d),
        Err(BackendError::NotFound { .. }) => Err(Error::NotARepository(b.location())),
        Err(BackendError::Unavailable { location, reason }) => {
            Err(Error::NoRepository { location, reason })
        }
        Err(e) => Err(e.into()),
    }
}

/// Replaces what is missing or damaged in `store` with good copies from `other`.
pub async fn repair(store: Arc<dyn Backend>, other: Arc<dyn Backend>) -> Result<RepairReport> {
    let (mine, theirs) = (config_of(&*store).await?, config_of(&*other).await?);
    if mine.id != theirs.id {
        return Err(Error::Conflict(format!(
            "{} holds repository {}, not {} as {} does; repair only from a replica of the same repository",
            other.location(),
            theirs.id.short(),
            mine.id.short(),
            store.location()
        )));
    }
    let mut report = RepairReport::default();

    // Index files: damaged ones here are replaced; ones only the other site
    // has are added. Both tell which packs must exist.
    let here: BTreeSet<String> = store
        .list(FileKind::Index)
        .await?
        .into_iter()
        .map(|f| f.name)
        .collect();
    let there: BTreeSet<String> = other
        .list(FileKind::Index)
        .await?
        .into_iter()
        .map(|f| f.name)
        .collect();
    let mut needed: BTreeSet<Id> = BTreeSet::new();
    for name in here.union(&there) {
        let problem = if here.contains(name) {
            match store.read(FileKind::Index, name).await {
                Ok(d) => match IndexFile::parse(name, &d) {
                    Ok(ix) => {
                        needed.extend(ix.packs.iter().map(|p| p.id));
                        continue;
                    }
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            }
        } else {
            "missing".to_string()
        };
        let item = RepairItem {
            file: format!("index/{name}"),
            problem,
        };
        match fetch(&*other, FileKind::Index, name).await {
            Some(data) => {
                if let Ok(ix) = IndexFile::parse(name, &data) {
                    needed.extend(ix.packs.iter().map(|p| p.id));
                }
                store.write(FileKind::Index, name, data).await?;
                report.replaced.push(item);
            }
            None if here.contains(name) => report.unrepaired.push(item),
            None => {}
        }
    }

    // Packs every snapshot here needs.
    for f in store.list(FileKind::Snapshots).await? {
        if let Ok(d) = store.read(FileKind::Snapshots, &f.name).await {
            if let Ok(s) = Snapshot::parse(&f.name, &d) {
                needed.extend(s.payload.packs.iter().copied());
            }
        }
    }

    let sizes: BTreeMap<String, u64> = store
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
    for name in all {
        report.packs_checked += 1;
        let problem = if !sizes.contains_key(&name) {
            "missing".to_string()
        } else {
            match store.read(FileKind::Packs, &name).await {
                Ok(d) if Id::of_bytes(&d).to_hex() == name => continue,
                Ok(_) => "its content does not match its name (damaged)".to_string(),
                Err(e) => e.to_string(),
            }
        };
        let item = RepairItem {
            file: format!("packs/{name}"),
            problem,
        };
        match fetch(&*other, FileKind::Packs, &name).await {
            Some(data) => {
                store.write(FileKind::Packs, &name, data).await?;
                report.replaced.push(item);
            }
            None => report.unrepaired.push(item),
        }
    }
    Ok(report)
}

/// The other site's copy, only when it is whole (hashes to its name).
async fn fetch(other: &dyn Backend, kind: FileKind, name: &str) -> Option<Vec<u8>> {
    let data = other.read(kind, name).await.ok()?;
    (Id::of_bytes(&data).to_hex() == name).then_some(data)
}
