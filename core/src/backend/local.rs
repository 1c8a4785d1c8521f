//! A repository in a local directory (or a mounted disk).
//!
//! Writes go to a hidden temporary file in the destination folder, are
//! fsynced, renamed into place and the folder is fsynced, so a crash leaves
//! either the old state or the complete new file, never a torn one. Hidden
//! files are never listed, so leftovers of a killed writer are invisible.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::layout::{listed_name, relative_key};
use super::{Backend, BackendError, BackendResult, FileInfo, FileKind};

#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: PathBuf) -> LocalBackend {
        LocalBackend { root }
    }

    /// The file's path: the layout's key under the root (`/` is the
    /// separator here too).
    fn path(&self, kind: FileKind, name: &str) -> BackendResult<PathBuf> {
        Ok(self.root.join(relative_key(kind, name)?))
    }

    fn what(kind: FileKind, name: &str) -> String {
        super::layout::what(kind, name)
    }

    fn require_root(&self) -> BackendResult<()> {
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(BackendError::Unavailable {
                location: self.location(),
                reason: "it is not a directory".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BackendError::Unavailable {
                location: self.location(),
                reason: "the directory does not exist".into(),
            }),
            Err(e) => Err(BackendError::Unavailable {
                location: self.location(),
                reason: e.to_string(),
            }),
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> BackendResult<T> + Send + 'static,
) -> BackendResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(BackendError::Io {
            op: "run",
            what: "a blocking store task".into(),
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn temp_name() -> String {
    let mut b = [0u8; 8];
    crate::random::fill_random(&mut b);
    format!(".tmp-{}", hex::encode(b))
}

/// Writes `data` to a synced temporary file beside `dest` and returns its path.
fn write_temp(dest: &Path, data: &[u8]) -> std::io::Result<PathBuf> {
    let dir = dest.parent().expect("store paths have a parent");
    if !dir.exists() {
        fs::create_dir_all(dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
    }
    let tmp = dir.join(temp_name());
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

fn not_found_or(kind: FileKind, name: &str, op: &'static str, e: std::io::Error) -> BackendError {
    if e.kind() == std::io::ErrorKind::NotFound {
        BackendError::NotFound {
            kind,
            name: name.to_string(),
        }
    } else {
        BackendError::from_io(op, LocalBackend::what(kind, name), e)
    }
}

/// Adds the files of `dir` whose path below the kind's folder (`prefix`
/// then the file name) the layout would write; one level of subfolders is
/// walked for packs' shards. What the layout never writes (temporary
/// files, a pack outside its shard) is not listed.
fn list_dir(
    kind: FileKind,
    dir: &Path,
    prefix: &str,
    out: &mut Vec<FileInfo>,
) -> std::io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let ft = entry.file_type()?;
        if ft.is_dir() && prefix.is_empty() && kind == FileKind::Packs {
            list_dir(kind, &entry.path(), &format!("{name}/"), out)?;
        } else if ft.is_file() {
            let rest = format!("{prefix}{name}");
            if let Some(listed) = listed_name(kind, &rest) {
                // A file removed between readdir and stat (a concurrent
                // prune replacing an index file) is simply not listed, as
                // if the listing had come a moment later.
                let size = match entry.metadata() {
                    Ok(m) => m.len(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                out.push(FileInfo {
                    name: listed.to_string(),
                    size,
                });
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn create(&self) -> BackendResult<()> {
        let root = self.root.clone();
        let location = self.location();
        blocking(move || {
            if root.join("config").exists() {
                return Err(BackendError::AlreadyExists {
                    kind: FileKind::Config,
                    name: "config".into(),
                });
            }
            fs::create_dir_all(&root)
                .map_err(|e| BackendError::from_io("create", location.clone(), e))?;
            for kind in FileKind::ALL_DIRS {
                fs::create_dir_all(root.join(kind.dir()))
                    .map_err(|e| BackendError::from_io("create", kind.dir().to_string(), e))?;
            }
            sync_dir(&root).map_err(|e| BackendError::from_io("sync", location, e))
        })
        .await
    }

    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        self.require_root()?;
        let dir = self.root.join(kind.dir());
        blocking(move || {
            let mut out = Vec::new();
            if kind == FileKind::Config {
                if let Ok(m) = fs::metadata(dir.join("config")) {
                    out.push(FileInfo {
                        name: "config".into(),
                        size: m.len(),
                    });
                }
                return Ok(out);
            }
            list_dir(kind, &dir, "", &mut out)
                .map_err(|e| BackendError::from_io("list", kind.to_string(), e))?;
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Vec<u8>> {
        if kind == FileKind::Config {
            // Tells "no such store" apart from "not a repository".
            self.require_root()?;
        }
        let path = self.path(kind, name)?;
        let name = name.to_string();
        blocking(move || fs::read(&path).map_err(|e| not_found_or(kind, &name, "read", e))).await
    }

    async fn read_into(
        &self,
        kind: FileKind,
        name: &str,
        mut buf: Vec<u8>,
    ) -> BackendResult<Vec<u8>> {
        if kind == FileKind::Config {
            return self.read(kind, name).await;
        }
        let path = self.path(kind, name)?;
        let name = name.to_string();
        blocking(move || {
            let err = |e| not_found_or(kind, &name, "read", e);
            let mut f = File::open(&path).map_err(err)?;
            let size = f.metadata().map_err(err)?.len();
            buf.clear();
            // Sized by the file itself, not by anything read from it.
            buf.try_reserve_exact(usize::try_from(size).unwrap_or(usize::MAX))
                .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::OutOfMemory, e)))?;
            f.read_to_end(&mut buf).map_err(err)?;
            Ok(buf)
        })
        .await
    }

    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Vec<u8>> {
        let path = self.path(kind, name)?;
        let name = name.to_string();
        blocking(move || {
            let err = |e| not_found_or(kind, &name, "read", e);
            let mut f = File::open(&path).map_err(err)?;
            f.seek(SeekFrom::Start(offset)).map_err(err)?;
            let mut buf = vec![0u8; length as usize];
            f.read_exact(&mut buf).map_err(err)?;
            Ok(buf)
        })
        .await
    }

    async fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        let path = self.path(kind, name)?;
        let what = Self::what(kind, name);
        blocking(move || {
            let tmp = write_temp(&path, &data)
                .map_err(|e| BackendError::from_io("write", what.clone(), e))?;
            if let Err(e) = fs::rename(&tmp, &path) {
                let _ = fs::remove_file(&tmp);
                return Err(BackendError::from_io("write", what, e));
            }
            sync_dir(path.parent().expect("has parent"))
                .map_err(|e| BackendError::from_io("sync", what, e))
        })
        .await
    }

    async fn write_new(&self, kind: FileKind, name: &str, data: Vec<u8>) -> BackendResult<()> {
        let path = self.path(kind, name)?;
        let what = Self::what(kind, name);
        let name = name.to_string();
        blocking(move || {
            let tmp = write_temp(&path, &data)
                .map_err(|e| BackendError::from_io("write", what.clone(), e))?;
            // link(2) fails if the destination exists, which gives create-only
            // semantics without ever exposing a partial file.
            let linked = fs::hard_link(&tmp, &path);
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => sync_dir(path.parent().expect("has parent"))
                    .map_err(|e| BackendError::from_io("sync", what, e)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(BackendError::AlreadyExists { kind, name })
                }
                Err(e) => Err(BackendError::from_io("write", what, e)),
            }
        })
        .await
    }

    async fn delete(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        let path = self.path(kind, name)?;
        let name = name.to_string();
        blocking(move || {
            fs::remove_file(&path).map_err(|e| not_found_or(kind, &name, "delete", e))?;
            sync_dir(path.parent().expect("has parent"))
                .map_err(|e| BackendError::from_io("sync", name, e))
        })
        .await
    }

    async fn stat(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        let path = self.path(kind, name)?;
        let name = name.to_string();
        blocking(move || match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BackendError::from_io("stat", name, e)),
        })
        .await
    }
}
