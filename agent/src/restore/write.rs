//! Phases 2 to 4 on the file system (blocking code, run on blocking
//! threads): creating directories and files, writing one pack's chunks, then
//! links, special files and metadata.
//!
//! Nothing here follows a symlink below the target: new files are created
//! with `O_CREAT|O_EXCL`, reopened with `O_NOFOLLOW` and checked to be the
//! inode that was created; an entry in the way is removed (unlink never
//! follows), except a directory, which is left alone and reported.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{
    DirBuilderExt, FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt,
};
use std::path::{Path, PathBuf};

use cadang_core::keys::{DataIdentity, RepoSecret};
use cadang_core::pack;
use cadang_core::Id;

use super::meta::{set_meta, MetaKind};
use super::plan::{Chunk, OtherKind, Plan};
use super::RestoreError;

/// Files kept open while one pack is written.
const MAX_OPEN_FILES: usize = 128;

/// A regular file as created in phase 2.
pub(super) struct FileTarget {
    pub path: PathBuf,
    pub created: bool,
    dev: u64,
    ino: u64,
}

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

/// Phase 2: directories top-down, then every regular file at its length.
/// Entries whose directory could not be created are skipped silently (the
/// directory's error says so).
pub(super) fn create(plan: &mut Plan) -> Vec<FileTarget> {
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

    let mut out = Vec::with_capacity(plan.files.len());
    for f in &mut plan.files {
        let path = std::mem::take(&mut f.path);
        let mut t = FileTarget {
            path,
            created: false,
            dev: 0,
            ino: 0,
        };
        if plan.dir_ok[f.parent] {
            match create_file(&t.path, f.len) {
                Ok((dev, ino)) => (t.created, t.dev, t.ino) = (true, dev, ino),
                Err(e) => plan.problems.push(format!("{}: {e}", t.path.display())),
            }
        }
        out.push(t);
    }
    out
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
fn replacing(path: &Path, make: impl Fn() -> io::Result<()>) -> Result<(), String> {
    match make() {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            clear(path)?;
            make().map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Creates a new, empty file of `len` bytes (sparse: nothing is written)
/// and returns its (device, inode).
fn create_file(path: &Path, len: u64) -> Result<(u64, u64), String> {
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
    f.set_len(len)
        .map_err(|e| format!("cannot extend the file to {len} bytes: {e}"))?;
    let m = f.metadata().map_err(|e| e.to_string())?;
    Ok((m.dev(), m.ino()))
}

/// Opens a created file again for writing, refusing anything but the very
/// file phase 2 created.
fn reopen(t: &FileTarget) -> io::Result<fs::File> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&t.path)?;
    let m = f.metadata()?;
    if (m.dev(), m.ino()) != (t.dev, t.ino) {
        return Err(io::Error::other(
            "it was replaced by something else during the restore; not writing to it",
        ));
    }
    Ok(f)
}

/// Up to ten paths of `files[idx]`, for messages.
pub(super) fn list_files(idx: &BTreeSet<u32>, files: &[FileTarget]) -> String {
    let mut names: Vec<String> = idx
        .iter()
        .take(10)
        .map(|&i| files[i as usize].path.display().to_string())
        .collect();
    if idx.len() > 10 {
        names.push(format!("and {} more", idx.len() - 10));
    }
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// What writing one pack did.
#[derive(Default)]
pub(super) struct PackOutcome {
    pub bytes: u64,
    pub errors: Vec<String>,
    pub damaged: Vec<u32>,
}

fn files_of<'c>(
    chunks: impl IntoIterator<Item = &'c Chunk>,
    files: &[FileTarget],
) -> BTreeSet<u32> {
    chunks
        .into_iter()
        .flat_map(|c| c.places.iter().map(|p| p.file))
        .filter(|&f| files[f as usize].created)
        .collect()
}

impl PackOutcome {
    /// A pack that could not be read or decrypted: every file with a chunk
    /// in it is incomplete.
    pub(super) fn unreadable(
        pack: &Id,
        reason: &str,
        chunks: &[Chunk],
        files: &[FileTarget],
    ) -> PackOutcome {
        let idx = files_of(chunks, files);
        PackOutcome {
            bytes: 0,
            errors: vec![RestoreError::DamagedPack {
                pack: pack.to_hex(),
                reason: reason.into(),
                files: list_files(&idx, files),
            }
            .to_string()],
            damaged: idx.into_iter().collect(),
        }
    }
}

/// Phase 3 for one decrypted pack: decodes and verifies each chunk, then
/// writes it to each of its places.
/// What was read of a pack: all of it, or only the parts the chunks need.
pub(super) enum PackBytes {
    Whole(Vec<u8>),
    /// The age part, zero where nothing was needed.
    AgePart(Vec<u8>),
}

pub(super) fn write_pack(
    pack: &Id,
    bytes: &PackBytes,
    identity: &DataIdentity,
    chunks: &[Chunk],
    files: &[FileTarget],
    secret: &RepoSecret,
) -> PackOutcome {
    // The plaintext is decrypted as the chunks (sorted by offset) are read,
    // never held whole: a lane holds the stored pack and one chunk.
    let stream = match bytes {
        PackBytes::Whole(stored) => pack::open_stream(stored, identity),
        PackBytes::AgePart(age) => pack::open_age_stream(age, identity),
    };
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => return PackOutcome::unreadable(pack, &e.to_string(), chunks, files),
    };
    let mut buf = Vec::new();
    let mut out = PackOutcome::default();
    let mut open: HashMap<u32, fs::File> = HashMap::new();
    let mut failed: HashSet<u32> = HashSet::new();
    for c in chunks {
        let entry = c.loc.entry(c.id);
        let data = match pack::read_blob(&mut stream, &entry, &mut buf)
            .and_then(|s| pack::decode_blob(s, &entry, Some(secret)))
        {
            Ok(d) => d,
            Err(e) => {
                let idx = files_of([c], files);
                out.errors.push(format!(
                    "chunk {} in pack {pack} is unusable ({e}); these files are incomplete: {}",
                    c.id,
                    list_files(&idx, files)
                ));
                out.damaged.extend(idx);
                continue;
            }
        };
        for p in &c.places {
            let t = &files[p.file as usize];
            if !t.created || failed.contains(&p.file) {
                continue;
            }
            if open.len() >= MAX_OPEN_FILES && !open.contains_key(&p.file) {
                open.clear();
            }
            let f = match open.entry(p.file) {
                std::collections::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
                std::collections::hash_map::Entry::Vacant(v) => reopen(t).map(|f| v.insert(f)),
            };
            match f.and_then(|f| f.write_all_at(&data, p.offset)) {
                Ok(()) => out.bytes += data.len() as u64,
                Err(e) => {
                    failed.insert(p.file);
                    out.damaged.push(p.file);
                    out.errors.push(format!(
                        "{}: writing its content failed: {e}",
                        t.path.display()
                    ));
                }
            }
        }
    }
    out
}

/// What phase 4 did.
pub(super) struct Finished {
    /// Hard links, symlinks and special files created.
    pub others: u64,
    /// Directories that exist (created or reused), the target not counted.
    pub dirs: u64,
    pub errors: Vec<String>,
}

/// Phase 4: hard links, symlinks and special files, then owner, mode and
/// times of everything; directories last and deepest first.
pub(super) fn finish(plan: &Plan, files: &[FileTarget]) -> Finished {
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
    for (f, t) in plan.files.iter().zip(files) {
        if t.created {
            note(&t.path, set_meta(&t.path, &f.meta, MetaKind::File, root));
        }
    }
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

fn make_other(
    path: &Path,
    kind: &OtherKind,
    files: &[FileTarget],
    root: bool,
) -> Result<(), String> {
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
