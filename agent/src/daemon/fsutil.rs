//! Files the agent must not lose or half-write: written to a temporary file,
//! fsynced, renamed over the old one and the directory fsynced, so a crash
//! leaves either the old or the new content. Mode 0600: they hold keys.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::DaemonError;

pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), DaemonError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(DaemonError::io("create", &tmp))?;
    f.write_all(data).map_err(DaemonError::io("write", &tmp))?;
    f.sync_all().map_err(DaemonError::io("fsync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(DaemonError::io("rename into place", path))?;
    sync_dir(path)
}

/// Makes a rename or a new file in `path`'s directory durable.
pub(crate) fn sync_dir(path: &Path) -> Result<(), DaemonError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let d = std::fs::File::open(dir).map_err(DaemonError::io("open", dir))?;
    d.sync_all().map_err(DaemonError::io("fsync", dir))
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), DaemonError> {
    let data = serde_json::to_vec_pretty(value).map_err(|e| DaemonError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot encode: {e}"),
    })?;
    write_atomic(path, &data)
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, DaemonError> {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| DaemonError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DaemonError::io("read", path)(e)),
    }
}

pub(crate) fn read_text(path: &Path) -> Result<String, DaemonError> {
    std::fs::read_to_string(path).map_err(DaemonError::io("read", path))
}
