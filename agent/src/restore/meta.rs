//! Phase 4's last step: owner, mode and times of one restored entry,
//! without following symlinks.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use filetime::FileTime;

use super::plan::Meta;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum MetaKind {
    Dir,
    Symlink,
    Special,
}

fn file_time(ns: i64) -> FileTime {
    FileTime::from_unix_time(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
}

/// Ownership errors are ignored when not root: an unprivileged restore
/// keeps the restoring user as owner.
fn owner(r: io::Result<()>, root: bool) -> Result<(), String> {
    match r {
        Err(e) if !root && matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EINVAL)) => {
            Ok(())
        }
        Err(e) => Err(format!("cannot set the owner: {e}")),
        Ok(()) => Ok(()),
    }
}

fn join(errs: Vec<String>) -> Result<(), String> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// Owner, then mode (chown clears setuid/setgid), then atime = mtime, of
/// an open file or directory through its descriptor: no path lookup, no
/// stat. A restored file gets this from the descriptor its data was written
/// with, right after its last byte.
pub(super) fn set_fd_meta(f: &fs::File, meta: &Meta, root: bool) -> Result<(), String> {
    let t = file_time(meta.mtime_ns);
    let mut errs = Vec::new();
    errs.extend(
        owner(
            std::os::unix::fs::fchown(f, Some(meta.uid), Some(meta.gid)),
            root,
        )
        .err(),
    );
    errs.extend(
        f.set_permissions(fs::Permissions::from_mode(meta.mode & 0o7777))
            .err()
            .map(|e| format!("cannot set the mode: {e}")),
    );
    errs.extend(
        filetime::set_file_handle_times(f, Some(t), Some(t))
            .err()
            .map(|e| format!("cannot set the times: {e}")),
    );
    join(errs)
}

/// Sets owner, mode and times by path (directories, symlinks, special
/// files). Directories are changed through a descriptor opened with
/// `O_NOFOLLOW`; symlinks and special files (never opened: opening a device
/// can have effects) by path with the calls that do not follow links.
pub(super) fn set_meta(path: &Path, meta: &Meta, kind: MetaKind, root: bool) -> Result<(), String> {
    let t = file_time(meta.mtime_ns);
    let perms = fs::Permissions::from_mode(meta.mode & 0o7777);
    if kind == MetaKind::Dir {
        let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_DIRECTORY;
        match OpenOptions::new().read(true).custom_flags(flags).open(path) {
            Ok(f) => {
                let m = f.metadata().map_err(|e| e.to_string())?;
                if !m.is_dir() {
                    return Err("was replaced during the restore; its metadata is not set".into());
                }
                return set_fd_meta(&f, meta, root);
            }
            // An existing directory we may not read: by path below.
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {}
            Err(e) => return Err(format!("cannot set its metadata: {e}")),
        }
    }
    let m = fs::symlink_metadata(path).map_err(|e| format!("cannot set its metadata: {e}"))?;
    if m.file_type().is_symlink() != (kind == MetaKind::Symlink) {
        return Err("was replaced during the restore; its metadata is not set".into());
    }
    let mut errs = Vec::new();
    errs.extend(
        owner(
            std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid)),
            root,
        )
        .err(),
    );
    if kind != MetaKind::Symlink {
        errs.extend(
            fs::set_permissions(path, perms)
                .err()
                .map(|e| format!("cannot set the mode: {e}")),
        );
    }
    errs.extend(
        filetime::set_symlink_file_times(path, t, t)
            .err()
            .map(|e| format!("cannot set the times: {e}")),
    );
    join(errs)
}
