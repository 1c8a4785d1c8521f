//! `cadang controller rebuild`: the snapshot catalogue again, from the PD
//! repositories in the stores (the stores are the source of truth). Run it
//! with the controller stopped, after the controller's disk was lost and
//! the state restored from an older copy or started empty with the PDs
//! registered again.

use cadang_core::keys::RepoSecret;
use chrono::Utc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::state::pds::{self, SnapshotEntry};
use crate::state::State;

#[derive(Debug, Default)]
pub struct RebuildReport {
    /// (PD, store, snapshots found).
    pub found: Vec<(String, String, usize)>,
    /// Stores or snapshots that could not be read, for the operator.
    pub problems: Vec<String>,
}

pub async fn rebuild(config: &Config, state: &State) -> Result<RebuildReport> {
    let registered = state.read(pds::all)?;
    let mut report = RebuildReport::default();
    let mut entries = Vec::new();
    for pd in &registered {
        let secret = RepoSecret::from_json(pd.repo_secret_json.as_bytes())
            .map_err(|e| Error::State(format!("PD {}: repository secret: {e}", pd.pd)))?;
        for name in config.stores.keys() {
            let Some(target) = config.store_target(name) else {
                continue;
            };
            let backend = match target.open_pd(&pd.pd) {
                Ok(b) => b,
                Err(e) => {
                    report
                        .problems
                        .push(format!("PD {} in store {name}: {e}", pd.pd));
                    continue;
                }
            };
            let Ok(repo) = cadang_core::Repository::open(backend).await else {
                continue; // no repository of this PD in this store
            };
            if repo.config.id.to_string() != pd.repo_id {
                report.problems.push(format!(
                    "store {name} holds another repository ({}) for PD {}; skipped",
                    repo.config.id, pd.pd
                ));
                continue;
            }
            let (list, bad) = repo.snapshots().await.map_err(|e| Error::Store {
                store: name.clone(),
                message: e.to_string(),
            })?;
            for (file, e) in bad {
                report
                    .problems
                    .push(format!("store {name}, PD {}: snapshot {file}: {e}", pd.pd));
            }
            report.found.push((pd.pd.clone(), name.clone(), list.len()));
            for s in list {
                let meta = s.meta(&secret).ok();
                entries.push(SnapshotEntry {
                    pd: pd.pd.clone(),
                    id: s.id.to_hex(),
                    host: meta.as_ref().map(|m| m.host.clone()).unwrap_or_default(),
                    // The agent tags a snapshot with its source's name first.
                    source: meta
                        .as_ref()
                        .and_then(|m| m.tags.first().cloned())
                        .unwrap_or_default(),
                    time: s.payload.time.with_timezone(&Utc),
                    files: s.payload.stats.files,
                    bytes_read: s.payload.stats.bytes,
                    bytes_added: s.payload.stats.added_bytes,
                });
            }
        }
    }
    state.write(|txn| {
        for e in &entries {
            pds::put_snapshot(txn, e)?;
        }
        Ok(())
    })?;
    Ok(report)
}
