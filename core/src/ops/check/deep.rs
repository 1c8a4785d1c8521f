//! Reading packs whole: re-hash (keyless), compare the trailer with the
//! pack's real layout and the index, and with the identity decrypt and
//! verify every blob on every core; then walk every snapshot's trees as a
//! restore would, so that what restore would refuse or miss is named here.

use std::collections::{HashMap, HashSet};

use tokio::task::JoinSet;

use super::{CheckReport, Indexed};
use crate::id::Id;
use crate::keys::{DataIdentity, RepoSecret};
use crate::pack::{self, BlobEntry};
use crate::pack_read::{PackRead, PackReads, PARALLEL_READS};
use crate::repository::{BlobReader, Repository};
use crate::snapshot::Snapshot;
use crate::tree::{Extent, Node, NodeKind, Tree};

/// What the deep pass learnt about blobs: which decrypted and matched their
/// ids, and why the others did not.
#[derive(Default)]
pub(super) struct Verified {
    pub ok: HashSet<Id>,
    pub failed: HashMap<Id, String>,
}

/// One pack's outcome from a decrypting worker.
struct PackOutcome {
    ok: Vec<Id>,
    failed: Vec<(Id, String)>,
    problems: Vec<String>,
}

pub(super) async fn read_packs(
    repo: &Repository,
    names: Vec<String>,
    indexed: &Indexed,
    reader: Option<&BlobReader<'_>>,
    r: &mut CheckReport,
) -> Verified {
    // Decrypting is the CPU-heavy part: as many workers as cores, fed by
    // PARALLEL_READS reads in flight.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let keys = reader.map(|rd| (rd.identity().clone(), rd.secret().clone()));
    let mut problems = Vec::new();
    let mut verified = Verified::default();
    let mut workers: JoinSet<PackOutcome> = JoinSet::new();
    let mut reads = PackReads::new(repo.backend().clone(), names, PARALLEL_READS);
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
        let Some(blobs) = layout(&name, &data, &mut problems) else {
            continue;
        };
        // Indexed packs had their trailer compared with the index already
        // (ranged reads); a pack no index lists is counted here.
        if name
            .parse::<Id>()
            .is_ok_and(|id| !indexed.checked.contains(&id))
        {
            r.trailers_checked += 1;
        }
        let Some((identity, secret)) = &keys else {
            continue;
        };
        while workers.len() >= cores {
            collect(workers.join_next().await, &mut verified, &mut problems, r);
        }
        let (identity, secret) = (identity.clone(), secret.clone());
        workers.spawn_blocking(move || verify_pack(&name, &data, &blobs, &identity, &secret));
    }
    while let Some(done) = workers.join_next().await {
        collect(Some(done), &mut verified, &mut problems, r);
    }
    // Reads and workers finish out of order; sorted, two runs over the same
    // damage print the same report.
    problems.sort();
    r.errors.extend(problems);
    verified
}

fn collect(
    done: Option<std::result::Result<PackOutcome, tokio::task::JoinError>>,
    verified: &mut Verified,
    problems: &mut Vec<String>,
    r: &mut CheckReport,
) {
    match done {
        Some(Ok(o)) => {
            r.blobs_verified += o.ok.len();
            verified.ok.extend(o.ok);
            verified.failed.extend(o.failed);
            problems.extend(o.problems);
        }
        Some(Err(e)) => problems.push(format!("internal error: a pack verification task crashed ({e}); this is not damage in the repository, run the check again")),
        None => {}
    }
}

