//! Phase 3's writing side: one thread owns every regular file of the
//! restore and opens each once. A file is created when its first chunk
//! arrives, written with positional writes, and as soon as its last chunk is
//! written its owner, mode and times are set through the same descriptor
//! and it is closed: one `openat` per file and no `stat` in an empty target
//! (the code before this opened every file three times and stat'ed it three
//! times, which was most of a many-file restore's kernel time).
//!
//! Files whose chunks are spread over many packs stay open between packs;
//! at most [`MAX_OPEN`] are, the oldest are closed beyond that (their inode
//! is noted, and a reopen must find the same inode: nothing swapped in
//! during the restore is written through).

use std::collections::VecDeque;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::create::{create_file, identity_of, reopen};
use super::meta::set_fd_meta;
use super::plan::{Meta, Place, Plan};

/// Unfinished files kept open at once (well below the usual 1024 limit).
const MAX_OPEN: usize = 256;

/// One decoded chunk for the writer, or (`data: None`) a chunk that could
/// not be read: its places are counted as done, so its files still get
/// their metadata when everything else of them is written.
pub(super) struct Piece {
    pub data: Option<Vec<u8>>,
    pub places: Vec<Place>,
}

enum State {
    /// Not created yet.
    New,
    Open(fs::File),
    /// Created, closed before its last chunk (too many open).
    Closed {
        dev: u64,
        ino: u64,
    },
    /// Complete (or as complete as it gets), metadata set, closed.
    Done,
    /// Not restored or no longer written (the error is reported once).
    Failed,
}

pub(super) struct Slot {
    pub path: PathBuf,
    /// The file ends in a hole: extend it to this length when creating it.
    trailing_hole: Option<u64>,
    meta: Meta,
    len: u64,
    /// Places not yet written (or lost).
    left: u32,
    /// A chunk of it could not be read: it is extended to its length at the
    /// end (as if the missing part were a hole).
    lost: bool,
    state: State,
    pub created: bool,
}

/// All regular files of a restore and what writing them did.
pub(super) struct Writer {
    pub slots: Vec<Slot>,
    /// Slots opened, oldest first (finished ones are skipped when closing).
    opened: VecDeque<u32>,
    open_now: usize,
    /// [`MAX_OPEN`]; smaller in tests.
    pub max_open: usize,
    /// (k, n): this writer owns the files `i` with `i % n == k`.
    shard: (usize, usize),
    root: bool,
    pub bytes: u64,
    pub errors: Vec<String>,
    /// Files a write failed for.
    pub damaged: Vec<u32>,
}

impl Writer {
    /// Takes the files out of the plan. A file whose directory could not be
    /// created is not attempted (the directory's error says so).
    pub(super) fn new(plan: &mut Plan) -> Writer {
        let mut left = vec![0u32; plan.files.len()];
        let mut end = vec![0u64; plan.files.len()];
        for c in &plan.chunks {
            for p in &c.places {
                let f = p.file as usize;
                left[f] = left[f].saturating_add(1);
                end[f] = end[f].max(p.offset.saturating_add(c.loc.raw_length as u64));
            }
        }
        let slots = plan
            .files
            .iter_mut()
            .enumerate()
            .map(|(i, f)| Slot {
                path: std::mem::take(&mut f.path),
                trailing_hole: (f.len > end[i]).then_some(f.len),
                meta: f.meta,
                len: f.len,
                left: left[i],
                lost: false,
                state: if plan.dir_ok[f.parent] {
                    State::New
                } else {
                    State::Failed
                },
                created: false,
            })
            .collect();
        Writer {
            slots,
            opened: VecDeque::new(),
            open_now: 0,
            max_open: MAX_OPEN,
            shard: (0, 1),
            // SAFETY: geteuid cannot fail.
            root: unsafe { libc::geteuid() } == 0,
            bytes: 0,
            errors: Vec::new(),
            damaged: Vec::new(),
        }
    }

    /// `n` writers for the same files, writer `k` owning files `i % n == k`
    /// (each gets every slot, so file indexes stay valid; only its own are
    /// ever touched). Called before anything is written.
    pub(super) fn split(self, n: usize) -> Vec<Writer> {
        let n = n.max(1);
        (0..n)
            .map(|k| Writer {
                slots: self
                    .slots
                    .iter()
                    .map(|s| Slot {
                        path: s.path.clone(),
                        trailing_hole: s.trailing_hole,
                        meta: s.meta,
                        len: s.len,
                        left: s.left,
                        lost: false,
                        state: match s.state {
                            State::Failed => State::Failed,
                            _ => State::New,
                        },
                        created: false,
                    })
                    .collect(),
                opened: VecDeque::new(),
                open_now: 0,
                max_open: (self.max_open / n).max(1),
                shard: (k, n),
                root: self.root,
                bytes: 0,
                errors: Vec::new(),
                damaged: Vec::new(),
            })
            .collect()
    }

