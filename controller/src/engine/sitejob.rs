//! Site jobs: the work the controller itself does on the stores (agents do
//! backups). The types the daemon builds and receives; how each kind runs
//! against `cadang-core` is in [`crate::engine::run`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use cadang_policies::model::Site;
use cadang_policies::retention::KeepPolicy;

use super::stores::StoreTarget;

#[derive(Debug, Clone)]
pub struct SiteJob {
    pub id: String,
    pub pd: String,
    pub kind: SiteJobKind,
}

#[derive(Debug, Clone)]
pub enum SiteJobKind {
    /// On-site → DR: copy what the DR repository lacks, paced to
    /// `bandwidth_limit` bytes/s, starting no new file after `window_end`,
    /// writing with `lock_days` of Object Lock (0 = none).
    Replicate {
        from: StoreTarget,
        to: StoreTarget,
        bandwidth_limit: Option<u64>,
        window_end: Option<DateTime<Utc>>,
        lock_days: u32,
    },
    /// Keyless check: structure, plus `read_share_percent` of the packs
    /// re-hashed, continuing where the previous run of this store stopped.
    Verify {
        store: StoreTarget,
        site: Site,
        read_share_percent: u8,
    },
    /// Forget by `keep` (grouped per host + source, as the CLI does), then prune.
    Retention {
        store: StoreTarget,
        site: Site,
        keep: KeepPolicy,
    },
    /// Replace damaged or missing packs and index files of `store` with
    /// good copies from `from` (the other site).
    Repair {
        store: StoreTarget,
        from: StoreTarget,
    },
}

impl SiteJobKind {
    /// `replicate`, `verify`, `retention`, `repair`: for logs and busy keys.
    pub fn name(&self) -> &'static str {
        match self {
            SiteJobKind::Replicate { .. } => "replicate",
            SiteJobKind::Verify { .. } => "verify",
            SiteJobKind::Retention { .. } => "retention",
            SiteJobKind::Repair { .. } => "repair",
        }
    }

    /// Every store the job touches, the written one first.
    pub fn stores(&self) -> Vec<&StoreTarget> {
        match self {
            SiteJobKind::Replicate { from, to, .. } => vec![to, from],
            SiteJobKind::Verify { store, .. } | SiteJobKind::Retention { store, .. } => {
                vec![store]
            }
            SiteJobKind::Repair { store, from } => vec![store, from],
        }
    }

    /// Whether the job holds the store's prune lock (`locks/prune`) while it
    /// runs: such jobs of one PD and store exclude each other, and the lock
    /// is removed if one is cancelled.
    pub fn takes_prune_lock(&self) -> bool {
        matches!(
            self,
            SiteJobKind::Retention { .. } | SiteJobKind::Repair { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteOutcome {
    Succeeded,
    /// ran, found damage or could not do everything
    Problems,
    Failed,
    Cancelled,
    TimedOut,
}

#[derive(Debug, Clone)]
pub struct SiteJobResult {
    pub job: SiteJob,
    /// The attempt the result comes from, 1 for the first.
    pub attempt: u32,
    pub outcome: SiteOutcome,
    /// What happened, for an operator.
    pub message: String,
    /// Counts (copied packs/bytes, lag, damaged files, forgotten snapshots,
    /// freed bytes...), as JSON.
    pub detail: serde_json::Value,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
}
