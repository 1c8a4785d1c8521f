//! Counting during the walk: each regular file is compared with the side
//! table of the previous measured backup; pairing of new names with
//! vanished files (renames, `a.docx` → `a.docx.locked`) waits for the end
//! of the walk, when it is known which old paths are gone.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;

use cadang_proto::signals::BackupSignals;

use super::entropy::{self, Block, FileClass};
use super::lists::Lists;
use super::table::{path_key, stem_key, Record, Table};
use crate::cache::FileStamp;

/// A path that was not in the previous table: new, renamed or a
/// replacement, decided in [`Counter::finish`].
struct Pending {
    record: Record,
    /// Hashes of the path cut at each dot of its name (`dir/a`,
    /// `dir/a.docx` for `dir/a.docx.locked`): what the file was called if
    /// ransomware appended or swapped an extension.
    prefixes: Vec<([u8; 16], u64)>,
    known_extension: bool,
    note_dir: Option<[u8; 16]>,
}

#[derive(Default)]
struct State {
    prev: Option<Table>,
    seen: Vec<bool>,
    current: Vec<Record>,
    pending: Vec<Pending>,
    s: BackupSignals,
}

/// Per-backup counting; shared by reference with the walker thread.
pub(crate) struct Counter {
    state: Mutex<State>,
    lists: std::sync::Arc<Lists>,
}

/// The path without its last extension (`/d/a.docx` → `/d/a`).
fn stem(path: &[u8]) -> &[u8] {
    let name_at = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    match path[name_at..].iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => &path[..name_at + i],
        _ => path,
    }
}

fn prefixes(path: &[u8]) -> Vec<([u8; 16], u64)> {
    let name_at = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    path[name_at..]
        .iter()
        .enumerate()
        .filter(|&(i, &b)| i > 0 && b == b'.')
        .take(8)
        .map(|(i, _)| {
            let p = &path[..name_at + i];
            (path_key(p), stem_key(p))
        })
        .collect()
}

impl Counter {
    pub(crate) fn new(prev: Option<Table>, lists: std::sync::Arc<Lists>) -> Counter {
        let mut s = BackupSignals {
            has_parent: prev.is_some(),
            lists_version: lists.version.clone(),
            ..Default::default()
        };
        s.files_before = prev.as_ref().map_or(0, |t| t.records.len() as u64);
        let seen = vec![false; s.files_before as usize];
        Counter {
            state: Mutex::new(State {
                prev,
                seen,
                s,
                ..Default::default()
            }),
            lists,
        }
    }

    /// One regular file seen by the walker. Reads two 4 KiB blocks only
    /// when the file is new or changed since the previous measured backup.
    pub(crate) fn file(&self, path: &Path, stamp: &FileStamp) {
        let bytes = path.as_os_str().as_bytes();
        let key = path_key(bytes);
        let mut st = self.state.lock().expect("not poisoned");
        st.s.files_total += 1;
        let old = st
            .prev
            .as_ref()
            .and_then(|t| t.find(&key).map(|i| (i, t.records[i])));
        let class = match old {
            Some((i, old)) => {
                st.seen[i] = true;
                if old.stamp == *stamp {
                    old.class
                } else {
                    drop(st);
                    let class = entropy::sample(path, stamp.size);
                    st = self.state.lock().expect("not poisoned");
                    changed(&mut st.s, old.class, class, stamp.size);
                    class
                }
            }
            None => {
                drop(st);
                let class = entropy::sample(path, stamp.size);
                let pending = self.pending(path, bytes, key, stamp, class);
                st = self.state.lock().expect("not poisoned");
                st.pending.push(pending);
                class
            }
        };
        st.current.push(Record {
            path: key,
            stem: stem_key(stem(bytes)),
            stamp: *stamp,
            class,
        });
    }

    fn pending(
        &self,
        path: &Path,
        bytes: &[u8],
        key: [u8; 16],
        stamp: &FileStamp,
        class: FileClass,
    ) -> Pending {
        let name = path.file_name().map_or(&[][..], |n| n.as_bytes());
        let note = self.lists.ransom_note(name);
        Pending {
            record: Record {
                path: key,
                stem: stem_key(stem(bytes)),
                stamp: *stamp,
                class,
            },
            prefixes: prefixes(bytes),
            known_extension: self.lists.known_extension(name),
            note_dir: note
                .then(|| path_key(path.parent().map_or(&[][..], |p| p.as_os_str().as_bytes()))),
        }
    }

