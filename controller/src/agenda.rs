//! The dispatcher's look-ahead for backups.
//!
//! `engine::due` and `engine::next_wakeup` evaluate every task of the
//! policy set: at 10,000 sources that is 10,000 cron evaluations each
//! time, and backups fall due every second (one jitter second after
//! another), so the dispatcher spent its time evaluating instead of
//! dispatching. The agenda evaluates the backups once per [`HORIZON`]:
//! what is due now and what falls due within the horizon (with its slot
//! and due time), then hands each out when its time comes. Site tasks
//! (replication, verification, retention, drills: a few per PD) are still
//! evaluated on every pass, from a copy of the set without hosts.
//!
//! Why looking ahead gives the same slots as asking at each instant: a
//! source's jitter stays below half the gap to its next slot, and the
//! horizon (20 s) is below half the shortest cron gap (1 min), so no
//! source has two slots that are both undispatched and inside
//! `(last dispatched, now + horizon]` while the older one's jitter has not
//! passed — the newest slot the look-ahead sees is the one `due` would
//! return at that instant.

use std::collections::VecDeque;
use std::sync::Arc;

use cadang_policies::model::PolicySet;
use chrono::{DateTime, Duration, Utc};

use crate::engine::{self, Due, RunBook, TaskKey};

/// How far ahead backups are evaluated (below half a minute: see above).
pub const HORIZON: Duration = Duration::seconds(20);

#[derive(Default)]
pub struct Agenda {
    /// The policy set the agenda was built for (its fingerprint).
    fingerprint: Option<String>,
    /// The set without hosts: site tasks only.
    sites: Option<Arc<PolicySet>>,
    /// Build again at or after this instant.
    until: Option<DateTime<Utc>>,
    /// Backups not handed out yet, by due time.
    pending: VecDeque<Due>,
}

impl Agenda {
    pub fn new() -> Agenda {
        Agenda::default()
    }

    /// Everything due at `now`: the backups whose time came, and the site
    /// tasks due now.
    pub fn take_due(&mut self, set: &PolicySet, book: &RunBook, now: DateTime<Utc>) -> Vec<Due> {
        if self.stale(set, now) {
            self.build(set, book, now);
        }
        let mut out = Vec::new();
        while self.pending.front().is_some_and(|d| d.not_before <= now) {
            out.extend(self.pending.pop_front());
        }
        if let Some(sites) = &self.sites {
            out.extend(engine::due(sites, book, now));
        }
        out
    }

    /// The earliest instant something may be due: the next backup of the
    /// agenda, its rebuild, or a site task.
    pub fn next_wakeup(&self, book: &RunBook, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut wake = self.until.unwrap_or(now);
        if let Some(d) = self.pending.front() {
            wake = wake.min(d.not_before);
        }
        if let Some(sites) = &self.sites {
            wake = wake.min(engine::next_wakeup(sites, book, now));
        }
        wake.max(now)
    }

    /// Forgets the look-ahead (after a round that did not commit, or a
    /// clock that jumped back): built again on the next pass.
    pub fn invalidate(&mut self) {
        self.until = None;
        self.pending.clear();
    }

    fn stale(&self, set: &PolicySet, now: DateTime<Utc>) -> bool {
        self.fingerprint.as_deref() != Some(set.fingerprint.as_str())
            || self.until.is_none_or(|u| now >= u || u - now > HORIZON * 4)
    }

    fn build(&mut self, set: &PolicySet, book: &RunBook, now: DateTime<Utc>) {
        if self.fingerprint.as_deref() != Some(set.fingerprint.as_str()) {
            self.sites = Some(Arc::new(without_hosts(set)));
            self.fingerprint = Some(set.fingerprint.clone());
        }
        let backup = |d: &Due| matches!(d.key, TaskKey::Backup { .. });
        let mut pending: Vec<Due> = engine::due(set, book, now)
            .into_iter()
            .filter(backup)
            .collect();
        pending.extend(
            engine::due(set, book, now + HORIZON)
                .into_iter()
                .filter(|d| backup(d) && d.not_before > now),
        );
        pending.sort_by_key(|d| d.not_before);
        let mut until = now + HORIZON;
        if pending.is_empty() {
            // Nothing within the horizon: sleep until the next backup can
            // fall due (at most a minute: `engine::MAX_SLEEP`).
            until = until.max(engine::next_wakeup(set, book, now));
        }
        self.pending = pending.into();
        self.until = Some(until);
    }
}

/// The set's PDs without their hosts: `due` on it yields site tasks only,
/// for a few cron evaluations per PD.
fn without_hosts(set: &PolicySet) -> PolicySet {
    let mut sites = set.clone();
    for pd in sites.pds.values_mut() {
        pd.hosts.clear();
    }
    sites
}
