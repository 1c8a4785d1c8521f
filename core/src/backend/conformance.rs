//! One conformance suite that every backend must pass. Backends call
//! `run(&backend)` from their tests against a fresh, empty store, so local
//! directories and object stores are held to the same contract.

use super::{Backend, BackendError, FileKind};

fn fail(what: &str) -> String {
    format!("backend conformance: {what}")
}

/// Runs every check; returns the first violated expectation.
pub async fn run(b: &dyn Backend) -> Result<(), String> {
    new_store_is_empty(b).await?;
    missing_files_are_not_found(b).await?;
    let name = "ab".repeat(32);
    write_and_read_back(b, &name).await?;
    write_replaces(b, &name).await?;
    write_new_never_replaces(b).await?;
    config_round_trips(b).await?;
    delete_removes(b, &name).await?;
    bad_names_are_refused(b).await
}

/// `create` makes an empty store: every directory lists nothing.
async fn new_store_is_empty(b: &dyn Backend) -> Result<(), String> {
    b.create()
        .await
        .map_err(|e| fail(&format!("create: {e}")))?;
    for kind in FileKind::ALL_DIRS {
        let l = b
            .list(kind)
            .await
            .map_err(|e| fail(&format!("list {kind}: {e}")))?;
        if !l.is_empty() {
            return Err(fail(&format!("{kind} is not empty in a new store")));
        }
    }
    Ok(())
}

/// A missing file reads as `NotFound` and stats as `None`.
async fn missing_files_are_not_found(b: &dyn Backend) -> Result<(), String> {
    match b.read(FileKind::Index, "00ff").await {
        Err(BackendError::NotFound { .. }) => {}
        other => return Err(fail(&format!("reading a missing file gave {other:?}"))),
    }
    match b.read_into(FileKind::Index, "00ff", vec![1, 2, 3]).await {
        Err(BackendError::NotFound { .. }) => {}
        other => return Err(fail(&format!("read_into of a missing file gave {other:?}"))),
    }
    if b.stat(FileKind::Index, "00ff")
        .await
        .map_err(|e| fail(&e.to_string()))?
        .is_some()
    {
        return Err(fail("stat of a missing file is not None"));
    }
    Ok(())
}

/// Bytes written read back whole, by range, by stat and in the list; a
/// range past the end fails rather than reading short.
async fn write_and_read_back(b: &dyn Backend, name: &str) -> Result<(), String> {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    b.write(FileKind::Packs, name, data.clone())
        .await
        .map_err(|e| fail(&format!("write: {e}")))?;
    if b.read(FileKind::Packs, name)
        .await
        .map_err(|e| fail(&e.to_string()))?
        != data
    {
        return Err(fail("read returned other bytes than written"));
    }
    // Into a used buffer, longer and shorter than the file: only the
    // file's bytes come back, whatever the buffer held.
    for old in [vec![0xEEu8; 150_000], vec![0xEEu8; 10]] {
        let got = b
            .read_into(FileKind::Packs, name, old)
            .await
            .map_err(|e| fail(&format!("read_into: {e}")))?;
        if got != data {
            return Err(fail("read_into returned other bytes than written"));
        }
    }
    let part = b
        .read_range(FileKind::Packs, name, 1000, 500)
        .await
        .map_err(|e| fail(&format!("read_range: {e}")))?;
    if part != data[1000..1500] {
        return Err(fail("read_range returned the wrong bytes"));
    }
    if b.read_range(FileKind::Packs, name, 99_990, 100)
        .await
        .is_ok()
    {
        return Err(fail(
            "read_range past the end must fail, not return a short read",
        ));
    }
    if b.stat(FileKind::Packs, name)
        .await
        .map_err(|e| fail(&e.to_string()))?
        != Some(100_000)
    {
        return Err(fail("stat size differs from what was written"));
    }
    let listed = b
        .list(FileKind::Packs)
        .await
        .map_err(|e| fail(&e.to_string()))?;
    if listed.len() != 1 || listed[0].name != name || listed[0].size != 100_000 {
        return Err(fail(&format!("list gave {listed:?}")));
    }
    Ok(())
}

/// `write` over an existing file replaces it.
async fn write_replaces(b: &dyn Backend, name: &str) -> Result<(), String> {
    b.write(FileKind::Packs, name, b"replaced".to_vec())
        .await
        .map_err(|e| fail(&e.to_string()))?;
    if b.read(FileKind::Packs, name)
        .await
        .map_err(|e| fail(&e.to_string()))?
        != b"replaced"
    {
        return Err(fail("write did not replace the file"));
    }
    Ok(())
}

/// `write_new` refuses an existing file and leaves it unchanged (locks
/// depend on it).
async fn write_new_never_replaces(b: &dyn Backend) -> Result<(), String> {
    b.write_new(FileKind::Locks, "l1", b"one".to_vec())
        .await
        .map_err(|e| fail(&e.to_string()))?;
    match b.write_new(FileKind::Locks, "l1", b"two".to_vec()).await {
        Err(BackendError::AlreadyExists { .. }) => {}
        other => {
            return Err(fail(&format!(
                "write_new over an existing file gave {other:?}"
            )))
        }
    }
    if b.read(FileKind::Locks, "l1")
        .await
        .map_err(|e| fail(&e.to_string()))?
        != b"one"
    {
        return Err(fail("a refused write_new changed the file"));
    }
    Ok(())
}

/// The config file round-trips.
async fn config_round_trips(b: &dyn Backend) -> Result<(), String> {
    b.write(FileKind::Config, "config", b"{}".to_vec())
        .await
        .map_err(|e| fail(&e.to_string()))?;
    if b.read(FileKind::Config, "config")
        .await
        .map_err(|e| fail(&e.to_string()))?
        != b"{}"
    {
        return Err(fail("config did not round-trip"));
    }
    Ok(())
}

/// A deleted file is gone: deleting it again is `NotFound`, the list is empty.
async fn delete_removes(b: &dyn Backend, name: &str) -> Result<(), String> {
    b.delete(FileKind::Packs, name)
        .await
        .map_err(|e| fail(&format!("delete: {e}")))?;
    match b.delete(FileKind::Packs, name).await {
        Err(BackendError::NotFound { .. }) => {}
        other => return Err(fail(&format!("deleting a missing file gave {other:?}"))),
    }
    if !b
        .list(FileKind::Packs)
        .await
        .map_err(|e| fail(&e.to_string()))?
        .is_empty()
    {
        return Err(fail("a deleted file is still listed"));
    }
    Ok(())
}

/// Names that could escape the directory or hide a file are refused.
async fn bad_names_are_refused(b: &dyn Backend) -> Result<(), String> {
    for bad in ["../escape", "a/b", "", ".hidden"] {
        if b.write(FileKind::Index, bad, vec![1]).await.is_ok() {
            return Err(fail(&format!("accepted the file name {bad:?}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::LocalBackend;

    #[tokio::test]
    async fn local_directory_passes() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("store"));
        super::run(&b).await.unwrap();
    }

    #[tokio::test]
    async fn local_leftover_temp_files_are_invisible() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("store"));
        use super::super::{Backend, FileKind};
        b.create().await.unwrap();
        std::fs::write(dir.path().join("store/index/.tmp-deadbeef"), b"half").unwrap();
        assert!(b.list(FileKind::Index).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn missing_store_is_unavailable_not_empty() {
        let b = LocalBackend::new("/nonexistent/cadang/store".into());
        use super::super::{Backend, BackendError, FileKind};
        assert!(matches!(
            b.list(FileKind::Snapshots).await,
            Err(BackendError::Unavailable { .. })
        ));
    }
}
