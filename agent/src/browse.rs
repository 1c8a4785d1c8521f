//! Looking into a snapshot without restoring it: listing every entry, and
//! streaming one file's content (`cadang ls`, `cadang dump`).

use std::io::Write;
use std::sync::Arc;

use cadang_core::pack;
use cadang_core::repository::BlobReader;
use cadang_core::snapshot::Snapshot;
use cadang_core::tree::{Extent, Node, NodeKind};
use cadang_core::Id;

use crate::restore::{show, RestoreError};

/// Decrypted packs `dump` keeps, most recently used last. Backup workers
/// fill packs side by side, so a file's consecutive chunks usually alternate
/// between a few packs; keeping three bounds memory to three packs' plaintext
/// (16 MiB each by default) while reading each pack about once.
const DUMP_PACKS_KEPT: usize = 3;

/// One entry of a snapshot.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Absolute path in the snapshot, e.g. `/srv/data/x` (raw bytes).
    pub path: Vec<u8>,
    /// The entry as stored; `content` and `subtree` are left in place.
    pub node: Node,
}

async fn sorted_nodes(
    reader: &BlobReader<'_>,
    tree: &Id,
    dir: &[u8],
    snapshot: &Snapshot,
) -> Result<Vec<Node>, RestoreError> {
    let mut nodes = reader
        .load_tree(tree)
        .await
        .map_err(|e| RestoreError::Tree {
            snapshot: snapshot.id.short(),
            path: show(dir),
            reason: e.to_string(),
        })?
        .nodes;
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

fn child(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Every entry of the snapshot, depth first, each directory's entries
/// sorted by name (a directory comes right before its contents). Names are
/// listed as stored, even ones restore would refuse.
pub async fn list(
    reader: &BlobReader<'_>,
    snapshot: &Snapshot,
) -> Result<Vec<Entry>, RestoreError> {
    let body = snapshot.body(reader.identity())?;
    let mut out = Vec::new();
    let root = sorted_nodes(reader, &body.tree, b"", snapshot).await?;
    let mut stack: Vec<(Vec<u8>, std::vec::IntoIter<Node>)> = vec![(Vec::new(), root.into_iter())];
    while let Some((dir, nodes)) = stack.last_mut() {
        let Some(node) = nodes.next() else {
            stack.pop();
            continue;
        };
        let path = child(dir, node.name.as_bytes());
        let subtree = if node.kind == NodeKind::Dir {
            node.subtree
        } else {
            None
        };
        out.push(Entry {
            path: path.clone(),
            node,
        });
        if let Some(tree) = subtree {
            let nodes = sorted_nodes(reader, &tree, &path, snapshot).await?;
            stack.push((path, nodes.into_iter()));
        }
    }
    Ok(out)
}

fn kind_word(k: NodeKind) -> &'static str {
    match k {
        NodeKind::File => "file",
        NodeKind::Dir => "directory",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::Socket => "socket",
        NodeKind::Chardev => "character device",
        NodeKind::Blockdev => "block device",
    }
}

/// Writes the content of the regular file at `path` (absolute in the
/// snapshot; the leading `/` is optional) to `out`, chunk by chunk, holes
/// as zeros. Every chunk is verified against its id. Returns the bytes
/// written. Memory stays bounded: a few decrypted packs and one chunk.
pub async fn dump(
    reader: &BlobReader<'_>,
    snapshot: &Snapshot,
    path: &[u8],
    out: &mut (dyn Write + Send),
) -> Result<u64, RestoreError> {
    let body = snapshot.body(reader.identity())?;
    let comps: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let mut tree = body.tree;
    let mut abs = Vec::new();
    for (i, name) in comps.iter().enumerate() {
        let nodes = sorted_nodes(reader, &tree, &abs, snapshot).await?;
        abs = child(&abs, name);
        let not_found = || RestoreError::NotFound {
            path: show(&child(b"", &comps.join(&b'/'))),
            snapshot: snapshot.id.short(),
        };
        let node = nodes
            .into_iter()
            .find(|n| n.name.as_bytes() == *name)
            .ok_or_else(not_found)?;
        if i + 1 < comps.len() {
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(t)) => tree = t,
                _ => return Err(not_found()),
            }
        } else if node.kind != NodeKind::File {
            return Err(RestoreError::NotAFile {
                path: show(&abs),
                snapshot: snapshot.id.short(),
                kind: kind_word(node.kind).into(),
            });
        } else {
            return write_content(reader, &node, &abs, out).await;
        }
    }
    Err(RestoreError::NotAFile {
        path: "/".into(),
        snapshot: snapshot.id.short(),
        kind: "directory".into(),
    })
}

