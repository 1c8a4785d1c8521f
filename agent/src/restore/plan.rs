//! Phase 1: walking the snapshot's trees into a restore plan. Every name is
//! checked here, before anything is written.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cadang_core::index::BlobLocation;
use cadang_core::repository::BlobReader;
use cadang_core::snapshot::Snapshot;
use cadang_core::tree::{Extent, Node, NodeKind, Tree};
use cadang_core::Id;

use super::{quote, show, RestoreError};

/// What restore sets on an entry once its content is in place.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
}

impl Meta {
    fn of(n: &Node) -> Meta {
        Meta {
            mode: n.mode & 0o7777,
            uid: n.uid,
            gid: n.gid,
            mtime_ns: n.mtime_ns,
        }
    }
}

/// A directory to create. `dirs[0]` is the target itself; every other
/// directory comes after its parent.
pub(super) struct Dir {
    pub path: PathBuf,
    pub parent: usize,
    pub depth: u32,
    pub meta: Meta,
}

/// A regular file, created at `len` bytes before its chunks are written.
pub(super) struct File {
    pub path: PathBuf,
    pub parent: usize,
    pub len: u64,
    pub meta: Meta,
}

pub(super) enum OtherKind {
    /// Another name for `files[_]`.
    HardLink(usize),
    Symlink(Vec<u8>),
    Fifo,
    Socket,
    Chardev(u64),
    Blockdev(u64),
}

/// A non-directory that is not a regular file with content of its own.
pub(super) struct Other {
    pub path: PathBuf,
    pub parent: usize,
    pub kind: OtherKind,
    pub meta: Meta,
}

/// Where a chunk's bytes go: a file (index into `Plan::files`) and offset.
#[derive(Clone, Copy, Debug)]
pub(super) struct Place {
    pub file: u32,
    pub offset: u64,
}

/// One distinct chunk and every place it is written to.
pub(super) struct Chunk {
    pub id: Id,
    pub loc: BlobLocation,
    pub places: Vec<Place>,
}

#[derive(Default)]
pub(super) struct Plan {
    pub dirs: Vec<Dir>,
    pub files: Vec<File>,
    pub others: Vec<Other>,
    pub chunks: Vec<Chunk>,
    /// Set by `write::create`: which directories exist and are real.
    pub dir_ok: Vec<bool>,
    /// Files that cannot be restored completely whatever happens next.
    pub incomplete: Vec<u32>,
    pub problems: Vec<String>,
    pub bytes_total: u64,
}

/// The `--include` paths, normalised to `/a/b` (the root as empty).
pub(super) struct Includes {
    paths: Vec<Vec<u8>>,
    given: Vec<String>,
}

impl Includes {
    pub(super) fn parse(raw: &[Vec<u8>]) -> Result<Includes, RestoreError> {
        let mut paths = Vec::new();
        for p in raw {
            let mut norm = Vec::new();
            for c in p.split(|&b| b == b'/') {
                match c {
                    b"" | b"." => {}
                    b".." => {
                        return Err(RestoreError::BadInclude {
                            path: show(p),
                            reason: "`..` is not allowed; give the path as it is in the snapshot"
                                .into(),
                        })
                    }
                    c if c.contains(&0) => {
                        return Err(RestoreError::BadInclude {
                            path: show(p),
                            reason: "it contains a NUL byte".into(),
                        })
                    }
                    c => {
                        norm.push(b'/');
                        norm.extend_from_slice(c);
                    }
                }
            }
            paths.push(norm);
        }
        Ok(Includes {
            paths,
            given: raw.iter().map(|p| show(p)).collect(),
        })
    }

    /// True when `abs` is an include or lies below one; marks exact matches.
    fn covers(&self, abs: &[u8], matched: &mut [bool]) -> bool {
        if self.paths.is_empty() {
            return true;
        }
        let mut covered = false;
        for (i, inc) in self.paths.iter().enumerate() {
            if abs == &inc[..] {
                matched[i] = true;
                covered = true;
            } else if is_below(abs, inc) {
                covered = true;
            }
        }
        covered
    }

