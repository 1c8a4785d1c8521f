//! Verification. Levels: structure (keyless: every file parses, every pack a
//! snapshot needs exists with the size the index records, every index entry
//! agrees with its pack's own trailer, every signer is certified), content
//! (keyless: re-hash packs against their names, all or a rolling share, and
//! check each trailer against its pack's real layout), and deep (with the
//! data identity: decrypt and re-hash every blob on every core, and walk
//! every tree of every snapshot as a restore would).
//!
//! The rule: whatever makes `restore` or `dump` fail must fail the check at
//! the lowest level that can see it, and the error names the file, pack,
//! blob or snapshot concerned.

mod deep;
mod locate;
mod signers;
mod trailers;
mod tree_read;
mod walk;

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::backend::FileKind;
use crate::certify::TrustAnchors;
use crate::error::Result;
use crate::id::Id;
use crate::keys::DataIdentity;
use crate::repository::{Repository, IDENTITY_FILE, SECRET_FILE};
use crate::snapshot::Snapshot;
use locate::Locations;
use trailers::Indexed;
use tree_read::{Keys, TreeReader};

pub enum ReadData {
    None,
    All,
    /// Re-hash `percent` of the packs, continuing after the pack named
    /// `after` (the previous run's last), so repeated runs cover everything.
    Subset {
        percent: f64,
        after: Option<String>,
    },
}

/// Everything a check can be given. `deep` implies reading every pack.
pub struct CheckOptions<'a> {
    pub read: ReadData,
    pub deep: Option<&'a DataIdentity>,
    /// Keys trusted to certify agents (from outside the store). With none, a
    /// certified signer is reported as unverifiable (a warning), an
    /// uncertified one is still an error.
    pub trust: TrustAnchors,
}

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub index_files: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub blobs_verified: usize,
    /// Packs whose trailer was compared with the index.
    pub trailers_checked: usize,
    /// Trees walked by `--deep`.
    pub trees_checked: usize,
    /// Packs no snapshot needs (left by interrupted backups; prune removes them).
    pub unreferenced_packs: usize,
    /// The last pack read, for the next `--read-data-subset` run.
    pub last_read: Option<String>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The check as before certified signers: trust anchors come only from the
/// identity, when `deep` gives one.
pub async fn check(
    repo: &Repository,
    read: ReadData,
    deep: Option<&DataIdentity>,
) -> Result<CheckReport> {
    let trust = deep.map(TrustAnchors::custodian).unwrap_or_default();
    check_with(repo, CheckOptions { read, deep, trust }).await
}

pub async fn check_with(repo: &Repository, opts: CheckOptions<'_>) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    key_files(repo, &mut r).await?;
    let packs = list_packs(repo, &mut r).await?;
    // Index files one at a time, each pack's trailer compared as its file
    // is read: memory per pack, not per chunk. For --deep the same pass
    // fills the compact table of where each blob is (~12 B a chunk).
    let mut locations = opts.deep.map(|_| Locations::default());
    let mut indexed =
        trailers::stream_index_files(repo, &packs, locations.as_mut(), &mut r).await?;
    let snapshots = check_snapshots(repo, &packs, &indexed, &mut r).await?;
    signers::check_signers(repo, &snapshots, &opts.trust, &mut r).await?;
    r.errors.append(&mut indexed.trailer_problems);
    r.warnings.append(&mut indexed.trailer_warnings);

    let read = if opts.deep.is_some() {
        ReadData::All
    } else {
        opts.read
    };
    let selected = select_packs(&packs, &read, &mut r);
    let keys = match opts.deep {
        Some(identity) => Some(Keys::new(repo, identity).await?),
        None => None,
    };
    // Packs read whole are re-hashed and their trailers checked against
    // their real layout; the index was compared with every trailer above.
    let deep = keys.as_ref().zip(locations.as_mut());
    let deep = deep.map(|(keys, locations)| deep::Deep { keys, locations });
    let failed = deep::read_packs(repo, selected, &indexed, deep, &mut r).await;

    if let (Some(keys), Some(locations)) = (&keys, &locations) {
        let mut w = walk::Walk {
            identity: &keys.identity,
            locations,
            failed: &failed,
            trees: TreeReader::new(repo, keys),
        };
        for s in &snapshots {
            walk::walk_snapshot(&mut w, s, &mut r).await;
        }
    }
    Ok(r)
}

async fn key_files(repo: &Repository, r: &mut CheckReport) -> Result<()> {
    for key in [IDENTITY_FILE, SECRET_FILE] {
        if repo.backend().stat(FileKind::Keys, key).await?.is_none() {
            r.errors.push(format!(
                "keys/{key} is missing: the data cannot be restored without it"
            ));
        }
    }
    Ok(())
}

async fn list_packs(repo: &Repository, r: &mut CheckReport) -> Result<HashMap<String, u64>> {
    let packs: HashMap<String, u64> = repo
        .backend()
        .list(FileKind::Packs)
        .await?
        .into_iter()
        .map(|f| (f.name, f.size))
        .collect();
    r.packs = packs.len();
    Ok(packs)
}

/// Every snapshot parses, belongs here, and lists packs that exist and
/// that some index names (restore finds blobs only through the index).
async fn check_snapshots(
    repo: &Repository,
    packs: &HashMap<String, u64>,
    indexed: &Indexed,
    r: &mut CheckReport,
) -> Result<Vec<Snapshot>> {
    let (snapshots, bad) = repo.snapshots().await?;
    r.snapshots = snapshots.len() + bad.len();
    for (name, e) in bad {
        r.errors.push(format!("snapshot {name}: {e}"));
    }
    let mut referenced = HashSet::new();
    for s in &snapshots {
        if s.payload.repo_id != repo.config.id {
            r.errors
                .push(format!("snapshot {} belongs to another repository", s.id));
        }
        for p in &s.payload.packs {
            referenced.insert(*p);
            if !packs.contains_key(&p.to_hex()) {
                r.errors.push(format!(
                    "snapshot {} needs pack {p}, which is missing",
                    s.id.short()
                ));
            } else if !indexed.packs.contains(p) {
                r.errors.push(format!(
                    "snapshot {} needs pack {p}, which is in no index",
                    s.id.short()
                ));
            }
        }
    }
    r.unreferenced_packs = packs
        .keys()
        .filter(|n| {
            n.parse::<Id>()
                .map(|id| !referenced.contains(&id))
                .unwrap_or(true)
        })
        .count();
    Ok(snapshots)
}

/// The packs to read whole, in name order (a rolling share continues after
/// the previous run's last pack).
fn select_packs(packs: &HashMap<String, u64>, read: &ReadData, r: &mut CheckReport) -> Vec<String> {
    let mut names: Vec<&String> = packs.keys().collect();
    names.sort();
    let selected: Vec<&String> = match read {
        ReadData::None => Vec::new(),
        ReadData::All => names.clone(),
        ReadData::Subset { percent, after } => {
            let n = ((names.len() as f64) * percent / 100.0).ceil() as usize;
            let start = after
                .as_ref()
                .map(|a| names.partition_point(|x| x.as_str() <= a.as_str()))
                .unwrap_or(0);
            (0..n.min(names.len()))
                .map(|i| names[(start + i) % names.len()])
                .collect()
        }
    };
    let mut out = Vec::with_capacity(selected.len());
    for name in selected {
        if name.parse::<Id>().is_err() {
            r.warnings
                .push(format!("packs/{name} is not a pack name; ignored"));
            continue;
        }
        out.push(name.clone());
    }
    r.packs_read = out.len();
    r.last_read = out.last().cloned();
    out
}
