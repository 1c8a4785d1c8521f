//! Verification. Levels: structure (keyless: every file parses, every pack a
//! snapshot needs exists with the size the index records), content
//! (keyless: re-hash packs against their names, all or a rolling share), and
//! deep (with the data identity: decrypt and re-hash every blob, and walk
//! every snapshot's trees).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::backend::{BackendError, FileKind};
use crate::error::Result;
use crate::id::Id;
use crate::index::IndexFile;
use crate::keys::DataIdentity;
use crate::pack;
use crate::pack_read::{PackRead, PackReads, PARALLEL_READS};
use crate::repository::{BlobReader, Repository, IDENTITY_FILE, SECRET_FILE};
use crate::tree::Tree;

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

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub index_files: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub blobs_verified: usize,
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

pub async fn check(
    repo: &Repository,
    read: ReadData,
    deep: Option<&DataIdentity>,
) -> Result<CheckReport> {
    let b = repo.backend();
    let mut r = CheckReport::default();
    for key in [IDENTITY_FILE, SECRET_FILE] {
        if b.stat(FileKind::Keys, key).await?.is_none() {
            r.errors.push(format!(
                "keys/{key} is missing: the data cannot be restored without it"
            ));
        }
    }

    let packs: HashMap<String, u64> = b
        .list(FileKind::Packs)
        .await?
        .into_iter()
        .map(|f| (f.name, f.size))
        .collect();
    r.packs = packs.len();

    let mut indexed: HashMap<Id, (u64, String)> = HashMap::new();
    let mut index_files = Vec::new();
    for f in b.list(FileKind::Index).await? {
        r.index_files += 1;
        let data = match b.read(FileKind::Index, &f.name).await {
            Ok(d) => d,
            Err(BackendError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        match IndexFile::parse(&f.name, &data) {
            Ok(idx) => {
                for p in &idx.packs {
                    match packs.get(&p.id.to_hex()) {
                        None => r.errors.push(format!(
                            "pack {} (listed in index/{}) is missing",
                            p.id, f.name
                        )),
                        Some(&size) if size != p.size => r.errors.push(format!(
                            "pack {} has size {size}, but index/{} records {}",
                            p.id, f.name, p.size
                        )),
                        Some(_) => {}
                    }
                    indexed.insert(p.id, (p.size, f.name.clone()));
                }
                index_files.push(idx);
            }
            Err(e) => r.errors.push(e.to_string()),
        }
    }

    let agents = repo.agent_keys().await?;
    let (snapshots, bad) = repo.snapshots().await?;
    r.snapshots = snapshots.len() + bad.len();
    for (name, e) in bad {
        r.errors.push(format!("snapshot {name}: {e}"));
    }
    let mut referenced = HashSet::new();
    for s in &snapshots {
        if !agents.contains_key(&s.signer) {
            r.errors.push(format!(
                "snapshot {} is signed by {}, which is not an enrolled agent key",
                s.id, s.signer
            ));
        }
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
            } else if !indexed.contains_key(p) {
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

    let mut names: Vec<&String> = packs.keys().collect();
    names.sort();
    let selected: Vec<&String> = match &read {
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
    let reader = match deep {
        Some(identity) => Some(BlobReader::new(repo, identity).await?),
        None => None,
    };
    let mut to_read = Vec::with_capacity(selected.len());
    for name in selected {
        if name.parse::<Id>().is_err() {
            r.warnings
                .push(format!("packs/{name} is not a pack name; ignored"));
            continue;
        }
        to_read.push(name.clone());
    }
    r.packs_read = to_read.len();
    r.last_read = to_read.last().cloned();
    // Reads finish out of order; the problems found are sorted by pack below
    // so that two runs over the same damage print the same report.
    let mut problems = Vec::new();
    let mut reads = PackReads::new(b.clone(), to_read, PARALLEL_READS);
    while let Some((name, read)) = reads.next().await {
        let data = match read {
            PackRead::Whole(d) => d,
            PackRead::Damaged => {
                problems.push(format!(
                    "pack {name} is corrupt: its content does not match its name"
                ));
                continue;
            }
            PackRead::Unreadable(e) => {
                problems.push(format!("pack {name} cannot be read: {e}"));
                continue;
            }
        };
        let trailer = match pack::parse_trailer(&data) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("pack {name}: {e}"));
                continue;
            }
        };
        if let Some(reader) = &reader {
            match pack::decrypt_pack(&data, reader.identity()) {
                Ok(plain) => {
                    for e in &trailer.blobs {
                        match pack::blob_slice(&plain, e)
                            .and_then(|s| pack::decode_blob(s, e, Some(reader.secret())))
                        {
                            Ok(_) => r.blobs_verified += 1,
                            Err(err) => problems.push(format!("pack {name}: {err}")),
                        }
                    }
                }
                Err(e) => problems.push(format!("pack {name} does not decrypt: {e}")),
            }
        }
    }
    problems.sort();
    r.errors.extend(problems);

    if let Some(reader) = &reader {
        for s in &snapshots {
            if let Err(e) = check_snapshot_trees(reader, s, &mut r).await {
                r.errors.push(format!("snapshot {}: {e}", s.id.short()));
            }
        }
    }
    Ok(r)
}

/// Walks a snapshot's trees: every blob must be indexed, in a pack the
/// snapshot lists.
async fn check_snapshot_trees(
    reader: &BlobReader<'_>,
    s: &crate::snapshot::Snapshot,
    r: &mut CheckReport,
) -> Result<()> {
    let body = s.body(reader.identity())?;
    let packs: HashSet<Id> = s.payload.packs.iter().copied().collect();
    let mut stack = vec![body.tree];
    let mut seen = HashSet::new();
    let check_blob = |id: &Id, r: &mut CheckReport| match reader.index.get(id) {
        None => r.errors.push(format!(
            "snapshot {} needs blob {id}, which is in no index",
            s.id.short()
        )),
        Some(loc) if !packs.contains(&loc.pack) => r.errors.push(format!(
            "snapshot {} needs pack {} but does not list it",
            s.id.short(),
            loc.pack
        )),
        Some(_) => {}
    };
    while let Some(t) = stack.pop() {
        if !seen.insert(t) {
            continue;
        }
        check_blob(&t, r);
        let tree: Tree = reader.load_tree(&t).await?;
        for n in tree.nodes {
            if let Some(sub) = n.subtree {
                stack.push(sub);
            }
            for e in &n.content {
                if let crate::tree::Extent::Chunk(id) = e {
                    check_blob(id, r);
                }
            }
        }
    }
    Ok(())
}