    /// The writers of [`Writer::split`] as one: each file's slot from the
    /// writer that owned it.
    pub(super) fn merge(writers: Vec<Writer>) -> Writer {
        let n = writers.len().max(1);
        let mut parts: Vec<std::vec::IntoIter<Slot>> = Vec::new();
        let mut out = Writer {
            slots: Vec::new(),
            opened: VecDeque::new(),
            open_now: 0,
            max_open: MAX_OPEN,
            shard: (0, 1),
            root: false,
            bytes: 0,
            errors: Vec::new(),
            damaged: Vec::new(),
        };
        for w in writers {
            out.root = w.root;
            out.bytes += w.bytes;
            out.errors.extend(w.errors);
            out.damaged.extend(w.damaged);
            parts.push(w.slots.into_iter());
        }
        let len = parts.first().map_or(0, |p| p.len());
        for i in 0..len {
            for (k, p) in parts.iter_mut().enumerate() {
                let s = p.next().expect("every writer has every slot");
                if k == i % n {
                    out.slots.push(s);
                }
            }
        }
        out
    }

    /// Writes one chunk to each of its places (or counts a lost one), and
    /// gives its buffer back for the next chunk.
    pub(super) fn take(&mut self, piece: Piece) -> Option<Vec<u8>> {
        for p in &piece.places {
            let i = p.file as usize;
            match &piece.data {
                Some(data) => self.put(i, p.offset, data),
                None => self.slots[i].lost = true,
            }
            let s = &mut self.slots[i];
            s.left = s.left.saturating_sub(1);
            if s.left == 0 && matches!(s.state, State::Open(_)) {
                self.complete(i);
            }
        }
        piece.data
    }

    fn put(&mut self, i: usize, offset: u64, data: &[u8]) {
        if let Err(e) = self.ensure_open(i) {
            if let Some(e) = e {
                self.fail(i, e);
            }
            return;
        }
        let State::Open(f) = &self.slots[i].state else {
            unreachable!("ensure_open leaves the file open")
        };
        match f.write_all_at(data, offset) {
            Ok(()) => self.bytes += data.len() as u64,
            Err(e) => {
                self.damaged.push(i as u32);
                self.fail(i, format!("writing its content failed: {e}"));
            }
        }
    }

    /// Opens slot `i` (creating it the first time). `Err(None)`: the file
    /// is not written and its error was already reported.
    fn ensure_open(&mut self, i: usize) -> Result<(), Option<String>> {
        let file = match self.slots[i].state {
            State::Open(_) => return Ok(()),
            State::Done | State::Failed => return Err(None),
            State::New => {
                self.make_room();
                let s = &mut self.slots[i];
                let f = create_file(&s.path, s.trailing_hole).map_err(Some)?;
                s.created = true;
                f
            }
            State::Closed { dev, ino } => {
                self.make_room();
                reopen(&self.slots[i].path, dev, ino).map_err(|e| {
                    self.damaged.push(i as u32);
                    Some(format!("cannot reopen it to write its content: {e}"))
                })?
            }
        };
        self.slots[i].state = State::Open(file);
        self.opened.push_back(i as u32);
        self.open_now += 1;
        Ok(())
    }

    /// Closes the oldest unfinished file when `max_open` are open.
    fn make_room(&mut self) {
        while self.open_now >= self.max_open.max(1) {
            let Some(j) = self.opened.pop_front() else {
                return;
            };
            let j = j as usize;
            if !matches!(self.slots[j].state, State::Open(_)) {
                continue; // finished since it was opened
            }
            let State::Open(f) = std::mem::replace(&mut self.slots[j].state, State::Failed) else {
                unreachable!()
            };
            self.open_now -= 1;
            match identity_of(&f) {
                Ok((dev, ino)) => self.slots[j].state = State::Closed { dev, ino },
                Err(e) => {
                    self.damaged.push(j as u32);
                    self.errors.push(format!(
                        "{}: cannot note which file it is: {e}",
                        self.slots[j].path.display()
                    ));
                }
            }
        }
    }

    /// Sets the metadata of an open file through its descriptor and closes it.
    fn complete(&mut self, i: usize) {
        let State::Open(f) = std::mem::replace(&mut self.slots[i].state, State::Done) else {
            return;
        };
        self.open_now -= 1;
        let s = &self.slots[i];
        let sized = match s.lost {
            true => f
                .set_len(s.len)
                .map_err(|e| format!("cannot extend the file to {} bytes: {e}", s.len)),
            false => Ok(()),
        };
        if let Err(e) = sized.and_then(|()| set_fd_meta(&f, &s.meta, self.root)) {
            self.errors.push(format!("{}: {e}", s.path.display()));
        }
    }

    fn fail(&mut self, i: usize, e: String) {
        let s = &mut self.slots[i];
        if matches!(s.state, State::Open(_)) {
            self.open_now -= 1;
        }
        s.state = State::Failed;
        self.errors.push(format!("{}: {e}", s.path.display()));
    }

    /// After the last pack: files still unfinished (no content at all, or
    /// chunks lost) are created or reopened, and get their metadata.
    pub(super) fn finish_all(&mut self) {
        for i in (self.shard.0..self.slots.len()).step_by(self.shard.1.max(1)) {
            match self.slots[i].state {
                State::Done | State::Failed => continue,
                State::Open(_) => {}
                State::New | State::Closed { .. } => {
                    if let Err(e) = self.ensure_open(i) {
                        if let Some(e) = e {
                            self.fail(i, e);
                        }
                        continue;
                    }
                }
            }
            self.complete(i);
        }
    }
}
