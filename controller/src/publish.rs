//! Signed documents in the stores: drill reports, compliance summaries and
//! audit segments are written to **both** sites' stores, so they survive
//! the loss of the data center (`docs/format.md` §11 and §12).
//!
//! Core's replication copies only the repository format's own folders
//! (keys, config, snapshots, index, packs), never these: writing to both
//! sites directly *is* their replication.
//!
//! Write-once: a document is created, never replaced. The same bytes again
//! are fine (a retried publish whose first answer was lost); different
//! bytes under a name that exists are refused — a signed document never
//! changes after it was published. On a DR store with Object Lock
//! (`object_lock_days` in the PD's policy) the object is also locked.
//!
//! The places:
//! - a PD's repository: `<store>/<PD>/reports/drill-report/<id>.json|.pdf`,
//!   `<store>/<PD>/reports/compliance-summary/<id>.json|.pdf`;
//! - the regency (not one PD's): `<store>/_regency/reports/compliance-summary/<id>.json|.pdf`;
//! - the audit log: `<store>/cadang-audit/<first-seq>-<last-seq>.json` in every configured store.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cadang_core::backend::{Backend, BackendError, FileKind};

use crate::api::App;
use crate::engine::StoreTarget;
use crate::report::SignedDocument;

/// Folders inside a PD's repository.
pub const DRILL_REPORTS: &str = "reports/drill-report";
pub const PD_SUMMARIES: &str = "reports/compliance-summary";
/// The regency's own folder at the top of a store (beside the PDs').
pub const REGENCY_DIR: &str = "_regency";
pub const REGENCY_SUMMARIES: &str = "_regency/reports/compliance-summary";
/// The audit segments' folder at the top of every store.
pub const AUDIT_DIR: &str = "cadang-audit";

/// Every folder a document may go to: names come from code, never from a
/// request, so nothing can be written elsewhere in a store.
const PLACES: &[&str] = &[DRILL_REPORTS, PD_SUMMARIES, REGENCY_SUMMARIES, AUDIT_DIR];

/// Why a document could not be published at all (per-store failures are
/// in [`Placed::outcome`] instead).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0:?} is not a place documents are published to (one of: reports/drill-report/<id>, reports/compliance-summary/<id>, _regency/reports/compliance-summary/<id>, cadang-audit/<first>-<last>.json)")]
    Place(String),
    #[error("the controller has no valid policy set loaded, so the stores of PD {0} are unknown; fix the policies and reload")]
    NoPolicies(String),
    #[error("PD {0} has no policy naming its stores; add its policy file and reload")]
    UnknownPd(String),
    #[error("the document cannot be stored: {0}")]
    Document(String),
}

/// What happened at one store.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub store: String,
    /// `Ok` when the file is there with these bytes (written now, or already).
    pub outcome: Result<(), String>,
}

impl Placed {
    /// Whether every store has it.
    pub fn all_ok(placed: &[Placed]) -> bool {
        !placed.is_empty() && placed.iter().all(|p| p.outcome.is_ok())
    }
}

/// Whether a target can be written, or why not.
type Usable = Result<(), String>;
/// Each store with whether it can be used.
type Targets = Vec<(Target, Usable)>;

/// One store and where inside it (the PD's repository, or the top).
struct Target {
    store: StoreTarget,
    root_url: String,
    lock_days: u32,
}

/// Writes `bytes` as `name` (e.g. `reports/drill-report/R-17.json`, as
/// [`crate::report::store_files`] names it) into PD `pd`'s repository at
/// both its stores, on-site and DR.
pub async fn put(
    app: &App,
    pd: &str,
    name: &str,
    bytes: Vec<u8>,
) -> Result<Vec<Placed>, PublishError> {
    let (dir, file) = split_place(name, &[DRILL_REPORTS, PD_SUMMARIES])?;
    let targets = pd_targets(app, pd)?;
    Ok(put_all(&targets, dir, file, bytes).await)
}

