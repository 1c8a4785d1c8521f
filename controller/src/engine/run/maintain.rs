//! The jobs that look after one store: verify, retention, repair.
//!
//! Retention honours the ransomware retention holds (issue 10): before it
//! forgets anything it asks the [`HoldBook`] for the PD's held sources and
//! keeps, whatever the keep policy says, every snapshot of such a source
//! taken before the damage began and the flagged snapshots themselves. The
//! same rule runs at both sites, so the DR copy keeps them too.

use std::collections::HashSet;
use std::sync::Arc;

use cadang_core::check::{self, ReadData};
use cadang_core::prune;
use cadang_core::repair;
use cadang_policies::retention::{self, Candidate, KeepPolicy};
use chrono::Utc;
use serde_json::json;

use super::{CoreRunner, JobError, Report};
use crate::anomaly::{HeldSource, HoldBook};
use crate::engine::stores::StoreTarget;

impl CoreRunner {
    /// Retention asks `holds` which sources are under a ransomware hold.
    pub fn with_holds(mut self, holds: Arc<dyn HoldBook>) -> CoreRunner {
        self.holds = Some(holds);
        self
    }

    fn held_sources(&self, pd: &str) -> Result<Vec<HeldSource>, JobError> {
        match &self.holds {
            None => Ok(Vec::new()),
            Some(book) => book.holds(pd).map_err(|e| {
                JobError::Transient(format!(
                    "retention of PD {pd}: the ransomware retention holds cannot be read ({e}); nothing was forgotten"
                ))
            }),
        }
    }
}

/// What the holds keep in one repository.
#[derive(Debug, Default)]
pub(crate) struct Protected {
    pub ids: HashSet<cadang_core::Id>,
    /// `host/source` and how many of its snapshots the hold keeps.
    pub per_source: Vec<(String, usize)>,
}

/// Which snapshots the holds keep: per held source, the flagged snapshots,
/// and every snapshot of the source's group taken before the hold's start.
/// The group is found through the snapshots the controller knows belong to
/// the source; when none of them is in the store any more, every snapshot
/// of the PD before the start is kept (keeping too much is the safe side).
pub(crate) fn protected(
    holds: &[HeldSource],
    list: &[cadang_core::snapshot::Snapshot],
) -> Protected {
    let mut out = Protected::default();
    for h in holds {
        let flagged: HashSet<&str> = h.flagged.iter().map(String::as_str).collect();
        let known: HashSet<&str> = h.known.iter().map(String::as_str).collect();
        let groups: HashSet<&str> = list
            .iter()
            .filter(|s| {
                let id = s.id.to_hex();
                flagged.contains(id.as_str()) || known.contains(id.as_str())
            })
            .map(|s| s.payload.group.as_str())
            .collect();
        let mut n = 0;
        for s in list {
            let is_flagged = flagged.contains(s.id.to_hex().as_str());
            let before = s.payload.time.with_timezone(&Utc) < h.since;
            let ours = groups.is_empty() || groups.contains(s.payload.group.as_str());
            if is_flagged || (before && ours) {
                out.ids.insert(s.id);
                n += 1;
            }
        }
        out.per_source.push((format!("{}/{}", h.host, h.source), n));
    }
    out
}

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
        let holds = self.held_sources(pd)?;
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
        let mut decisions = retention::apply(keep, &candidates);
        let held = protected(&holds, &list);
        let held_back = hold_back(&mut decisions, &held);
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
        let mut report = retention_report(
            pd,
            store,
            keep,
            &decisions,
            &forgot,
            pruned.as_ref(),
            &damaged,
        );
        note_holds(&mut report, &held, held_back);
        Ok(report)
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

/// Turns the keep policy's "forget" into "keep" for held snapshots; how
/// many it saved.
fn hold_back(decisions: &mut [retention::Decision<cadang_core::Id>], held: &Protected) -> usize {
    let mut n = 0;
    for d in decisions.iter_mut().filter(|d| !d.keep) {
        if held.ids.contains(&d.id) {
            d.keep = true;
            d.reasons.push("ransomware retention hold".into());
            n += 1;
        }
    }
    n
}