/// Parses the trailer of a whole pack and checks it describes the pack's
/// real plaintext exactly. Keyless. (The index was compared with the same
/// trailer through ranged reads: a pack that hashes to its name has one
/// trailer, so the comparison is not repeated here.)
fn layout(name: &str, data: &[u8], problems: &mut Vec<String>) -> Option<Vec<BlobEntry>> {
    let trailer = match pack::parse_trailer(data) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("pack {name}: {e}"));
            return None;
        }
    };
    let head = &data[..(trailer.age_length as usize).min(4096)];
    let plain =
        pack::age_payload_start(head).and_then(|p| pack::plaintext_len(p, trailer.age_length));
    let used: u64 = trailer.blobs.iter().map(|e| e.length as u64).sum();
    match plain {
        None => problems.push(format!("pack {name}: no readable age header")),
        Some(p) if p != used => problems.push(format!(
            "pack {name}: its trailer accounts for {used} bytes of a {p}-byte plaintext"
        )),
        Some(_) => {}
    }
    Some(trailer.blobs)
}

/// Decrypts a pack as a stream (never its whole plaintext at once) and
/// checks every blob against its id.
fn verify_pack(
    name: &str,
    data: &[u8],
    blobs: &[BlobEntry],
    identity: &DataIdentity,
    secret: &RepoSecret,
) -> PackOutcome {
    let mut out = PackOutcome {
        ok: Vec::new(),
        failed: Vec::new(),
        problems: Vec::new(),
    };
    let mut stream = match pack::open_stream(data, identity) {
        Ok(s) => s,
        Err(e) => {
            out.problems
                .push(format!("pack {name} does not decrypt: {e}"));
            out.failed.extend(
                blobs
                    .iter()
                    .map(|b| (b.id, format!("its pack {name} does not decrypt"))),
            );
            return out;
        }
    };
    let mut buf = Vec::new();
    for e in blobs {
        match pack::read_blob(&mut stream, e, &mut buf)
            .and_then(|s| pack::decode_blob(s, e, Some(secret)))
        {
            Ok(_) => out.ok.push(e.id),
            Err(err) => {
                out.problems.push(format!("pack {name}: {err}"));
                out.failed.push((e.id, format!("pack {name}: {err}")));
            }
        }
    }
    out
}

/// Walks one snapshot's trees; every problem a restore would meet is named
/// with the snapshot and the path.
pub(super) async fn walk_snapshot(
    reader: &BlobReader<'_>,
    s: &Snapshot,
    verified: &Verified,
    r: &mut CheckReport,
) {
    let short = s.id.short();
    let body = match s.body(reader.identity()) {
        Ok(b) => b,
        Err(e) => {
            r.errors.push(format!("snapshot {short}: {e}"));
            return;
        }
    };
    let listed: HashSet<Id> = s.payload.packs.iter().copied().collect();
    let problem = |id: &Id| blob_problem(reader, &listed, verified, id);
    let mut stack: Vec<(Id, String)> = vec![(body.tree, "/".into())];
    let mut seen_trees = HashSet::new();
    let mut seen_chunks = HashSet::new();
    while let Some((t, path)) = stack.pop() {
        if !seen_trees.insert(t) {
            continue;
        }
        if let Some(p) = problem(&t) {
            r.errors.push(format!(
                "snapshot {short}: directory {path} (tree {t}) cannot be read: it {p}"
            ));
            continue;
        }
        let tree: Tree = match reader.load_tree(&t).await {
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
                if !seen_chunks.insert(*id) {
                    continue;
                }
                if let Some(p) = problem(id) {
                    r.errors.push(format!(
                        "snapshot {short}: file {child} needs chunk {id}, which {p}"
                    ));
                }
            }
        }
    }
}

/// Why a blob a snapshot needs cannot be restored, if it cannot.
fn blob_problem(
    reader: &BlobReader<'_>,
    listed: &HashSet<Id>,
    verified: &Verified,
    id: &Id,
) -> Option<String> {
    let Some(loc) = reader.index.get(id) else {
        return Some("is in no index (the blob is missing from the repository)".into());
    };
    if !listed.contains(&loc.pack) {
        return Some(format!(
            "is in pack {}, which the snapshot does not list",
            loc.pack
        ));
    }
    if let Some(e) = verified.failed.get(id) {
        return Some(format!("does not decrypt or verify ({e})"));
    }
    if !verified.ok.contains(id) {
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
