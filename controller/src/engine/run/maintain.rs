//! The jobs that look after one store: verify, retention, repair.

use cadang_core::check::{self, ReadData};
use cadang_core::prune;
use cadang_core::repair;
use cadang_policies::retention::{self, Candidate, KeepPolicy};
use serde_json::json;

use super::{CoreRunner, JobError, Report};
use crate::engine::stores::StoreTarget;

impl CoreRunner {
    pub(super) async fn verify(
        &self,
        pd: &str,
        store: &StoreTarget,
        read_share_percent: u8,
    ) -> Result<Report, JobError> {
        let repo = self.open_repo(store, pd).await?;
        let position_key = format!("{}/{pd}", store.name);
        let after = self.position(&position_key);
        let read = match read_share_percent.min(100) {
            0 => ReadData::None,
            100 => ReadData::All,
            p => ReadData::Subset {
                percent: f64::from(p),
                after,
            },
        };
        let r = check::check(&repo, read, None).await.map_err(|e| {
            JobError::from_core(&format!("checking PD {pd} in store {}", store.name), e)
        })?;
        if let Some(last) = &r.last_read {
            self.set_position(position_key, last.clone());
        }
        let mut message = format!(
            "checked PD {pd} in store {}: {} snapshots, {} index files, {} packs ({} re-hashed)",
            store.name, r.snapshots, r.index_files, r.packs, r.packs_read
        );
        if r.ok() {
            message.push_str("; no damage found");
        } else {
            let first: Vec<&str> = r.errors.iter().take(3).map(String::as_str).collect();
            message.push_str(&format!(
                "; {} problem(s), the repository is damaged: {}; repair it from the other site",
                r.errors.len(),
                first.join("; ")
            ));
        }
        Ok(Report {
            problems: !r.ok(),
            message,
            detail: serde_json::to_value(&r).unwrap_or_default(),
        })
    }

    fn position(&self, key: &str) -> Option<String> {
        let positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        positions.get(key).cloned()
    }

    fn set_position(&self, key: String, last: String) {
        let snapshot = {
            let mut positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
            positions.insert(key, last);
            positions.clone()
        };
        if let Some(path) = &self.state_file {
            if let Err(e) =
                write_atomically(path, &serde_json::to_vec(&snapshot).unwrap_or_default())
            {
                // Losing the position only costs a re-read of some packs.
                tracing::warn!(file = %path.display(), error = %e,
                    "could not save the rolling check position; the next check after a restart starts from the first pack");
            }
        }
    }

    pub(super) async fn retention(
        &self,
        pd: &str,
        store: &StoreTarget,
        keep: &KeepPolicy,
    ) -> Result<Report, JobError> {
        if keep.is_empty() {
            return Err(JobError::Permanent(format!(
                "the retention policy of PD {pd} keeps nothing: applied it would forget every snapshot, so nothing was done; fix the PD's retention in its policy file"
            )));
        }
        let repo = self.open_repo(store, pd).await?;
        let context = format!("retention of PD {pd} in store {}", store.name);
        let (list, damaged) = repo
            .snapshots()
            .await
            .map_err(|e| JobError::from_core(&context, e))?;
        let candidates: Vec<_> = list
            .iter()
            .map(|s| Candidate {
                id: s.id,
                time: s.payload.time,
                group: s.payload.group.clone(),
            })
            .collect();
        let decisions = retention::apply(keep, &candidates);
        let remove: Vec<_> = decisions.iter().filter(|d| !d.keep).map(|d| d.id).collect();
        let forgot = prune::forget(&repo, &remove)
            .await
            .map_err(|e| JobError::from_core(&context, e))?;
        // Prune refuses while a snapshot is unreadable (its packs cannot be
        // told from garbage): forget only, and say why.
        let pruned = if damaged.is_empty() {
            Some(
                prune::prune(&repo)
                    .await
                    .map_err(|e| JobError::from_core(&context, e))?,
            )
        } else {
            None
        };
        Ok(retention_report(
            pd,
            store,
            keep,
            &decisions,
            &forgot,
            pruned.as_ref(),
            &damaged,
        ))
    }

    pub(super) async fn repair(
        &self,
        pd: &str,
        store: &StoreTarget,
        from: &StoreTarget,
    ) -> Result<Report, JobError> {
        let target = self.open(store, pd)?;
        let other = self.open(from, pd)?;
        let r = repair::repair(target, other).await.map_err(|e| {
            JobError::from_core(
                &format!(
                    "repairing PD {pd} in store {} from {}",
                    store.name, from.name
                ),
                e,
            )
        })?;
        let mut message = format!(
            "repaired PD {pd} in store {} from {}: {} packs checked, {} files replaced",
            store.name,
            from.name,
            r.packs_checked,
            r.replaced.len()
        );
        if !r.unrepaired.is_empty() {
            message.push_str(&format!(
                "; {} files are damaged at both sites and could NOT be repaired: {}",
                r.unrepaired.len(),
                r.unrepaired
                    .iter()
                    .take(3)
                    .map(|i| i.file.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(Report {
            problems: !r.unrepaired.is_empty(),
            message,
            detail: serde_json::to_value(&r).unwrap_or_default(),
        })
    }
}

fn retention_report(
    pd: &str,
    store: &StoreTarget,
    keep: &KeepPolicy,
    decisions: &[retention::Decision<cadang_core::Id>],
    forgot: &prune::ForgetReport,
    pruned: Option<&prune::PruneReport>,
    damaged: &[(String, cadang_core::Error)],
) -> Report {
    let kept = decisions.iter().filter(|d| d.keep).count();
    let mut message = format!(
        "retention ({keep}) of PD {pd} in store {}: {kept} snapshots kept, {} forgotten",
        store.name, forgot.deleted
    );
    if !forgot.locked.is_empty() {
        message.push_str(&format!(
            ", {} held by Object Lock until {} (a later run removes them)",
            forgot.locked.len(),
            prune::latest_until(&forgot.locked).unwrap_or("?")
        ));
    }
    match pruned {
        Some(p) => message.push_str(&format!(
            "; prune deleted {} packs ({} bytes), {} kept by Object Lock, {} marked for the next run",
            p.deleted_packs,
            p.deleted_bytes,
            p.locked.len(),
            p.newly_marked
        )),
        None => message.push_str(&format!(
            "; prune skipped: {} snapshot(s) are unreadable ({}); verify and repair the store first",
            damaged.len(),
            damaged
                .iter()
                .take(3)
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    Report {
        problems: !damaged.is_empty(),
        message,
        detail: json!({
            "kept": kept,
            "forgotten": forgot.deleted,
            "forget_locked": forgot.locked,
            "prune": pruned,
            "damaged_snapshots": damaged.iter().map(|(n, e)| json!({"name": n, "error": e.to_string()})).collect::<Vec<_>>(),
        }),
    }
}

/// Temp file and rename: a crash leaves the old file or the new, never half.
fn write_atomically(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}