fn note_holds(report: &mut Report, held: &Protected, held_back: usize) {
    if held.per_source.is_empty() {
        return;
    }
    let sources: Vec<String> = held
        .per_source
        .iter()
        .map(|(s, n)| format!("{s} ({n})"))
        .collect();
    report.message.push_str(&format!(
        "; retention hold (penahanan retensi) after a ransomware flag on {}: {held_back} snapshot(s) the keep policy would have forgotten were kept",
        sources.join(", ")
    ));
    report.detail["held_back"] = json!(held_back);
    report.detail["holds"] = json!(held
        .per_source
        .iter()
        .map(|(s, n)| json!({ "source": s, "protected": n }))
        .collect::<Vec<_>>());
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadang_core::snapshot::{Snapshot, SnapshotPayload};
    use chrono::{DateTime, Duration, FixedOffset, TimeZone};

    fn at(day: i64) -> DateTime<FixedOffset> {
        FixedOffset::east_opt(7 * 3600)
            .unwrap()
            .with_ymd_and_hms(2026, 11, 1, 2, 0, 0)
            .unwrap()
            + Duration::days(day)
    }

    fn snap(n: u8, day: i64, group: &str) -> Snapshot {
        Snapshot {
            id: cadang_core::Id::of_bytes(&[n]),
            payload: SnapshotPayload {
                version: 1,
                repo_id: cadang_core::Id::of_bytes(b"repo"),
                time: at(day),
                group: group.into(),
                packs: vec![],
                stats: Default::default(),
                meta: String::new(),
                body: String::new(),
            },
            signer: String::new(),
        }
    }

    fn held(since_day: i64, flagged: &[&Snapshot], known: &[&Snapshot]) -> HeldSource {
        HeldSource {
            host: "fs".into(),
            source: "berkas".into(),
            since: at(since_day).with_timezone(&Utc),
            flagged: flagged.iter().map(|s| s.id.to_hex()).collect(),
            known: known.iter().map(|s| s.id.to_hex()).collect(),
        }
    }

    #[test]
    fn a_hold_keeps_the_sources_snapshots_before_the_damage_and_the_flagged_ones() {
        let list = vec![
            snap(0, 0, "g-berkas"),
            snap(1, 1, "g-berkas"),
            snap(2, 2, "g-berkas"), // flagged night
            snap(3, 3, "g-berkas"), // after: not held
            snap(4, 0, "g-db"),     // another source of the PD: not held
        ];
        let h = held(2, &[&list[2]], &[&list[1]]);
        let p = protected(&[h], &list);
        let kept: Vec<_> = list
            .iter()
            .filter(|s| p.ids.contains(&s.id))
            .map(|s| s.payload.time)
            .collect();
        assert_eq!(kept, vec![at(0), at(1), at(2)]);
        assert_eq!(p.per_source, vec![("fs/berkas".to_string(), 3)]);

        // The forget decisions for those turn into "keep".
        let mut decisions: Vec<retention::Decision<cadang_core::Id>> = list
            .iter()
            .map(|s| retention::Decision {
                id: s.id,
                time: s.payload.time,
                group: s.payload.group.clone(),
                keep: s.payload.time == at(3),
                reasons: vec![],
            })
            .collect();
        assert_eq!(hold_back(&mut decisions, &p), 3);
        let forgotten: Vec<_> = decisions
            .iter()
            .filter(|d| !d.keep)
            .map(|d| d.group.as_str())
            .collect();
        assert_eq!(forgotten, vec!["g-db"]);
    }

    #[test]
    fn when_the_source_cannot_be_recognised_everything_before_the_damage_is_kept() {
        let list = vec![snap(0, 0, "a"), snap(1, 1, "b"), snap(2, 5, "b")];
        // None of the hold's snapshots are in this store any more.
        let gone = snap(9, 4, "x");
        let p = protected(&[held(4, &[&gone], &[])], &list);
        assert!(p.ids.contains(&list[0].id) && p.ids.contains(&list[1].id));
        assert!(!p.ids.contains(&list[2].id));
        assert!(protected(&[], &list).ids.is_empty());
    }
}