async fn write_content(
    reader: &BlobReader<'_>,
    node: &Node,
    path: &[u8],
    out: &mut (dyn Write + Send),
) -> Result<u64, RestoreError> {
    let output = |e: std::io::Error| RestoreError::Output {
        path: show(path),
        reason: e.to_string(),
    };
    let damaged = |reason: String| RestoreError::DamagedFile {
        path: show(path),
        reason,
    };
    let mut kept: Vec<(Id, Arc<Vec<u8>>)> = Vec::with_capacity(DUMP_PACKS_KEPT);
    let mut written = 0u64;
    for e in &node.content {
        match e {
            Extent::Hole(len) => {
                let zeros = [0u8; 64 * 1024];
                let mut left = *len;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    out.write_all(&zeros[..n]).map_err(output)?;
                    left -= n as u64;
                }
                written += len;
            }
            Extent::Chunk(id) => {
                let loc = *reader.index.get(id).ok_or_else(|| {
                    damaged(format!("chunk {id} is in no index of the repository"))
                })?;
                let plain = match kept.iter().position(|(p, _)| *p == loc.pack) {
                    Some(i) => {
                        let hit = kept.remove(i);
                        kept.push(hit.clone());
                        hit.1
                    }
                    None => {
                        let plain = reader.pack_plain(&loc.pack, false).await.map_err(|e| {
                            RestoreError::DamagedPack {
                                pack: loc.pack.to_hex(),
                                reason: e.to_string(),
                                files: show(path),
                            }
                        })?;
                        if kept.len() >= DUMP_PACKS_KEPT {
                            kept.remove(0);
                        }
                        kept.push((loc.pack, plain.clone()));
                        plain
                    }
                };
                let entry = loc.entry(*id);
                let data = pack::blob_slice(&plain, &entry)
                    .and_then(|s| pack::decode_blob(s, &entry, Some(reader.secret())))
                    .map_err(|e| damaged(format!("chunk {id} in pack {}: {e}", loc.pack)))?;
                out.write_all(&data).map_err(output)?;
                written += data.len() as u64;
            }
        }
    }
    out.flush().map_err(output)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::testutil::{dir, file, symlink, Craft};

    #[tokio::test]
    async fn list_is_depth_first_and_sorted_and_dump_streams_one_file() {
        let mut c = Craft::new().await;
        let big = crate::restore::testutil::noise(300_000, 1);
        let sparse = vec![
            Extent::Hole(10_000),
            c.chunk(b"tengah"),
            Extent::Hole(5_000),
        ];
        let f_big = c.file(b"big.bin", &big, 0o644);
        let f_sparse = Node {
            content: sparse,
            size: 15_006,
            sparse: true,
            ..file(b"sparse", 0o600)
        };
        let inner = c.tree(vec![f_sparse, symlink(b"a-link", b"big.bin")]);
        let srv = c.tree(vec![f_big, dir(b"sub", inner, 0o755)]);
        let snap = c.commit(vec![dir(b"srv", srv, 0o755)], &["/srv"]).await;
        let reader = c.reader().await;

        let entries = list(&reader, &snap).await.unwrap();
        let paths: Vec<String> = entries.iter().map(|e| show(&e.path)).collect();
        assert_eq!(
            paths,
            [
                "/srv",
                "/srv/big.bin",
                "/srv/sub",
                "/srv/sub/a-link",
                "/srv/sub/sparse"
            ]
        );
        assert_eq!(entries[1].node.size, big.len() as u64);

        for p in [&b"/srv/big.bin"[..], b"srv/big.bin", b"//srv/./big.bin"] {
            let mut out = Vec::new();
            let n = dump(&reader, &snap, p, &mut out).await.unwrap();
            assert_eq!(n, big.len() as u64);
            assert!(out == big, "dump of {p:?} differs");
        }
        let mut out = Vec::new();
        dump(&reader, &snap, b"/srv/sub/sparse", &mut out)
            .await
            .unwrap();
        let mut want = vec![0u8; 10_000];
        want.extend_from_slice(b"tengah");
        want.extend(vec![0u8; 5_000]);
        assert!(out == want);

        let mut sink = Vec::new();
        for (p, needle) in [
            (&b"/srv/nope"[..], "/srv/nope is not in snapshot"),
            (b"/srv/big.bin/x", "/srv/big.bin/x is not in snapshot"),
            (b"/srv/sub", "is a directory"),
            (b"/srv/sub/a-link", "is a symlink"),
            (b"/", "is a directory"),
        ] {
            let e = dump(&reader, &snap, p, &mut sink)
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{p:?}: {e}");
        }
        assert!(sink.is_empty());
    }
}
