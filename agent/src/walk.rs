//! The backup pipeline's threads.
//!
//! ```text
//! walker (1 thread: stat, read, chunk) --chunks--> workers (hash, dedup, compress, encrypt)
//!    \--directories in post-order--> assembler (waits for each file, builds trees)
//! ```
//! Channels are bounded, so memory stays bounded whatever the input size.

use std::collections::BTreeMap;
use std::fs::{self, File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cadang_core::chunker::Chunker;
use cadang_core::pack::BlobKind;
use cadang_core::session::BackupSession;
use cadang_core::tree::{Extent, FileName, Node, NodeKind, Tree};
use cadang_core::Id;
use crossbeam_channel::{Receiver, Sender};
use globset::GlobSet;

use crate::cache::{chunk_ids, FileCache, FileStamp};
use crate::progress::Progress;
use crate::source::{ChunkJob, FileAcc, FileResult, ReadError, Reader};

pub(crate) type Slot = Arc<OnceLock<Id>>;

pub(crate) enum Child {
    Ready(Node),
    File {
        node: Node,
        result: Receiver<FileResult>,
        cache_key: Option<(Vec<u8>, FileStamp)>,
    },
    Dir(Node, Slot),
}

pub(crate) struct DirJob {
    pub slot: Slot,
    pub path: Vec<u8>,
    pub children: Vec<Child>,
}

/// Problems with single files: the backup goes on without them and reports them.
pub(crate) type Problems = Arc<Mutex<Vec<String>>>;

/// A fatal error shared between threads: once set, everyone winds down.
pub(crate) type Fatal = Arc<Mutex<Option<cadang_core::Error>>>;

pub(crate) fn worker(
    session: Arc<BackupSession>,
    jobs: Receiver<ChunkJob>,
    fatal: Fatal,
    new_data: Option<Arc<crate::signals::NewData>>,
) {
    let mut pack = match session.new_pack(BlobKind::Data) {
        Ok(p) => p,
        Err(e) => {
            fatal.lock().expect("not poisoned").get_or_insert(e);
            for j in jobs {
                j.file.fail("backup stopped".into());
            }
            return;
        }
    };
    for job in jobs {
        if fatal.lock().expect("not poisoned").is_some() {
            job.file.fail("backup stopped".into());
            continue;
        }
        let id = session.chunk_id(&job.data);
        if session.claim(id) {
            let before = pack.plain_len();
            if let Err(e) = session.store(&mut pack, id, &job.data) {
                fatal.lock().expect("not poisoned").get_or_insert(e);
                job.file.fail("backup stopped".into());
                continue;
            }
            if let Some(n) = &new_data {
                n.stored(job.data.len(), before, pack.plain_len());
            }
        }
        job.file.fill(job.idx, Extent::Chunk(id));
    }
    if fatal.lock().expect("not poisoned").is_none() {
        if let Err(e) = session.flush(&mut pack) {
            fatal.lock().expect("not poisoned").get_or_insert(e);
        }
    }
}

pub(crate) fn assembler(
    session: Arc<BackupSession>,
    dirs: Receiver<DirJob>,
    cache: Option<Arc<FileCache>>,
    problems: Problems,
    fatal: Fatal,
    progress: Arc<Progress>,
) {
    let mut pack = match session.new_pack(BlobKind::Tree) {
        Ok(p) => p,
        Err(e) => {
            fatal.lock().expect("not poisoned").get_or_insert(e);
            return;
        }
    };
    for job in dirs {
        let mut nodes = Vec::with_capacity(job.children.len());
        for child in job.children {
            match child {
                Child::Ready(n) => nodes.push(n),
                Child::Dir(mut n, slot) => match slot.get() {
                    Some(id) => {
                        n.subtree = Some(*id);
                        nodes.push(n);
                    }
                    None => problems.lock().expect("not poisoned").push(format!(
                        "{}/{}: directory could not be stored",
                        String::from_utf8_lossy(&job.path),
                        n.name
                    )),
                },
                Child::File {
                    mut node,
                    result,
                    cache_key,
                } => match result.recv() {
                    Ok(Ok(content)) => {
                        if let (Some(c), Some((path, stamp))) = (&cache, cache_key) {
                            c.put(&path, &stamp, &content);
                        }
                        node.content = content;
                        progress.file_done();
                        nodes.push(node);
                    }
                    Ok(Err(msg)) => {
                        if fatal.lock().expect("not poisoned").is_none() {
                            problems.lock().expect("not poisoned").push(format!(
                                "{}/{}: {msg}",
                                String::from_utf8_lossy(&job.path),
                                node.name
                            ));
                        }
                    }
                    // Every FileAcc sends exactly once; a closed channel
                    // only happens while winding down after a fatal error.
                    Err(_) => {}
                },
            }
        }
        if fatal.lock().expect("not poisoned").is_some() {
            continue;
        }
        let data = Tree { nodes }.encode();
        let id = session.chunk_id(&data);
        if session.claim(id) {
            if let Err(e) = session.store(&mut pack, id, &data) {
                fatal.lock().expect("not poisoned").get_or_insert(e);
                continue;
            }
        }
        let _ = job.slot.set(id);
    }
    if fatal.lock().expect("not poisoned").is_none() {
        if let Err(e) = session.flush(&mut pack) {
            fatal.lock().expect("not poisoned").get_or_insert(e);
        }
    }
}

pub(crate) fn node_from_meta(name: &[u8], m: &Metadata) -> Node {
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_char_device() {
        NodeKind::Chardev
    } else if ft.is_block_device() {
        NodeKind::Blockdev
    } else {
        NodeKind::File
    };
    let hardlinked = kind != NodeKind::Dir && m.nlink() > 1;
    Node {
        name: FileName(name.to_vec()),
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        user: None,
        group: None,
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        size: if kind == NodeKind::File { m.size() } else { 0 },
        links: if hardlinked { m.nlink() } else { 0 },
        device: if hardlinked { m.dev() } else { 0 },
        inode: if hardlinked { m.ino() } else { 0 },
        rdev: if matches!(kind, NodeKind::Chardev | NodeKind::Blockdev) {
            m.rdev()
        } else {
            0
        },
        sparse: false,
        content: Vec::new(),
        subtree: None,
        target: None,
    }
}

/// The walker: one thread that visits the sources in order.
pub(crate) struct Walker {
    pub session: Arc<BackupSession>,
    pub chunker: Chunker,
    pub jobs: Sender<ChunkJob>,
    pub dirs: Sender<DirJob>,
    pub cache: Option<Arc<FileCache>>,
    pub excludes: GlobSet,
    pub name_excludes: GlobSet,
    pub problems: Problems,
    pub fatal: Fatal,
    pub progress: Arc<Progress>,
    /// Ransomware early-warning measurement (`crate::signals`).
    pub signals: Option<Arc<crate::signals::Observer>>,
}

/// Backed-up paths arranged as a tree from `/`, so the root tree can hold
/// several sources and their parent directories.
#[derive(Default)]
pub(crate) struct PathTrie {
    target: bool,
    children: BTreeMap<Vec<u8>, PathTrie>,
}

impl PathTrie {
    pub(crate) fn insert(&mut self, path: &Path) {
        let mut t = self;
        for c in path.components().skip(1) {
            if t.target {
                return; // an enclosing path is already backed up
            }
            t = t
                .children
                .entry(c.as_os_str().as_bytes().to_vec())
                .or_default();
        }
        t.target = true;
        t.children.clear();
    }
}

impl Walker {
    fn stopped(&self) -> bool {
        self.fatal.lock().expect("not poisoned").is_some()
    }

    fn problem(&self, path: &Path, what: impl std::fmt::Display) {
        tracing::warn!(path = %path.display(), "{what}");
        self.problems
            .lock()
            .expect("not poisoned")
            .push(format!("{}: {what}", path.display()));
    }

    fn send_dir(&self, path: &Path, children: Vec<Child>) -> Slot {
        let slot: Slot = Arc::new(OnceLock::new());
        let _ = self.dirs.send(DirJob {
            slot: slot.clone(),
            path: path.as_os_str().as_bytes().to_vec(),
            children,
        });
        slot
    }

    /// Walks the trie of sources; returns the root tree's slot.
    pub(crate) fn walk_trie(&mut self, dir: &Path, trie: &PathTrie) -> Slot {
        let mut children = Vec::new();
        for (name, sub) in &trie.children {
            let path = dir.join(std::ffi::OsStr::from_bytes(name));
            if sub.target {
                if let Some(c) = self.entry(&path, name) {
                    children.push(c);
                }
                continue;
            }
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {
                    let slot = self.walk_trie(&path, sub);
                    children.push(Child::Dir(node_from_meta(name, &m), slot));
                }
                Ok(_) => self.problem(&path, "is not a directory"),
                Err(e) => self.problem(&path, e),
            }
        }
        self.send_dir(dir, children)
    }

    fn excluded(&self, path: &Path, name: &[u8]) -> bool {
        self.excludes.is_match(path)
            || self
                .name_excludes
                .is_match(std::ffi::OsStr::from_bytes(name))
    }

    fn entry(&mut self, path: &Path, name: &[u8]) -> Option<Child> {
        if self.stopped() || self.excluded(path, name) {
            return None;
        }
        let m = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.problem(path, e);
                return None;
            }
        };
        let mut node = node_from_meta(name, &m);
        match node.kind {
            NodeKind::Dir => {
                let slot = self.walk_dir(path);
                self.progress.dir_done();
                Some(Child::Dir(node, slot))
            }
            NodeKind::Symlink => match fs::read_link(path) {
                Ok(t) => {
                    node.target = Some(FileName(t.as_os_str().as_bytes().to_vec()));
                    Some(Child::Ready(node))
                }
                Err(e) => {
                    self.problem(path, e);
                    None
                }
            },
            NodeKind::File => self.file(path, node, &m),
            _ => Some(Child::Ready(node)),
        }
    }

    fn walk_dir(&mut self, dir: &Path) -> Slot {
        let mut names: Vec<Vec<u8>> = match fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| match e {
                    Ok(e) => Some(e.file_name().as_bytes().to_vec()),
                    Err(err) => {
                        self.problem(dir, err);
                        None
                    }
                })
                .collect(),
            Err(e) => {
                self.problem(dir, e);
                Vec::new()
            }
        };
        names.sort();
        let mut children = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(std::ffi::OsStr::from_bytes(&name));
            if let Some(c) = self.entry(&path, &name) {
                children.push(c);
            }
        }
        self.send_dir(dir, children)
    }

    fn file(&mut self, path: &Path, mut node: Node, m: &Metadata) -> Option<Child> {
        let stamp = FileStamp::of(m);
        if let Some(s) = &self.signals {
            s.file(path, &stamp);
        }
        let key = path.as_os_str().as_bytes();
        if let Some(cache) = &self.cache {
            if let Some(content) = cache.get(key, &stamp) {
                if self.session.reuse(&chunk_ids(&content)) {
                    node.sparse = content.iter().any(|e| matches!(e, Extent::Hole(_)));
                    node.content = content;
                    self.progress.add_bytes(stamp.size);
                    self.progress.file_done();
                    return Some(Child::Ready(node));
                }
            }
        }
        let f = match File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOATIME)
            .open(path)
            .or_else(|_| {
                File::options()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)
            }) {
            Ok(f) => f,
            Err(e) => {
                self.problem(path, e);
                return None;
            }
        };
        node.sparse = m.size() > 0 && m.blocks() * 512 < m.size();
        let (acc, result) = FileAcc::new();
        let mut reader = Reader {
            chunker: &mut self.chunker,
            jobs: &self.jobs,
            progress: &self.progress,
        };
        let read = reader.file(&acc, f, m.size(), node.sparse);
        let size = match read {
            Ok(n) => n,
            Err(ReadError::Io(e)) => {
                acc.fail(e.to_string());
                return Some(Child::File {
                    node,
                    result,
                    cache_key: None,
                });
            }
            Err(ReadError::Stopped) => {
                acc.release();
                return None;
            }
        };
        acc.release();
        node.size = size;
        // A file that changed while it was read is stored as read, but not
        // cached, so the next backup reads it again.
        let unchanged = fs::symlink_metadata(path)
            .map(|m2| FileStamp::of(&m2) == stamp && size == stamp.size)
            .unwrap_or(false);
        Some(Child::File {
            node,
            result,
            cache_key: unchanged.then(|| (key.to_vec(), stamp)),
        })
    }

    /// A stream from a command: one file named `name` in the root tree.
    pub(crate) fn stdin(
        &mut self,
        name: &[u8],
        out: impl std::io::Read,
    ) -> Result<Slot, std::io::Error> {
        let (acc, result) = FileAcc::new();
        let mut reader = Reader {
            chunker: &mut self.chunker,
            jobs: &self.jobs,
            progress: &self.progress,
        };
        let size = match reader.stream(&acc, out) {
            Ok(n) => n,
            Err(ReadError::Io(e)) => {
                acc.fail(e.to_string());
                return Err(e);
            }
            Err(ReadError::Stopped) => 0,
        };
        acc.release();
        let now = chrono::Utc::now();
        let node = Node {
            name: FileName(name.to_vec()),
            kind: NodeKind::File,
            mode: 0o600,
            uid: unsafe_uid(),
            gid: unsafe_gid(),
            user: None,
            group: None,
            mtime_ns: now.timestamp_nanos_opt().unwrap_or(0),
            size,
            links: 0,
            device: 0,
            inode: 0,
            rdev: 0,
            sparse: false,
            content: Vec::new(),
            subtree: None,
            target: None,
        };
        let slot = self.send_dir(
            Path::new("/"),
            vec![Child::File {
                node,
                result,
                cache_key: None,
            }],
        );
        Ok(slot)
    }
}

fn unsafe_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

fn unsafe_gid() -> u32 {
    // SAFETY: getgid cannot fail.
    unsafe { libc::getgid() }
}

pub(crate) fn absolute(p: &Path) -> std::io::Result<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    // Normalise `.` and `..` lexically; symlinks in the path are kept as given.
    let mut out = PathBuf::from("/");
    for c in abs.components().skip(1) {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    Ok(out)
}
