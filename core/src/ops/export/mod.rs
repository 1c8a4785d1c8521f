//! Portable media: a self-describing, keyless copy of a repository on a
//! mounted disk, written incrementally and verifiable offline.
//!
//! ```text
//! DIR/cadang-export-<ID>/config, keys/, packs/<hh>/, index/, snapshots/   (the store layout)
//! DIR/cadang-export-<ID>/manifest.json                                   (written last)
//! ```
//!
//! The manifest lists every file with its size and BLAKE3, so an export can
//! be checked without the store or any key. An export made `since` an
//! earlier one leaves out what that export (and the ones it was based on)
//! already carried; `docs/format.md` ("Export media") is the specification.

mod import;
mod write;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::{check_name, BackendError, FileKind};
use crate::id::Id;

pub use import::{import, verify, ImportReport, VerifyReport};
pub use write::{export, ExportOptions, ExportReport};

pub const MANIFEST: &str = "manifest.json";
pub const DIR_PREFIX: &str = "cadang-export-";
pub const FORMAT: &str = "cadang-export";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Repository(#[from] crate::Error),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir} has no {MANIFEST}: {hint}")]
    MissingManifest { dir: String, hint: String },
    #[error("{path} is not a valid export manifest: {reason}")]
    BadManifest { path: String, reason: String },
    #[error("the manifest of export {export} lists a file with an unsafe name ({what}); refusing this export (it was not written by cadang or was tampered with)")]
    HostileName { export: String, what: String },
    #[error("{file} on the export disk is damaged: {reason}; nothing was imported. Make a new export from the store, or use another copy of this one")]
    Damaged { file: String, reason: String },
    #[error("export {export} is of repository {found} (PD {pd}), but the target holds repository {expected}; refusing to mix repositories")]
    WrongRepository {
        export: String,
        pd: String,
        expected: String,
        found: String,
    },
    #[error("export {export} is incremental (since export {since}), and the target lacks {missing} pack(s) its snapshots need (e.g. {example}): import export {since} (and the exports it is based on) first")]
    MissingBase {
        export: String,
        since: String,
        missing: usize,
        example: String,
    },
    #[error("export {export} is incremental (since export {since}) and the target holds no repository yet: import export {since} (and the exports it is based on) first")]
    NoBaseRepository { export: String, since: String },
    #[error("the earlier export {since} was not found: looked for {looked}. Name the earlier export's manifest file itself (a copy is kept in the state directory of the machine that made it), or make a full export instead")]
    UnknownSince { since: String, looked: String },
    #[error("export {export} does not belong to repository {expected} of this store (it is of {found}); an incremental export must start from an export of the same repository")]
    SinceOfOtherRepository {
        export: String,
        expected: String,
        found: String,
    },
}

pub type ExportResult<T> = std::result::Result<T, ExportError>;

/// One file of an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// `config`, `keys`, `packs`, `index` or `snapshots`.
    pub kind: String,
    pub name: String,
    pub size: u64,
    pub blake3: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub export_id: String,
    pub repo_id: String,
    pub pd: String,
    pub created: chrono::DateTime<chrono::FixedOffset>,
    /// The export this one is relative to.
    pub since: Option<String>,
    /// Files carried by `since` and the exports before it (`kind/name`, packs,
    /// index and snapshots only): an export needs them at the target.
    #[serde(default)]
    pub base_files: Vec<String>,
    pub files: Vec<ManifestFile>,
}

impl Manifest {
    /// Every `kind/name` that this export and its bases carry.
    pub fn covered(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.base_files.iter().cloned().collect();
        for f in &self.files {
            if f.kind != "config" && f.kind != "keys" {
                out.insert(format!("{}/{}", f.kind, f.name));
            }
        }
        out
    }

