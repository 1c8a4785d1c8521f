//! What a restore does around `restore::restore`: choosing the snapshot's
//! entries the request covers, moving aside what an in-place restore would
//! overwrite, and re-reading every restored file against the snapshot.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cadang_core::keys::RepoSecret;
use cadang_core::repository::BlobReader;
use cadang_core::tree::{Extent, NodeKind};

use crate::browse::Entry;

/// Whether `path` is restored when `includes` are asked for (empty: all):
/// the include itself, what is below it, and its parent directories.
pub fn covered(path: &[u8], includes: &[Vec<u8>]) -> bool {
    includes.is_empty()
        || includes.iter().any(|inc| {
            let below =
                |a: &[u8], b: &[u8]| a.len() > b.len() && a.starts_with(b) && a[b.len()] == b'/';
            path == inc.as_slice() || below(path, inc) || below(inc, path)
        })
}

/// Where a snapshot path is restored: `/srv/x` → `TARGET/srv/x`.
pub fn restored_path(target: &Path, path: &[u8]) -> PathBuf {
    let rel = path.strip_prefix(b"/").unwrap_or(path);
    target.join(std::ffi::OsStr::from_bytes(rel))
}

/// The directory an in-place restore moves overwritten entries into.
pub fn aside_dir(target: &Path, request_id: &str) -> PathBuf {
    target.join(format!(".cadang-moved-aside-{request_id}"))
}

/// Whether a non-in-place restore may write into `target`: it is missing
/// or an empty directory.
pub fn target_is_fresh(target: &Path) -> Result<bool, String> {
    match std::fs::read_dir(target) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(format!("cannot read the target {}: {e}", target.display())),
    }
}

/// Moves every existing entry the restore would replace into
/// [`aside_dir`], keeping its relative path: nothing is overwritten or
/// lost. An existing directory where the snapshot has a directory stays
/// (the restore merges into it). Returns how many entries were moved.
pub fn move_aside(target: &Path, request_id: &str, entries: &[&Entry]) -> Result<u64, String> {
    let aside = aside_dir(target, request_id);
    let mut moved = 0;
    for e in entries {
        let dest = restored_path(target, &e.path);
        let Ok(meta) = std::fs::symlink_metadata(&dest) else {
            continue;
        };
        if meta.is_dir() && e.node.kind == NodeKind::Dir {
            continue;
        }
        let to = restored_path(&aside, &e.path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|err| format!("cannot create {}: {err}", parent.display()))?;
        }
        std::fs::rename(&dest, &to).map_err(|err| {
            format!(
                "cannot move {} aside to {} ({err}); nothing was restored over it",
                dest.display(),
                to.display()
            )
        })?;
        moved += 1;
    }
    Ok(moved)
}

/// Re-reads each restored regular file and compares every chunk's keyed
/// hash (and every hole) with the snapshot. Returns how many files matched
/// and one line per file that did not.
pub async fn verify(
    reader: &BlobReader<'_>,
    target: &Path,
    entries: &[&Entry],
) -> (u64, Vec<String>) {
    let mut ok = 0;
    let mut failures = Vec::new();
    for e in entries.iter().filter(|e| e.node.kind == NodeKind::File) {
        let extents: Vec<Option<(Extent, u64)>> = e
            .node
            .content
            .iter()
            .map(|x| match x {
                Extent::Chunk(id) => reader
                    .index
                    .get(id)
                    .map(|l| (x.clone(), l.raw_length as u64)),
                Extent::Hole(n) => Some((x.clone(), *n)),
            })
            .collect();
        let (path, size, secret) = (
            restored_path(target, &e.path),
            e.node.size,
            reader.secret().clone(),
        );
        let problem =
            tokio::task::spawn_blocking(move || check_file(&path, size, &extents, &secret))
                .await
                .unwrap_or_else(|err| Some(format!("verification stopped: {err}")));
        match problem {
            None => ok += 1,
            Some(p) => failures.push(format!("{}: {p}", String::from_utf8_lossy(&e.path))),
        }
    }
    (ok, failures)
}

/// `None` when the file at `path` holds exactly the snapshot's content
/// (restores and drills both verify with this).
pub(crate) fn check_file(
    path: &Path,
    size: u64,
    extents: &[Option<(Extent, u64)>],
    secret: &RepoSecret,
) -> Option<String> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Some(format!("missing, not restored ({e})")),
    };
    let actual = f.metadata().map(|m| m.len()).unwrap_or(0);
    if actual != size {
        return Some(format!("size {actual} instead of {size} bytes"));
    }
    let mut buf = Vec::new();
    for (i, x) in extents.iter().enumerate() {
        let Some((extent, len)) = x else {
            return Some(format!("chunk {i} is not in the repository index"));
        };
        buf.resize(*len as usize, 0);
        if f.read_exact(&mut buf).is_err() {
            return Some(format!("shorter than the snapshot (chunk {i})"));
        }
        let same = match extent {
            Extent::Chunk(id) => secret.chunk_id(&buf) == *id,
            Extent::Hole(_) => buf.iter().all(|b| *b == 0),
        };
        if !same {
            return Some(format!(
                "content hash differs from the snapshot (chunk {i})"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_cover_themselves_their_contents_and_their_parents() {
        let inc = vec![b"/srv/data".to_vec()];
        assert!(covered(b"/srv/data", &inc));
        assert!(covered(b"/srv/data/x", &inc));
        assert!(covered(b"/srv", &inc));
        assert!(!covered(b"/srv/database", &inc));
        assert!(!covered(b"/etc", &inc));
        assert!(covered(b"/etc", &[]));
    }

    #[test]
    fn restored_paths_stay_under_the_target() {
        assert_eq!(
            restored_path(Path::new("/t"), b"/srv/x"),
            PathBuf::from("/t/srv/x")
        );
        assert_eq!(
            aside_dir(Path::new("/t"), "rr-1"),
            PathBuf::from("/t/.cadang-moved-aside-rr-1")
        );
    }
}
