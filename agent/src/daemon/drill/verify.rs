//! Verification: every restored regular file re-read and compared with
//! the snapshot, chunk by chunk (keyed hash) and hole by hole.

use std::path::{Path, PathBuf};

use cadang_core::repository::BlobReader;
use cadang_core::snapshot::Snapshot;
use cadang_core::tree::{Extent, NodeKind};
use cadang_proto::drill::{DrillFailure, DrillResult};

use crate::browse;
use crate::daemon::restore_job::files::check_file;

/// Re-reads every restored regular file and compares each chunk's keyed
/// hash (and each hole) with the snapshot. Returns the snapshot paths of
/// the regular files with their restored location, for the check.
pub(super) async fn verify(
    reader: &BlobReader<'_>,
    snap: &Snapshot,
    target: &Path,
    result: &mut DrillResult,
) -> Result<Vec<(String, PathBuf)>, DrillFailure> {
    let entries = browse::list(reader, snap)
        .await
        .map_err(|e| DrillFailure::DrDamaged {
            detail: e.to_string(),
        })?;
    let mut files = Vec::new();
    for e in entries
        .into_iter()
        .filter(|e| e.node.kind == NodeKind::File)
    {
        let shown = String::from_utf8_lossy(&e.path).into_owned();
        let restored = target.join(String::from_utf8_lossy(&e.path[1..]).as_ref());
        let lengths: Vec<Option<(Extent, u64)>> = e
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
        result.files_checked += 1;
        let secret = reader.secret().clone();
        let path = restored.clone();
        let size = e.node.size;
        let problem =
            tokio::task::spawn_blocking(move || check_file(&path, size, &lengths, &secret))
                .await
                .unwrap_or_else(|e| Some(format!("verification stopped: {e}")));
        if let Some(p) = problem {
            result.mismatches.push((shown.clone(), p));
        }
        files.push((shown, restored));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let secret = cadang_core::keys::RepoSecret::generate();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello world").unwrap();
        let extents = vec![
            Some((Extent::Chunk(secret.chunk_id(b"hello ")), 6)),
            Some((Extent::Chunk(secret.chunk_id(b"world")), 5)),
        ];
        assert_eq!(check_file(&path, 11, &extents, &secret), None);
        std::fs::write(&path, b"hello World").unwrap();
        let p = check_file(&path, 11, &extents, &secret).unwrap();
        assert!(p.contains("content hash differs"), "{p}");
        std::fs::write(&path, b"hello").unwrap();
        assert!(check_file(&path, 11, &extents, &secret)
            .unwrap()
            .contains("size"));
        std::fs::remove_file(&path).unwrap();
        assert!(check_file(&path, 11, &extents, &secret)
            .unwrap()
            .contains("missing"));
    }
}