    /// Parses and checks a manifest: format, version, and that every file
    /// name is one the store layout can hold (no `..`, no `/`, no absolute
    /// paths), so nothing outside the export directory is ever opened.
    pub fn parse(path: &Path, data: &[u8]) -> ExportResult<Manifest> {
        let bad = |reason: String| ExportError::BadManifest {
            path: path.display().to_string(),
            reason,
        };
        let m: Manifest = serde_json::from_slice(data).map_err(|e| bad(e.to_string()))?;
        if m.format != FORMAT {
            return Err(bad(format!("format is {:?}, not {FORMAT:?}", m.format)));
        }
        if m.version != 1 {
            return Err(bad(format!(
                "version {} is not known to this cadang (it reads version 1)",
                m.version
            )));
        }
        let hostile = |what: String| ExportError::HostileName {
            export: m.export_id.clone(),
            what,
        };
        if !valid_export_id(&m.export_id) {
            return Err(bad(format!("export id {:?} is not valid", m.export_id)));
        }
        if m.since.as_deref().is_some_and(|s| !valid_export_id(s)) {
            return Err(hostile(format!("since = {:?}", m.since)));
        }
        for f in &m.files {
            let kind = parse_kind(&f.kind).ok_or_else(|| hostile(format!("kind {:?}", f.kind)))?;
            if kind == FileKind::Config {
                if f.name != "config" {
                    return Err(hostile(format!("config/{:?}", f.name)));
                }
            } else if check_name(&f.name).is_err() {
                return Err(hostile(format!("{}/{:?}", f.kind, f.name)));
            }
            if f.blake3.parse::<Id>().is_err() {
                return Err(bad(format!("{}/{} has no valid BLAKE3", f.kind, f.name)));
            }
        }
        for b in &m.base_files {
            let ok = b.split_once('/').is_some_and(|(k, n)| {
                matches!(k, "packs" | "index" | "snapshots") && check_name(n).is_ok()
            });
            if !ok {
                return Err(hostile(format!("base file {b:?}")));
            }
        }
        Ok(m)
    }
}

/// The kinds an export carries (never locks or prune marks).
pub fn parse_kind(s: &str) -> Option<FileKind> {
    Some(match s {
        "config" => FileKind::Config,
        "keys" => FileKind::Keys,
        "packs" => FileKind::Packs,
        "index" => FileKind::Index,
        "snapshots" => FileKind::Snapshots,
        _ => return None,
    })
}

/// `YYYYMMDDTHHMMSSZ-<8 hex>`: sorts by time, safe as a directory name.
pub fn valid_export_id(id: &str) -> bool {
    id.len() <= 64
        && !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn new_export_id(now: chrono::DateTime<chrono::Utc>) -> String {
    let mut r = [0u8; 4];
    crate::random::fill_random(&mut r);
    format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), hex::encode(r))
}

/// `DIR/cadang-export-<ID>`.
pub fn export_dir(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{DIR_PREFIX}{id}"))
}

/// Export directories directly under `dir` (names only, sorted).
pub fn list_exports(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(DIR_PREFIX))
        .collect();
    out.sort();
    out
}

/// Reads `dir/manifest.json`; when it is missing, says why and what to do.
pub fn read_manifest(dir: &Path) -> ExportResult<Manifest> {
    let path = dir.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(data) => Manifest::parse(&path, &data),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let inner = list_exports(dir);
            let hint = if !inner.is_empty() {
                format!(
                    "it holds the export(s) {}; give one of them (the cadang-export-<ID> directory)",
                    inner.join(", ")
                )
            } else if dir.is_dir() {
                "this is not a complete export: the manifest is written last, so the export was interrupted or the directory was not written by a cadang export. Make the export again".into()
            } else {
                "the directory does not exist (is the disk mounted?)".into()
            };
            Err(ExportError::MissingManifest {
                dir: dir.display().to_string(),
                hint,
            })
        }
        Err(e) => Err(ExportError::Io {
            path: path.display().to_string(),
            source: e,
        }),
    }
}