    /// Pairs the new names with vanished files and returns the signals and
    /// the table to keep for the next backup.
    pub(crate) fn finish(self) -> (BackupSignals, Table) {
        let st = self.state.into_inner().expect("not poisoned");
        let State {
            prev,
            seen,
            current,
            pending,
            mut s,
        } = st;
        let prev = prev.unwrap_or_default();
        let mut gone = Vanished::new(&prev, &seen);
        let mut note_dirs = HashSet::new();
        for p in pending {
            classify_pending(&mut s, &mut gone, &mut note_dirs, p);
        }
        s.files_deleted = gone.remaining();
        s.ransom_note_dirs = note_dirs.len() as u64;
        (s, Table::from_records(current))
    }
}

fn changed(s: &mut BackupSignals, before: FileClass, now: FileClass, size: u64) {
    s.files_changed += 1;
    s.bytes_changed += size;
    if before.known() && now.known() {
        s.entropy_checked += 1;
        if FileClass::became_random(before, now) {
            s.entropy_transitions += 1;
        }
    }
}

fn classify_pending(
    s: &mut BackupSignals,
    gone: &mut Vanished,
    note_dirs: &mut HashSet<[u8; 16]>,
    p: Pending,
) {
    let r = p.record;
    if let Some(dir) = p.note_dir {
        // A note is new by nature; never pair it with a vanished file.
        s.ransom_notes += 1;
        s.files_new += 1;
        s.bytes_changed += r.stamp.size;
        note_dirs.insert(dir);
        return;
    }
    if p.known_extension {
        s.known_extension_files += 1;
    }
    if let Some(old) = gone.take_rename(&r) {
        s.files_renamed += 1;
        if p.prefixes
            .iter()
            .any(|(k, st)| *k == old.path || *st == old.stem)
        {
            s.extension_changed += 1;
        }
        return;
    }
    if let Some(old) = gone.take_replaced(&p.prefixes) {
        changed(s, old.class, r.class, r.stamp.size);
        s.extension_changed += 1;
        return;
    }
    s.files_new += 1;
    s.bytes_changed += r.stamp.size;
    if r.class.head == Block::Random {
        s.new_files_random += 1;
    }
}

/// Files of the previous backup that were not seen again, indexed for
/// pairing; each can be paired once.
struct Vanished {
    records: Vec<Record>,
    taken: Vec<bool>,
    by_inode: HashMap<(u64, u64), usize>,
    by_path: HashMap<[u8; 16], usize>,
    by_stem: HashMap<u64, Vec<usize>>,
}

impl Vanished {
    fn new(prev: &Table, seen: &[bool]) -> Vanished {
        let records: Vec<Record> = prev
            .records
            .iter()
            .zip(seen)
            .filter(|(_, &s)| !s)
            .map(|(r, _)| *r)
            .collect();
        let mut v = Vanished {
            taken: vec![false; records.len()],
            by_inode: HashMap::new(),
            by_path: HashMap::new(),
            by_stem: HashMap::new(),
            records,
        };
        for (i, r) in v.records.iter().enumerate() {
            v.by_inode.insert((r.stamp.device, r.stamp.inode), i);
            v.by_path.insert(r.path, i);
            v.by_stem.entry(r.stem).or_default().push(i);
        }
        v
    }

    fn take(&mut self, i: usize) -> Option<Record> {
        (!self.taken[i]).then(|| {
            self.taken[i] = true;
            self.records[i]
        })
    }

    /// A rename keeps inode, size and mtime (inode numbers alone are reused
    /// by the file system once a file is deleted).
    fn take_rename(&mut self, r: &Record) -> Option<Record> {
        let i = *self.by_inode.get(&(r.stamp.device, r.stamp.inode))?;
        let o = self.records[i].stamp;
        if o.size != r.stamp.size || o.mtime_ns != r.stamp.mtime_ns {
            return None;
        }
        self.take(i)
    }

    fn take_replaced(&mut self, prefixes: &[([u8; 16], u64)]) -> Option<Record> {
        for (k, st) in prefixes {
            if let Some(&i) = self.by_path.get(k) {
                if let Some(r) = self.take(i) {
                    return Some(r);
                }
            }
            let candidates = self.by_stem.get(st).cloned().unwrap_or_default();
            for i in candidates {
                if let Some(r) = self.take(i) {
                    return Some(r);
                }
            }
        }
        None
    }

    fn remaining(&self) -> u64 {
        self.taken.iter().filter(|t| !**t).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_and_prefixes_cut_at_the_dots_of_the_name_only() {
        assert_eq!(stem(b"/d.x/a.docx"), b"/d.x/a");
        assert_eq!(stem(b"/d/.bashrc"), b"/d/.bashrc");
        assert_eq!(stem(b"/d/a"), b"/d/a");
        let p = prefixes(b"/d.x/a.docx.locked");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].0, path_key(b"/d.x/a"));
        assert_eq!(p[1].0, path_key(b"/d.x/a.docx"));
    }
}