    /// True when an include lies below `abs` (so `abs` is a parent to keep).
    fn leads_to_one(&self, abs: &[u8]) -> bool {
        self.paths.iter().any(|inc| is_below(inc, abs))
    }
}

/// True when `path` is strictly below `dir` (both normalised; names hold no
/// `/`, so a byte prefix ending at a `/` is a component prefix).
fn is_below(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

struct Pending {
    tree: Id,
    dir: usize,
    /// Absolute path in the snapshot (`""` for the root).
    abs: Vec<u8>,
    /// Everything below is selected (no include filtering).
    all: bool,
}

struct Builder<'r, 'a> {
    reader: &'r BlobReader<'a>,
    snapshot: String,
    plan: Plan,
    chunk_of: HashMap<Id, usize>,
    /// (device, inode) of hard-linked files already planned.
    links: HashMap<(u64, u64), usize>,
}

/// Walks the trees from `root` and plans the restore under `target`.
pub(super) async fn build(
    reader: &BlobReader<'_>,
    snapshot: &Snapshot,
    root: Id,
    target: &Path,
    includes: &Includes,
) -> Result<Plan, RestoreError> {
    let mut b = Builder {
        reader,
        snapshot: snapshot.id.short(),
        plan: Plan::default(),
        chunk_of: HashMap::new(),
        links: HashMap::new(),
    };
    b.plan.dirs.push(Dir {
        path: target.to_path_buf(),
        parent: 0,
        depth: 0,
        meta: Meta::default(),
    });
    let mut matched = vec![false; includes.paths.len()];
    for (i, p) in includes.paths.iter().enumerate() {
        matched[i] = p.is_empty(); // `/` is the whole snapshot
    }
    let mut unreadable: Vec<Vec<u8>> = Vec::new();
    let mut stack = vec![Pending {
        tree: root,
        dir: 0,
        abs: Vec::new(),
        all: includes.paths.is_empty() || matched.iter().any(|m| *m),
    }];
    while let Some(p) = stack.pop() {
        let tree = match reader.load_tree(&p.tree).await {
            Ok(t) => t,
            Err(e) if p.dir == 0 => {
                return Err(RestoreError::Tree {
                    snapshot: b.snapshot,
                    path: "/".into(),
                    reason: e.to_string(),
                })
            }
            Err(e) => {
                b.plan.problems.push(format!(
                    "{}: cannot read this directory's listing (tree {}): {e}; nothing in it was restored",
                    show(&p.abs),
                    p.tree
                ));
                unreadable.push(p.abs);
                continue;
            }
        };
        check_names(&tree, &p.abs, &b.snapshot)?;
        for node in tree.nodes {
            let mut abs = p.abs.clone();
            abs.push(b'/');
            abs.extend_from_slice(node.name.as_bytes());
            let all = p.all || includes.covers(&abs, &mut matched);
            let wanted = all || (node.kind == NodeKind::Dir && includes.leads_to_one(&abs));
            if !wanted {
                continue;
            }
            let path = b.plan.dirs[p.dir]
                .path
                .join(OsStr::from_bytes(node.name.as_bytes()));
            if node.kind == NodeKind::Dir {
                let idx = b.plan.dirs.len();
                b.plan.dirs.push(Dir {
                    path,
                    parent: p.dir,
                    depth: b.plan.dirs[p.dir].depth + 1,
                    meta: Meta::of(&node),
                });
                match node.subtree {
                    Some(tree) => stack.push(Pending {
                        tree,
                        dir: idx,
                        abs,
                        all,
                    }),
                    None => b.plan.problems.push(format!(
                        "{}: directory without a listing in the snapshot; restored empty",
                        show(&abs)
                    )),
                }
            } else {
                b.entry(node, path, p.dir, &abs)?;
            }
        }
    }
    for (i, m) in matched.iter().enumerate() {
        let inc = &includes.paths[i];
        if !m && !unreadable.iter().any(|u| is_below(inc, u)) {
            return Err(RestoreError::IncludeNotFound {
                path: includes.given[i].clone(),
                snapshot: b.snapshot,
            });
        }
    }
    Ok(b.plan)
}

/// Refuses names that could leave the directory, and names listed twice
/// (a symlink and a directory of the same name would let the directory's
/// contents be written through the link).
fn check_names(tree: &Tree, dir: &[u8], snapshot: &str) -> Result<(), RestoreError> {
    let mut names: Vec<&[u8]> = Vec::with_capacity(tree.nodes.len());
    for n in &tree.nodes {
        if !n.name.is_safe_component() {
            return Err(RestoreError::UnsafeName {
                snapshot: snapshot.into(),
                dir: show(dir),
                name: quote(n.name.as_bytes()),
            });
        }
        names.push(n.name.as_bytes());
    }
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(RestoreError::DuplicateName {
            snapshot: snapshot.into(),
            dir: show(dir),
            name: quote(w[0]),
        });
    }
    Ok(())
}