/// Writes `bytes` as `name` (`_regency/reports/compliance-summary/<id>.json`
/// or `cadang-audit/<first>-<last>.json`) at the top of every configured store.
pub async fn put_regency(
    app: &App,
    name: &str,
    bytes: Vec<u8>,
) -> Result<Vec<Placed>, PublishError> {
    let (dir, file) = split_place(name, &[REGENCY_SUMMARIES, AUDIT_DIR])?;
    let targets = all_targets(app);
    Ok(put_all(&targets, dir, file, bytes).await)
}

/// A signed report's JSON and PDF ([`crate::report::store_files`]): into
/// the PD's repository, or, for the regency (`pd` = `None`), under
/// `_regency/` in every store.
pub async fn put_report(
    app: &App,
    pd: Option<&str>,
    doc: &SignedDocument,
) -> Result<Vec<Placed>, PublishError> {
    let files =
        crate::report::store_files(doc).map_err(|e| PublishError::Document(e.to_string()))?;
    let mut placed = Vec::new();
    for (name, bytes) in files {
        let mut here = match pd {
            Some(pd) => put(app, pd, &name, bytes).await?,
            None => put_regency(app, &format!("{REGENCY_DIR}/{name}"), bytes).await?,
        };
        for p in &mut here {
            if let Err(e) = &mut p.outcome {
                *e = format!("{name}: {e}");
            }
        }
        placed.extend(here);
    }
    Ok(placed)
}

/// `dir/file` with `dir` one of `allowed` and `file` a plain name.
fn split_place<'a>(
    name: &'a str,
    allowed: &[&'static str],
) -> Result<(&'static str, &'a str), PublishError> {
    let bad = || PublishError::Place(name.to_string());
    let (dir, file) = name.rsplit_once('/').ok_or_else(bad)?;
    let dir = PLACES
        .iter()
        .copied()
        .filter(|p| allowed.contains(p))
        .find(|p| *p == dir)
        .ok_or_else(bad)?;
    Ok((dir, file))
}

/// The PD's on-site and DR stores, its repository inside each.
fn pd_targets(app: &App, pd: &str) -> Result<Targets, PublishError> {
    let set = app
        .policies()
        .ok_or_else(|| PublishError::NoPolicies(pd.to_string()))?;
    let policy = set
        .pds
        .get(pd)
        .ok_or_else(|| PublishError::UnknownPd(pd.to_string()))?;
    let (onsite, dr) = set
        .stores_of(pd)
        .ok_or_else(|| PublishError::UnknownPd(pd.to_string()))?;
    Ok([(&onsite.name, 0), (&dr.name, policy.object_lock_days)]
        .into_iter()
        .map(|(name, lock_days)| configured(app, name, lock_days, Some(pd)))
        .collect())
}

/// Every store in `controller.toml`, at its top.
fn all_targets(app: &App) -> Targets {
    app.config
        .stores
        .keys()
        .map(|name| configured(app, name, top_lock_days(app, name), None))
        .collect()
}

/// A DR store locks what goes to its top for the longest
/// `object_lock_days` of the PDs that use it as their DR store.
fn top_lock_days(app: &App, store: &str) -> u32 {
    app.policies()
        .and_then(|s| {
            s.pds
                .values()
                .filter(|p| p.dr_store == store)
                .map(|p| p.object_lock_days)
                .max()
        })
        .unwrap_or(0)
}

/// Writes `bytes` as `name` (`cadang-audit/...` or `_regency/...`) at the
/// top of one configured store: the audit shipper's per-store write.
pub async fn put_top(app: &App, store: &str, name: &str, bytes: Vec<u8>) -> Result<(), String> {
    let (dir, file) =
        split_place(name, &[REGENCY_SUMMARIES, AUDIT_DIR]).map_err(|e| e.to_string())?;
    let (target, usable) = configured(app, store, top_lock_days(app, store), None);
    usable?;
    put_one(&target, dir, file, bytes).await
}

