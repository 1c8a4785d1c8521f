//! The deep walk: every tree of every snapshot, read as a restore would,
//! and every chunk a file needs looked up in the deep check's compact
//! [`Locations`]; every problem a restore would meet is named with the
//! snapshot and the path.
//!
//! Memory: per snapshot, the ids of the trees walked (trees are far fewer
//! than chunks) and of the chunks found wanting (damage only). A chunk
//! referenced twice is looked up twice (a lookup is a hash and a binary
//! search in a small bucket), rather than remembered in a set of every
//! chunk a snapshot holds.

use std::collections::HashSet;

use super::deep::Failed;
use super::locate::{Found, Locations};
use super::tree_read::TreeReader;
use super::CheckReport;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::keys::DataIdentity;
use crate::snapshot::Snapshot;
use crate::tree::{Extent, Node, NodeKind, Tree};

/// What the walk consults: the index as the deep pass left it, the blobs
/// that failed, and the tree reader.
pub(super) struct Walk<'a, 'r> {
    pub identity: &'a DataIdentity,
    pub locations: &'a Locations,
    pub failed: &'a Failed,
    pub trees: TreeReader<'r>,
}

/// Walks one snapshot's trees; every problem a restore would meet is named
/// with the snapshot and the path.
pub(super) async fn walk_snapshot(w: &mut Walk<'_, '_>, s: &Snapshot, r: &mut CheckReport) {
    let short = s.id.short();
    let body = match s.body(w.identity) {
        Ok(b) => b,
        Err(e) => {
            r.errors.push(format!("snapshot {short}: {e}"));
            return;
        }
    };
    let listed: HashSet<Id> = s.payload.packs.iter().copied().collect();
    let mut stack: Vec<(Id, String)> = vec![(body.tree, "/".into())];
    let mut seen_trees = HashSet::new();
    // Chunks already named for this snapshot: each is named once, at the
    // first file that needs it, as before.
    let mut named_chunks = HashSet::new();
    while let Some((t, path)) = stack.pop() {
        if !seen_trees.insert(t) {
            continue;
        }
        let found = w.locations.find(&t);
        if let Some(p) = blob_problem(found.as_ref(), &listed, w.failed, &t) {
            r.errors.push(format!(
                "snapshot {short}: directory {path} (tree {t}) cannot be read: it {p}"
            ));
            continue;
        }
        let tree = match read_tree(w, &t, found.as_ref()).await {
            Ok(tree) => tree,
            Err(e) => {
                r.errors.push(format!(
                    "snapshot {short}: directory {path} (tree {t}) cannot be read: {e}"
                ));
                continue;
            }
        };
        r.trees_checked += 1;
        check_names(&tree, &short, &path, r);
        for n in &tree.nodes {
            let child = join(&path, n);
            if let Some(sub) = n.subtree {
                stack.push((sub, child.clone()));
            }
            check_node(n, &short, &child, r);
            for e in &n.content {
                let Extent::Chunk(id) = e else { continue };
                let found = w.locations.find(id);
                let Some(p) = blob_problem(found.as_ref(), &listed, w.failed, id) else {
                    continue;
                };
                if named_chunks.insert(*id) {
                    r.errors.push(format!(
                        "snapshot {short}: file {child} needs chunk {id}, which {p}"
                    ));
                }
            }
        }
    }
}

/// Reads tree `t` with the entry of its first listing, as a restore would.
async fn read_tree(w: &mut Walk<'_, '_>, t: &Id, found: Option<&Found>) -> Result<Tree> {
    let found = found.ok_or_else(|| Error::Corrupt(format!("blob {t} is not in any index")))?;
    let entry = w.locations.tree_entry(t, found).ok_or_else(|| {
        Error::Corrupt(format!(
            "blob {t} is indexed first as a data blob (in pack {}), not as a tree",
            found.pack
        ))
    })?;
    w.trees.load(&found.pack, entry).await
}

/// Why a blob a snapshot needs cannot be restored, if it cannot. `found` is
/// what the index says about it.
fn blob_problem(
    found: Option<&Found>,
    listed: &HashSet<Id>,
    failed: &Failed,
    id: &Id,
) -> Option<String> {
    let Some(loc) = found else {
        return Some("is in no index (the blob is missing from the repository)".into());
    };
    if !listed.contains(&loc.pack) {
        return Some(format!(
            "is in pack {}, which the snapshot does not list",
            loc.pack
        ));
    }
    if let Some(e) = failed.get(id) {
        return Some(format!("does not decrypt or verify ({e})"));
    }
    if !loc.intact {
        return Some(format!(
            "was not found intact in pack {} (see the errors about that pack)",
            loc.pack
        ));
    }
    None
}

/// Restore refuses a directory with an unsafe or repeated name.
fn check_names(tree: &Tree, snapshot: &str, path: &str, r: &mut CheckReport) {
    let mut names: Vec<&[u8]> = Vec::with_capacity(tree.nodes.len());
    for n in &tree.nodes {
        if !n.name.is_safe_component() {
            r.errors.push(format!(
                "snapshot {snapshot}: directory {path} holds the unsafe name {:?}; restore refuses the snapshot",
                n.name
            ));
        }
        names.push(n.name.as_bytes());
    }
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        r.errors.push(format!(
            "snapshot {snapshot}: directory {path} lists the name {:?} twice; restore refuses the snapshot",
            String::from_utf8_lossy(w[0])
        ));
    }
}

/// Per-entry impossibilities that make restore skip or cut an entry.
fn check_node(n: &Node, snapshot: &str, path: &str, r: &mut CheckReport) {
    match n.kind {
        NodeKind::File => {
            let mut len = 0u64;
            for e in &n.content {
                let add = match e {
                    Extent::Hole(h) => *h,
                    Extent::Chunk(_) => 0, // chunk lengths come from the index
                };
                match len.checked_add(add) {
                    Some(l) if l <= i64::MAX as u64 => len = l,
                    _ => {
                        r.errors.push(format!(
                            "snapshot {snapshot}: file {path} has an impossible length (its holes add up beyond what a file can hold)"
                        ));
                        return;
                    }
                }
            }
        }
        NodeKind::Dir if n.subtree.is_none() => r
            .errors
            .push(format!("snapshot {snapshot}: directory {path} has no tree")),
        NodeKind::Symlink if n.target.is_none() => r.errors.push(format!(
            "snapshot {snapshot}: symlink {path} has no target; restore skips it"
        )),
        _ => {}
    }
}

fn join(dir: &str, n: &Node) -> String {
    let name = String::from_utf8_lossy(n.name.as_bytes());
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}
