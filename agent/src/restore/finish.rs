//! Phase 4: hard links, symlinks and special files, their owners, modes and
//! times, then the directories' — last and deepest first, so that creating
//! their children does not change their times afterwards. (Regular files got
//! theirs in phase 3, from the descriptor their data was written with.)
//!
//! Nothing here follows a symlink below the target: symlinks are created
//! after all data is written, and an entry in the way is removed (unlink
//! never follows), except a directory, which is left alone and reported.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::create::replacing;
use super::files::Slot;
use super::meta::{set_meta, MetaKind};
use super::plan::{OtherKind, Plan};

/// What phase 4 did.
pub(super) struct Finished {
    /// Hard links, symlinks and special files created.
    pub others: u64,
    /// Directories that exist (created or reused), the target not counted.
    pub dirs: u64,
    pub errors: Vec<String>,
}

/// Phase 4 (see the module's comment). `files` are the regular files as
/// phase 3 left them (hard links point at them).
pub(super) fn finish(plan: &Plan, files: &[Slot]) -> Finished {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut errors = Vec::new();
    let mut made = vec![false; plan.others.len()];
    for (i, o) in plan.others.iter().enumerate() {
        if !plan.dir_ok[o.parent] {
            continue;
        }
        match make_other(&o.path, &o.kind, files, root) {
            Ok(()) => made[i] = true,
            Err(e) => errors.push(format!("{}: {e}", o.path.display())),
        }
    }

    let mut note = |path: &Path, r: Result<(), String>| {
        if let Err(e) = r {
            errors.push(format!("{}: {e}", path.display()));
        }
    };
    for (o, _) in plan.others.iter().zip(&made).filter(|(_, m)| **m) {
        let kind = match o.kind {
            OtherKind::HardLink(_) => continue, // the file's metadata is set once
            OtherKind::Symlink(_) => MetaKind::Symlink,
            _ => MetaKind::Special,
        };
        note(&o.path, set_meta(&o.path, &o.meta, kind, root));
    }
    let mut dirs: Vec<usize> = (1..plan.dirs.len()).filter(|&i| plan.dir_ok[i]).collect();
    dirs.sort_by_key(|&i| std::cmp::Reverse(plan.dirs[i].depth));
    for &i in &dirs {
        let d = &plan.dirs[i];
        note(&d.path, set_meta(&d.path, &d.meta, MetaKind::Dir, root));
    }
    Finished {
        others: made.iter().filter(|m| **m).count() as u64,
        dirs: dirs.len() as u64,
        errors,
    }
}

fn make_other(path: &Path, kind: &OtherKind, files: &[Slot], root: bool) -> Result<(), String> {
    let node = |fmt: libc::mode_t, rdev: u64| {
        replacing(path, || {
            let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
            // SAFETY: `c` is a valid NUL-terminated path.
            if unsafe { libc::mknod(c.as_ptr(), fmt | 0o600, rdev as libc::dev_t) } == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        })
    };
    match kind {
        OtherKind::HardLink(first) => {
            let t = &files[*first];
            if !t.created {
                return Err(format!(
                    "hard link not created: the file it links to, {}, was not restored",
                    t.path.display()
                ));
            }
            replacing(path, || fs::hard_link(&t.path, path))
        }
        OtherKind::Symlink(target) => replacing(path, || {
            std::os::unix::fs::symlink(OsStr::from_bytes(target), path)
        }),
        OtherKind::Fifo => node(libc::S_IFIFO, 0),
        OtherKind::Socket => node(libc::S_IFSOCK, 0),
        OtherKind::Chardev(_) | OtherKind::Blockdev(_) if !root => Err(
            "device node not restored: only root can create device nodes (run the restore as root)"
                .into(),
        ),
        OtherKind::Chardev(rdev) => node(libc::S_IFCHR, *rdev),
        OtherKind::Blockdev(rdev) => node(libc::S_IFBLK, *rdev),
    }
}
