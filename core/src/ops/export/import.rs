//! `verify` (offline, keyless) and `import` of an export directory.
//!
//! Import checks every file against the manifest before writing anything,
//! writes keys, packs and index files, then (for a new target) the config,
//! and the snapshots last, so a target is never left with a snapshot whose
//! data is missing. Files are hashed again as they are copied, so a disk
//! that changes between the check and the copy is caught too.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::{parse_kind, read_manifest, ExportError, ExportResult, Manifest, ManifestFile};
use crate::backend::{Backend, BackendError, FileKind, LocalBackend};
use crate::config::RepoConfig;
use crate::id::Id;
use crate::snapshot::Snapshot;

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub export_id: String,
    pub repo_id: String,
    pub pd: String,
    pub since: Option<String>,
    pub files: usize,
    pub bytes: u64,
    pub snapshots: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    pub export_id: String,
    pub since: Option<String>,
    pub created_repository: bool,
    pub copied: usize,
    pub copied_bytes: u64,
    /// Files the target already had (a repeated or resumed import).
    pub already_present: usize,
    pub snapshots: usize,
}

fn kind_of(f: &ManifestFile) -> FileKind {
    parse_kind(&f.kind).expect("checked by Manifest::parse")
}

fn what(f: &ManifestFile) -> String {
    if f.kind == "config" {
        "config".into()
    } else {
        format!("{}/{}", f.kind, f.name)
    }
}

/// Reads one file of the export and checks it against its manifest entry.
async fn read_checked(disk: &LocalBackend, f: &ManifestFile) -> ExportResult<Vec<u8>> {
    let damaged = |reason: String| ExportError::Damaged {
        file: format!("{}/{}", disk.location(), what(f)),
        reason,
    };
    let data = match disk.read(kind_of(f), &f.name).await {
        Ok(d) => d,
        Err(BackendError::NotFound { .. }) => {
            return Err(damaged("it is missing (the manifest lists it)".into()))
        }
        Err(e) => return Err(e.into()),
    };
    if data.len() as u64 != f.size {
        return Err(damaged(format!(
            "{} bytes instead of {} (truncated or altered)",
            data.len(),
            f.size
        )));
    }
    let hash = Id::of_bytes(&data).to_hex();
    if hash != f.blake3 {
        return Err(damaged("its BLAKE3 does not match the manifest".into()));
    }
    if matches!(f.kind.as_str(), "packs" | "index" | "snapshots") && hash != f.name {
        return Err(damaged("its content does not match its name".into()));
    }
    Ok(data)
}

/// Checks an export offline: every file against the manifest, the config
/// against the repository id, and that every snapshot's packs are in this
/// export or listed as carried by its base exports.
pub async fn verify(dir: &Path) -> ExportResult<(Manifest, VerifyReport)> {
    let m = read_manifest(dir)?;
    let disk = LocalBackend::new(dir.to_path_buf());
    let mut seen = BTreeSet::new();
    let mut packs: HashSet<String> = m
        .base_files
        .iter()
        .filter_map(|b| b.strip_prefix("packs/"))
        .map(str::to_string)
        .collect();
    let mut snapshots = Vec::new();
    let mut bytes = 0;
    let mut has_config = false;
    for f in &m.files {
        if !seen.insert(what(f)) {
            return Err(ExportError::BadManifest {
                path: dir.join(super::MANIFEST).display().to_string(),
                reason: format!("{} is listed twice", what(f)),
            });
        }
        let data = read_checked(&disk, f).await?;
        bytes += f.size;
        match kind_of(f) {
            FileKind::Config => {
                let c = RepoConfig::from_json(&data)?;
                if c.id.to_hex() != m.repo_id {
                    return Err(ExportError::Damaged {
                        file: format!("{}/config", dir.display()),
                        reason: "it belongs to another repository than the manifest says".into(),
                    });
                }
                has_config = true;
            }
            FileKind::Packs => {
                packs.insert(f.name.clone());
            }
            FileKind::Snapshots => snapshots.push(Snapshot::parse(&f.name, &data)?),
            _ => {}
        }
    }
    if !has_config {
        return Err(ExportError::BadManifest {
            path: dir.join(super::MANIFEST).display().to_string(),
            reason: "it lists no config".into(),
        });
    }
    for s in &snapshots {
        if let Some(p) = s
            .payload
            .packs
            .iter()
            .find(|p| !packs.contains(&p.to_hex()))
        {
            return Err(ExportError::BadManifest {
                path: dir.join(super::MANIFEST).display().to_string(),
                reason: format!(
                    "snapshot {} needs pack {p}, which neither this export nor its base exports carry",
                    s.id.short()
                ),
            });
        }
    }
    let report = VerifyReport {
        export_id: m.export_id.clone(),
        repo_id: m.repo_id.clone(),
        pd: m.pd.clone(),
        since: m.since.clone(),
        files: m.files.len(),
        bytes,
        snapshots: snapshots.len(),
    };
    Ok((m, report))
}

