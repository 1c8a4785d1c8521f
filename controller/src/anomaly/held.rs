//! What the retention job asks before it forgets anything: the sources of a
//! PD under a retention hold. A trait, so the engine does not read the
//! controller's state itself and its tests can give holds by hand.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::state::anomalies;
use crate::state::pds;
use crate::state::State;

/// One held source, as retention needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldSource {
    pub host: String,
    pub source: String,
    /// Snapshots of the source taken before this are kept.
    pub since: DateTime<Utc>,
    /// Snapshot ids (hex) known to belong to the source: the flagged ones
    /// (kept whatever their time) first, then every catalogued one. The
    /// retention job finds the source's snapshot group through them.
    pub flagged: Vec<String>,
    pub known: Vec<String>,
}

pub trait HoldBook: Send + Sync {
    /// The active holds on `pd`'s sources. An error stops the retention
    /// run before it forgets anything.
    fn holds(&self, pd: &str) -> Result<Vec<HeldSource>, String>;
}

/// Holds read from the controller's state at the moment retention runs (a
/// flag that arrived after the job was queued still counts).
pub struct StateHolds(pub Arc<State>);

impl HoldBook for StateHolds {
    fn holds(&self, pd: &str) -> Result<Vec<HeldSource>, String> {
        let read = self.0.read(|txn| {
            let holds = anomalies::holds(txn, Some(pd))?;
            let catalogue = if holds.iter().any(|h| h.active()) {
                pds::snapshots(txn, pd)?
            } else {
                Vec::new()
            };
            Ok((holds, catalogue))
        });
        let (holds, catalogue) = read.map_err(|e| e.to_string())?;
        Ok(holds
            .into_iter()
            .filter(|h| h.active())
            .map(|h| HeldSource {
                known: catalogue
                    .iter()
                    .filter(|s| s.host == h.host && s.source == h.source)
                    .map(|s| s.id.clone())
                    .collect(),
                host: h.host,
                source: h.source,
                since: h.since,
                flagged: h.flagged_snapshots,
            })
            .collect())
    }
}

/// Fixed holds (tests, and the engine's own tests).
pub struct FixedHolds(pub Vec<(String, HeldSource)>);

impl HoldBook for FixedHolds {
    fn holds(&self, pd: &str) -> Result<Vec<HeldSource>, String> {
        Ok(self
            .0
            .iter()
            .filter(|(p, _)| p == pd)
            .map(|(_, h)| h.clone())
            .collect())
    }
}
