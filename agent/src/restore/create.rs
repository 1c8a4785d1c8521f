//! Phase 2 and the file system primitives the later phases share:
//! directories top-down, and creating or reopening one regular file without
//! ever following a symlink below the target.
//!
//! New files are created with `O_CREAT|O_EXCL|O_NOFOLLOW`; an entry in the
//! way is removed (unlink never follows), except a directory, which is left
//! alone and reported. A file closed before it was finished is reopened
//! with `O_NOFOLLOW` and checked to be the inode that was created.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::plan::Plan;
use super::RestoreError;

/// Creates the target directory if needed. The target itself may be a
/// symlink to a directory (the operator chose it); nothing below it may.
pub(super) fn prepare_target(target: &Path) -> Result<(), RestoreError> {
    let err = |reason: String| RestoreError::Target {
        path: target.display().to_string(),
        reason,
    };
    fs::create_dir_all(target).map_err(|e| err(e.to_string()))?;
    match fs::metadata(target) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(err("it is not a directory".into())),
        Err(e) => Err(err(e.to_string())),
    }
}

/// Phase 2: every directory, top-down (a directory comes after its parent
/// in the plan). Sets `plan.dir_ok`; below a directory that could not be
/// created nothing is attempted (its error says so). Files are not created
/// here: each is created when its first byte arrives, so that it is opened
/// once for create, write and metadata.
pub(super) fn create_dirs(plan: &mut Plan) {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut ok = vec![false; plan.dirs.len()];
    ok[0] = true;
    for i in 1..plan.dirs.len() {
        let d = &plan.dirs[i];
        if !ok[d.parent] {
            continue;
        }
        match make_dir(&d.path, root) {
            Ok(()) => ok[i] = true,
            Err(e) => plan.problems.push(format!(
                "{}: {e}; nothing in it was restored",
                d.path.display()
            )),
        }
    }
    plan.dir_ok = ok;
}

/// Creates a directory (owner-only until phase 4 sets its mode), or reuses
/// an existing real directory.
fn make_dir(path: &Path, root: bool) -> Result<(), String> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                // A directory left read-only by an earlier restore of the
                // same snapshot: writable for now, phase 4 sets its mode.
                if !root && m.mode() & 0o700 != 0o700 {
                    let _ = fs::set_permissions(
                        path,
                        fs::Permissions::from_mode((m.mode() & 0o7777) | 0o700),
                    );
                }
                Ok(())
            }
            Ok(m) => Err(format!(
                "cannot create the directory: a {} is in the way (left alone)",
                kind_name(&m)
            )),
            Err(e) => Err(format!("cannot create the directory: {e}")),
        },
        Err(e) => Err(format!("cannot create the directory: {e}")),
    }
}

fn kind_name(m: &fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_file() {
        "file"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else {
        "device node"
    }
}

/// Removes what is in the way of a new non-directory at `path`.
fn clear(path: &Path) -> Result<(), String> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err("a directory is in the way (left alone); not restored".into()),
        Ok(_) => {
            fs::remove_file(path).map_err(|e| format!("cannot replace the existing entry: {e}"))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `make`; if something is in the way, removes it and runs `make` again.
pub(super) fn replacing(path: &Path, make: impl Fn() -> io::Result<()>) -> Result<(), String> {
    match make() {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            clear(path)?;
            make().map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Creates a new, empty file, owner-only until its metadata is set. With
/// `len`, the file is extended to it (a trailing hole: nothing written, so
/// sparse files stay sparse); otherwise the writes give it its length. In an
/// empty target this is one `openat`: no stat, no truncate.
pub(super) fn create_file(path: &Path, len: Option<u64>) -> Result<fs::File, String> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    };
    let f = match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            clear(path)?;
            open()
        }
        r => r,
    }
    .map_err(|e| format!("cannot create the file: {e}"))?;
    if let Some(len) = len {
        f.set_len(len)
            .map_err(|e| format!("cannot extend the file to {len} bytes: {e}"))?;
    }
    Ok(f)
}

/// The (device, inode) of an open file, kept when it is closed unfinished.
pub(super) fn identity_of(f: &fs::File) -> io::Result<(u64, u64)> {
    let m = f.metadata()?;
    Ok((m.dev(), m.ino()))
}

/// Opens a created file again for writing, refusing anything but the very
/// file that was created (`dev`, `ino`).
pub(super) fn reopen(path: &Path, dev: u64, ino: u64) -> io::Result<fs::File> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    if identity_of(&f)? != (dev, ino) {
        return Err(io::Error::other(
            "it was replaced by something else during the restore; not writing to it",
        ));
    }
    Ok(f)
}