/// Packs whose names are missing at `target` among those the export's
/// snapshots need, not counting the export's own packs.
async fn missing_packs(
    target: &dyn Backend,
    m: &Manifest,
    disk: &LocalBackend,
) -> ExportResult<Vec<String>> {
    let mut have: HashSet<String> = target
        .list(FileKind::Packs)
        .await?
        .into_iter()
        .map(|f| f.name)
        .collect();
    have.extend(
        m.files
            .iter()
            .filter(|f| f.kind == "packs")
            .map(|f| f.name.clone()),
    );
    let mut missing = BTreeSet::new();
    for f in m.files.iter().filter(|f| f.kind == "snapshots") {
        let data = read_checked(disk, f).await?;
        for p in Snapshot::parse(&f.name, &data)?.payload.packs {
            if !have.contains(&p.to_hex()) {
                missing.insert(p.to_hex());
            }
        }
    }
    Ok(missing.into_iter().collect())
}

fn base_error(m: &Manifest, missing: &[String]) -> ExportError {
    match &m.since {
        Some(since) => ExportError::MissingBase {
            export: m.export_id.clone(),
            since: since.clone(),
            missing: missing.len(),
            example: format!("packs/{}", missing[0]),
        },
        None => ExportError::BadManifest {
            path: super::MANIFEST.into(),
            reason: format!(
                "a full export whose snapshots need {} pack(s) it does not carry",
                missing.len()
            ),
        },
    }
}

/// Verifies the export in `dir` and loads it into `target`.
pub async fn import(dir: &Path, target: Arc<dyn Backend>) -> ExportResult<ImportReport> {
    let (m, _) = verify(dir).await?;
    let disk = LocalBackend::new(dir.to_path_buf());
    let mut report = ImportReport {
        export_id: m.export_id.clone(),
        since: m.since.clone(),
        ..ImportReport::default()
    };

    // Which repository the target holds, if any.
    let existing = crate::repository::existing_config(&*target).await?;
    match &existing {
        Some(c) if c.id.to_hex() != m.repo_id => {
            return Err(ExportError::WrongRepository {
                export: m.export_id.clone(),
                pd: m.pd.clone(),
                expected: c.id.short(),
                found: m.repo_id.chars().take(16).collect(),
            })
        }
        Some(_) => {}
        None => {
            if let Some(since) = &m.since {
                return Err(ExportError::NoBaseRepository {
                    export: m.export_id.clone(),
                    since: since.clone(),
                });
            }
            match target.create().await {
                Ok(()) | Err(BackendError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            report.created_repository = true;
        }
    }
    // Nothing is written while the base is missing.
    let missing = missing_packs(target.as_ref(), &m, &disk).await?;
    if !missing.is_empty() {
        return Err(base_error(&m, &missing));
    }

    let order = [FileKind::Keys, FileKind::Packs, FileKind::Index];
    for kind in order {
        for f in m.files.iter().filter(|f| kind_of(f) == kind) {
            copy(&disk, target.as_ref(), f, &mut report).await?;
        }
    }
    if existing.is_none() {
        // The config makes the target a repository: only once its data is in.
        if let Some(f) = m.files.iter().find(|f| f.kind == "config") {
            copy(&disk, target.as_ref(), f, &mut report).await?;
        }
    }
    // Last guard before the snapshots become visible.
    let missing = missing_packs(target.as_ref(), &m, &disk).await?;
    if !missing.is_empty() {
        return Err(base_error(&m, &missing));
    }
    for f in m.files.iter().filter(|f| f.kind == "snapshots") {
        copy(&disk, target.as_ref(), f, &mut report).await?;
        report.snapshots += 1;
    }
    Ok(report)
}

async fn copy(
    disk: &LocalBackend,
    target: &dyn Backend,
    f: &ManifestFile,
    report: &mut ImportReport,
) -> ExportResult<()> {
    let kind = kind_of(f);
    if target.stat(kind, &f.name).await?.is_some() {
        report.already_present += 1;
        return Ok(());
    }
    let data = read_checked(disk, f).await?;
    match target.write_new(kind, &f.name, data).await {
        Ok(()) => {
            report.copied += 1;
            report.copied_bytes += f.size;
        }
        Err(BackendError::AlreadyExists { .. }) => report.already_present += 1,
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