/// The target of store `name`, or why it cannot be used (carried to the
/// result of that store, so the other site is still written).
fn configured(app: &App, name: &str, lock_days: u32, pd: Option<&str>) -> (Target, Usable) {
    match app.config.store_target(name) {
        Some(store) => {
            let root_url = match pd {
                Some(pd) => crate::engine::pd_repo_url(&store.url, pd),
                None => store.url.clone(),
            };
            (
                Target {
                    store,
                    root_url,
                    lock_days,
                },
                Ok(()),
            )
        }
        None => (
            Target {
                store: StoreTarget {
                    name: name.to_string(),
                    url: String::new(),
                    credentials: None,
                },
                root_url: String::new(),
                lock_days,
            },
            Err(format!(
                "store {name} is not configured in controller.toml ([stores.{name}]); the document is missing there"
            )),
        ),
    }
}

async fn put_all(
    targets: &[(Target, Usable)],
    dir: &'static str,
    file: &str,
    bytes: Vec<u8>,
) -> Vec<Placed> {
    let mut placed = Vec::new();
    for (t, usable) in targets {
        let outcome = match usable {
            Ok(()) => put_one(t, dir, file, bytes.clone()).await,
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = &outcome {
            tracing::warn!(store = %t.store.name, dir, file, error = %e, "publishing a document failed");
        }
        placed.push(Placed {
            store: t.store.name.clone(),
            outcome,
        });
    }
    placed
}

/// Write-once into one store: already there with the same bytes is done;
/// other bytes are refused; otherwise create it (locked when asked).
async fn put_one(t: &Target, dir: &'static str, file: &str, bytes: Vec<u8>) -> Result<(), String> {
    let store = &t.store.name;
    let backend: Arc<dyn Backend> = cadang_s3::open_store(&t.root_url, t.store.credentials.clone())
        .map_err(|e| format!("store {store}: {e}"))?;
    let kind = FileKind::Documents(dir);
    if same_or_conflict(&*backend, kind, file, &bytes, store).await? {
        return Ok(());
    }
    let written = if t.lock_days > 0 {
        let until = SystemTime::now() + Duration::from_secs(u64::from(t.lock_days) * 86_400);
        match backend
            .write_retained(kind, file, bytes.clone(), until)
            .await
        {
            // A store that cannot enforce a lock still gets the create-only write.
            Err(BackendError::Unsupported { .. }) => {
                backend.write_new(kind, file, bytes.clone()).await
            }
            r => r,
        }
    } else {
        backend.write_new(kind, file, bytes.clone()).await
    };
    match written {
        Ok(()) => Ok(()),
        // Raced with another writer: fine only if it wrote the same bytes.
        Err(BackendError::AlreadyExists { .. }) => {
            if same_or_conflict(&*backend, kind, file, &bytes, store).await? {
                Ok(())
            } else {
                Err(format!(
                    "store {store}: {dir}/{file} vanished while it was written; publish again"
                ))
            }
        }
        Err(e) => Err(format!("store {store}: {e}")),
    }
}

/// `true` when the file exists with exactly `bytes`; an error when it
/// exists with other bytes; `false` when it does not exist.
async fn same_or_conflict(
    backend: &dyn Backend,
    kind: FileKind,
    file: &str,
    bytes: &[u8],
    store: &str,
) -> Result<bool, String> {
    match backend.read(kind, file).await {
        Ok(existing) if existing == bytes => Ok(true),
        Ok(_) => Err(format!(
            "store {store}: {kind}/{file} exists with other content; a published document is never replaced \
             (someone changed it in the store, or two different documents got one name): compare it with the controller's copy"
        )),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(format!("store {store}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_places() {
        let pd = [DRILL_REPORTS, PD_SUMMARIES];
        assert_eq!(
            split_place("reports/drill-report/R-1.json", &pd).unwrap(),
            (DRILL_REPORTS, "R-1.json")
        );
        for bad in [
            "packs/ab/abcd",
            "reports/R-1.json",
            "R-1.json",
            "cadang-audit/1-16.json",
            "../x/reports/drill-report/a",
        ] {
            assert!(split_place(bad, &pd).is_err(), "{bad}");
        }
        assert!(split_place("cadang-audit/1-16.json", &[AUDIT_DIR]).is_ok());
    }
}