impl Builder<'_, '_> {
    fn entry(
        &mut self,
        node: Node,
        path: PathBuf,
        parent: usize,
        abs: &[u8],
    ) -> Result<(), RestoreError> {
        let meta = Meta::of(&node);
        let kind = match node.kind {
            NodeKind::File => return self.file(node, path, parent, abs),
            NodeKind::Dir => unreachable!("directories are planned by the caller"),
            NodeKind::Symlink => match node.target {
                Some(t) => OtherKind::Symlink(t.0),
                None => {
                    self.plan.problems.push(format!(
                        "{}: symlink without a target in the snapshot; not restored",
                        show(abs)
                    ));
                    return Ok(());
                }
            },
            NodeKind::Fifo => OtherKind::Fifo,
            NodeKind::Socket => OtherKind::Socket,
            NodeKind::Chardev => OtherKind::Chardev(node.rdev),
            NodeKind::Blockdev => OtherKind::Blockdev(node.rdev),
        };
        self.plan.others.push(Other {
            path,
            parent,
            kind,
            meta,
        });
        Ok(())
    }

    fn file(
        &mut self,
        node: Node,
        path: PathBuf,
        parent: usize,
        abs: &[u8],
    ) -> Result<(), RestoreError> {
        let meta = Meta::of(&node);
        let idx = self.plan.files.len();
        if node.links > 1 {
            if let Some(&first) = self.links.get(&(node.device, node.inode)) {
                self.plan.others.push(Other {
                    path,
                    parent,
                    kind: OtherKind::HardLink(first),
                    meta,
                });
                return Ok(());
            }
            self.links.insert((node.device, node.inode), idx);
        }
        let file = u32::try_from(idx).map_err(|_| {
            RestoreError::Internal("more than 4 billion files in one restore".into())
        })?;
        let mut offset = 0u64;
        let mut complete = true;
        for e in &node.content {
            let (len, loc) = match e {
                Extent::Hole(n) => (*n, None),
                Extent::Chunk(id) => match self.reader.index.get(id) {
                    Some(loc) => (loc.raw_length as u64, Some((*id, *loc))),
                    None => {
                        self.plan.problems.push(format!(
                            "{}: chunk {id} is in no index of the repository; the file is restored only up to byte {offset}",
                            show(abs)
                        ));
                        complete = false;
                        break;
                    }
                },
            };
            let Some(end) = offset.checked_add(len) else {
                self.plan.problems.push(format!(
                    "{}: impossible file length in the snapshot; not restored past byte {offset}",
                    show(abs)
                ));
                complete = false;
                break;
            };
            if let Some((id, loc)) = loc {
                let next = self.plan.chunks.len();
                let c = *self.chunk_of.entry(id).or_insert(next);
                if c == next {
                    self.plan.chunks.push(Chunk {
                        id,
                        loc,
                        places: Vec::new(),
                    });
                }
                self.plan.chunks[c].places.push(Place { file, offset });
                self.plan.bytes_total += len;
            }
            offset = end;
        }
        if !complete {
            self.plan.incomplete.push(file);
        }
        self.plan.files.push(File {
            path,
            parent,
            len: if complete {
                offset
            } else {
                offset.max(node.size)
            },
            meta,
        });
        Ok(())
    }
}
