//! `export`: copy a repository (or what is new since an earlier export) to
//! a directory on a mounted disk, keyless, with the manifest written last.

use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{
    export_dir, new_export_id, read_manifest, valid_export_id, ExportError, ExportResult, Manifest,
    ManifestFile, FORMAT, MANIFEST,
};
use crate::backend::{Backend, BackendError, FileKind, LocalBackend};
use crate::error::Error;
use crate::id::Id;
use crate::index::IndexFile;
use crate::repository::Repository;
use crate::snapshot::Snapshot;

pub struct ExportOptions {
    /// The mounted disk (or any directory): the export goes to
    /// `to/cadang-export-<ID>/`.
    pub to: PathBuf,
    /// An earlier export's id (looked up in `to`, then in `state_dir`) or
    /// the path of its manifest file.
    pub since: Option<String>,
    /// Where a copy of every export's manifest is kept (`<ID>.json`), so a
    /// later `--since` works when that export's disk is elsewhere.
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct ExportReport {
    pub export_id: String,
    pub dir: String,
    pub since: Option<String>,
    pub files: usize,
    pub bytes: u64,
    pub packs: usize,
    pub snapshots: usize,
    /// Snapshots (and index files) left for a later export because a pack
    /// they need appeared after the packs were listed (a running backup).
    pub snapshots_deferred: usize,
    pub index_files_deferred: usize,
    /// Where the copy of the manifest was kept, or why it could not be.
    pub state_copy: Option<String>,
    pub state_copy_error: Option<String>,
}

fn io_err(path: &Path, source: std::io::Error) -> ExportError {
    ExportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The manifest of the export named by `since`.
fn find_since(opts: &ExportOptions, since: &str) -> ExportResult<Manifest> {
    let as_path = Path::new(since);
    if as_path.is_file() {
        let data = std::fs::read(as_path).map_err(|e| io_err(as_path, e))?;
        return Manifest::parse(as_path, &data);
    }
    if !valid_export_id(since) {
        return Err(ExportError::UnknownSince {
            since: since.to_string(),
            looked: "(not an export id, and no such file)".into(),
        });
    }
    let on_disk = export_dir(&opts.to, since);
    let mut looked = vec![on_disk.join(MANIFEST).display().to_string()];
    if on_disk.join(MANIFEST).is_file() {
        return read_manifest(&on_disk);
    }
    if let Some(state) = &opts.state_dir {
        let p = state.join(format!("{since}.json"));
        looked.push(p.display().to_string());
        if p.is_file() {
            let data = std::fs::read(&p).map_err(|e| io_err(&p, e))?;
            return Manifest::parse(&p, &data);
        }
    }
    Err(ExportError::UnknownSince {
        since: since.to_string(),
        looked: looked.join(" and "),
    })
}

/// Writes `data` to `path` atomically and durably (temp file, fsync, rename,
/// fsync of the directory).
pub(super) fn write_atomic(path: &Path, data: &[u8]) -> ExportResult<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let tmp = dir.join(format!(
        ".tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

struct Writer<'a> {
    repo: &'a Repository,
    out: LocalBackend,
    files: Vec<ManifestFile>,
    bytes: u64,
}

impl Writer<'_> {
    /// Reads a file from the store (`None` if it vanished: a concurrent
    /// prune), checking hash-named files against their name.
    async fn read(&self, kind: FileKind, name: &str) -> ExportResult<Option<Vec<u8>>> {
        let data = match self.repo.backend().read(kind, name).await {
            Ok(d) => d,
            Err(BackendError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if matches!(
            kind,
            FileKind::Packs | FileKind::Index | FileKind::Snapshots
        ) && Id::of_bytes(&data).to_hex() != name
        {
            return Err(Error::Corrupt(format!(
                "{kind}/{name} in the store does not match its hash; nothing damaged is exported"
            ))
            .into());
        }
        Ok(Some(data))
    }

    async fn put(&mut self, kind: FileKind, name: &str, data: Vec<u8>) -> ExportResult<()> {
        self.files.push(ManifestFile {
            kind: kind.to_string(),
            name: name.to_string(),
            size: data.len() as u64,
            blake3: Id::of_bytes(&data).to_hex(),
        });
        self.bytes += data.len() as u64;
        self.out.write(kind, name, data).await?;
        Ok(())
    }
}

/// Exports the repository; see the module doc and `docs/format.md`.
pub async fn export(repo: &Repository, opts: &ExportOptions) -> ExportResult<ExportReport> {
    let base = base_manifest(repo, opts)?;
    let covered: BTreeSet<String> = base.as_ref().map(Manifest::covered).unwrap_or_default();
    let id = new_export_id(chrono::Utc::now());
    let dir = export_dir(&opts.to, &id);
    let mut w = Writer::open(repo, &opts.to, &dir).await?;
    w.put_config_and_keys().await?;
    let (have, packs) = w.put_packs(&covered).await?;
    let index_files_deferred = w.put_index(&covered, &have).await?;
    let (snapshots, snapshots_deferred) = w.put_snapshots(&covered, &have).await?;
    let manifest = Manifest {
        format: FORMAT.into(),
        version: 1,
        export_id: id.clone(),
        repo_id: repo.config.id.to_hex(),
        pd: repo.config.pd.clone(),
        created: chrono::Local::now().fixed_offset(),
        since: base.as_ref().map(|b| b.export_id.clone()),
        base_files: covered.into_iter().collect(),
        files: w.files,
    };
    // The manifest is written last: an export without one is unfinished.
    let body = serde_json::to_vec_pretty(&manifest).expect("serialisable");
    write_atomic(&dir.join(MANIFEST), &body)?;
    let (state_copy, state_copy_error) = keep_state_copy(opts, &id, &body);
    Ok(ExportReport {
        export_id: id,
        dir: dir.display().to_string(),
        since: manifest.since,
        files: manifest.files.len(),
        bytes: w.bytes,
        packs,
        snapshots,
        snapshots_deferred,
        index_files_deferred,
        state_copy,
        state_copy_error,
    })
}

/// The earlier export this one continues (`--since`), refused when it
/// belongs to another repository.
fn base_manifest(repo: &Repository, opts: &ExportOptions) -> ExportResult<Option<Manifest>> {
    let Some(s) = &opts.since else {
        return Ok(None);
    };
    let m = find_since(opts, s)?;
    if m.repo_id != repo.config.id.to_hex() {
        return Err(ExportError::SinceOfOtherRepository {
            export: m.export_id,
            expected: repo.config.id.short(),
            found: m.repo_id,
        });
    }
    Ok(Some(m))
}

/// Keeps a copy of the manifest in the state directory, so a later
/// `since` works when this export's disk is elsewhere. A failure is
/// reported, not fatal: the export itself is complete.
fn keep_state_copy(
    opts: &ExportOptions,
    id: &str,
    body: &[u8],
) -> (Option<String>, Option<String>) {
    let Some(state) = &opts.state_dir else {
        return (None, None);
    };
    let p = state.join(format!("{id}.json"));
    match write_atomic(&p, body) {
        Ok(()) => (Some(p.display().to_string()), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

/// Whether `kind/name` is not already in the earlier exports.
fn is_new(covered: &BTreeSet<String>, kind: FileKind, name: &str) -> bool {
    !covered.contains(&format!("{kind}/{name}"))
}

/// The stages of one export, in the order that keeps it consistent: packs,
/// then the index files and snapshots whose packs are all here or in an
/// earlier export.
impl<'a> Writer<'a> {
    async fn open(repo: &'a Repository, to: &Path, dir: &Path) -> ExportResult<Writer<'a>> {
        if !to.is_dir() {
            return Err(io_err(
                to,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the directory does not exist (is the disk mounted?)",
                ),
            ));
        }
        let out = LocalBackend::new(dir.to_path_buf());
        out.create().await?;
        Ok(Writer {
            repo,
            out,
            files: Vec::new(),
            bytes: 0,
        })
    }

    /// Config and keys are small: every export carries them, so any export
    /// tells which repository it belongs to.
    async fn put_config_and_keys(&mut self) -> ExportResult<()> {
        if let Some(data) = self.read(FileKind::Config, "config").await? {
            self.put(FileKind::Config, "config", data).await?;
        }
        for f in self.repo.backend().list(FileKind::Keys).await? {
            if let Some(data) = self.read(FileKind::Keys, &f.name).await? {
                self.put(FileKind::Keys, &f.name, data).await?;
            }
        }
        Ok(())
    }

    /// Copies the new packs; returns the packs this export chain holds and
    /// how many were copied now.
    async fn put_packs(
        &mut self,
        covered: &BTreeSet<String>,
    ) -> ExportResult<(HashSet<Id>, usize)> {
        let mut have: HashSet<Id> = covered
            .iter()
            .filter_map(|c| c.strip_prefix("packs/"))
            .filter_map(|n| n.parse().ok())
            .collect();
        let mut packs = 0;
        for f in self.repo.backend().list(FileKind::Packs).await? {
            let Ok(pid) = f.name.parse::<Id>() else {
                continue;
            };
            if !is_new(covered, FileKind::Packs, &f.name) {
                continue;
            }
            if let Some(data) = self.read(FileKind::Packs, &f.name).await? {
                self.put(FileKind::Packs, &f.name, data).await?;
                have.insert(pid);
                packs += 1;
            }
        }
        Ok((have, packs))
    }

    /// Copies the new index files whose packs are all held; returns how
    /// many were left for a later export.
    async fn put_index(
        &mut self,
        covered: &BTreeSet<String>,
        have: &HashSet<Id>,
    ) -> ExportResult<usize> {
        let mut deferred = 0;
        for f in self.repo.backend().list(FileKind::Index).await? {
            if !is_new(covered, FileKind::Index, &f.name) {
                continue;
            }
            let Some(data) = self.read(FileKind::Index, &f.name).await? else {
                continue;
            };
            let idx = IndexFile::parse(&f.name, &data)?;
            if idx.packs.iter().all(|p| have.contains(&p.id)) {
                self.put(FileKind::Index, &f.name, data).await?;
            } else {
                deferred += 1;
            }
        }
        Ok(deferred)
    }

    /// Copies the new snapshots whose packs are all held; returns how many
    /// were copied and how many left for a later export.
    async fn put_snapshots(
        &mut self,
        covered: &BTreeSet<String>,
        have: &HashSet<Id>,
    ) -> ExportResult<(usize, usize)> {
        let (mut snapshots, mut deferred) = (0, 0);
        for f in self.repo.backend().list(FileKind::Snapshots).await? {
            if !is_new(covered, FileKind::Snapshots, &f.name) {
                continue;
            }
            let Some(data) = self.read(FileKind::Snapshots, &f.name).await? else {
                continue;
            };
            let snap = Snapshot::parse(&f.name, &data)?;
            if snap.payload.packs.iter().all(|p| have.contains(p)) {
                self.put(FileKind::Snapshots, &f.name, data).await?;
                snapshots += 1;
            } else {
                deferred += 1;
            }
        }
        Ok((snapshots, deferred))
    }
}
