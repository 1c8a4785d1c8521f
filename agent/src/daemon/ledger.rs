//! The ledger: which jobs and scheduled slots this agent has taken on and
//! finished, kept in one small JSON file written atomically after every
//! change. It is what makes a restart neither repeat nor skip work:
//!
//! * a job is recorded *pending* before it starts; after a crash every
//!   pending job runs again (its report was never written);
//! * a finished job moves to *done* with its report, then the report is
//!   spooled and the entry marked *spooled*; a done entry not yet spooled
//!   when the agent died is spooled on start (the controller deduplicates
//!   by report id if it had arrived);
//! * a slot done here is answered, when the controller dispatches it
//!   later, by re-sending its report instead of backing up again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cadang_proto::agent::{JobReport, Outcome};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{fsutil, DaemonError};

/// A unit of work as the agent queues it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Work {
    /// `job:<id>` for a dispatched job, the slot key for a local run.
    pub key: String,
    #[serde(default)]
    pub job_id: Option<String>,
    pub kind: WorkKind,
    #[serde(default)]
    pub not_after: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum WorkKind {
    Backup {
        source: String,
        #[serde(default)]
        slot: Option<i64>,
    },
    Restore {
        request_id: String,
        /// The armored envelope (sealed to this agent's key).
        #[serde(default)]
        envelope: String,
        /// DR read access for this job: kept in memory only, never in the
        /// ledger file (a restore cut off by a restart is refused anyway:
        /// its envelope was used).
        #[serde(skip)]
        dr_store: Option<cadang_proto::agent::StoreAccess>,
    },
    /// A restore drill (drill runners only): the whole job, so a drill cut
    /// off by a restart runs again from the ledger.
    Drill(Box<cadang_proto::drill::DrillJob>),
}

impl Work {
    pub fn source(&self) -> Option<&str> {
        match &self.kind {
            WorkKind::Backup { source, .. } => Some(source),
            WorkKind::Restore { .. } => None,
            WorkKind::Drill(_) => None,
        }
    }

    pub fn slot(&self) -> Option<i64> {
        match &self.kind {
            WorkKind::Backup { slot, .. } => *slot,
            WorkKind::Restore { .. } => None,
            WorkKind::Drill(_) => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    pub report: JobReport,
    pub spooled: bool,
    #[serde(default)]
    pub slot_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LedgerFile {
    version: u32,
    /// Slots before this are never run locally (the agent did not exist).
    since: DateTime<Utc>,
    pending: BTreeMap<String, Work>,
    done: BTreeMap<String, Done>,
    /// Slot key → key of the done entry that covered it.
    slots: BTreeMap<String, String>,
}

pub struct Ledger {
    path: PathBuf,
    host: String,
    file: LedgerFile,
}

/// Done entries are kept this long (resends of older jobs are not expected).
const KEEP_DONE_DAYS: i64 = 35;

/// What to do with work that arrives.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// Run it.
    Run,
    /// Already finished: re-send this report instead of running again.
    Resend(Box<JobReport>),
    /// Already queued or running under this key.
    Duplicate,
}

impl Ledger {
    pub fn open(path: &Path, host: &str, now: DateTime<Utc>) -> Result<Ledger, DaemonError> {
        let file = match fsutil::read_json::<LedgerFile>(path)? {
            Some(f) => f,
            None => {
                let f = LedgerFile {
                    version: 1,
                    since: now,
                    pending: BTreeMap::new(),
                    done: BTreeMap::new(),
                    slots: BTreeMap::new(),
                };
                fsutil::write_json(path, &f)?;
                f
            }
        };
        Ok(Ledger {
            path: path.to_path_buf(),
            host: host.to_string(),
            file,
        })
    }

    pub fn since(&self) -> DateTime<Utc> {
        self.file.since
    }

    fn slot_key(&self, w: &Work) -> Option<String> {
        match &w.kind {
            WorkKind::Backup {
                source,
                slot: Some(s),
            } => Some(cadang_proto::agent::slot_key(&self.host, source, *s)),
            _ => None,
        }
    }

    /// Whether a slot is finished or taken on (then it is not run locally).
    pub fn slot_known(&self, source: &str, slot: i64) -> bool {
        let key = cadang_proto::agent::slot_key(&self.host, source, slot);
        self.file.slots.contains_key(&key)
            || self
                .file
                .pending
                .values()
                .any(|w| w.source() == Some(source) && w.slot() == Some(slot))
    }

    /// Decides about work that is about to run (called under the source's
    /// mutex, so a slot finished a moment ago by another job is seen).
    pub fn admit(&self, w: &Work) -> Admission {
        if let Some(d) = self.file.done.get(&w.key) {
            return Admission::Resend(Box::new(d.report.clone()));
        }
        if let Some(done_key) = self.slot_key(w).and_then(|k| self.file.slots.get(&k)) {
            if let Some(d) = self.file.done.get(done_key) {
                // A failed slot dispatched again is the controller's retry.
                if d.report.outcome != Outcome::Failed {
                    return Admission::Resend(Box::new(d.report.clone()));
                }
            }
        }
        Admission::Run
    }

    /// Whether work with this key is already pending.
    pub fn is_pending(&self, key: &str) -> bool {
        self.file.pending.contains_key(key)
    }

    /// Records work as taken on, durably, before it starts.
    pub fn begin(&mut self, w: &Work) -> Result<(), DaemonError> {
        self.file.pending.insert(w.key.clone(), w.clone());
        self.save()
    }

    /// Work that was taken on and not finished (after a restart: to retry).
    pub fn pending(&self) -> Vec<Work> {
        self.file.pending.values().cloned().collect()
    }

    /// Records the end of a job. An interrupted job stays pending: it is
    /// retried, and its slot is not counted as done.
    pub fn finish(&mut self, w: &Work, report: &JobReport) -> Result<(), DaemonError> {
        if report.outcome == Outcome::Interrupted {
            return Ok(());
        }
        self.file.pending.remove(&w.key);
        let slot_key = self.slot_key(w);
        if let Some(k) = &slot_key {
            self.file.slots.insert(k.clone(), w.key.clone());
        }
        self.file.done.insert(
            w.key.clone(),
            Done {
                report: report.clone(),
                spooled: false,
                slot_key,
            },
        );
        self.expire(report.finished);
        self.save()
    }

    /// Records that a done entry's report is durably in the spool.
    pub fn mark_spooled(&mut self, key: &str) -> Result<(), DaemonError> {
        match self.file.done.get_mut(key) {
            Some(d) if !d.spooled => {
                d.spooled = true;
                self.save()
            }
            _ => Ok(()),
        }
    }

    /// Reports of done entries that may not have reached the spool.
    pub fn unspooled(&self) -> Vec<(String, JobReport)> {
        self.file
            .done
            .iter()
            .filter(|(_, d)| !d.spooled)
            .map(|(k, d)| (k.clone(), d.report.clone()))
            .collect()
    }

    /// Also records a dispatched job answered from an earlier report, so a
    /// further resend of the same job id is answered the same way.
    pub fn alias(&mut self, w: &Work, report: &JobReport) -> Result<(), DaemonError> {
        self.file.pending.remove(&w.key);
        self.file.done.insert(
            w.key.clone(),
            Done {
                report: report.clone(),
                spooled: true,
                slot_key: None,
            },
        );
        self.save()
    }

    fn expire(&mut self, now: DateTime<Utc>) {
        let horizon = now - Duration::days(KEEP_DONE_DAYS);
        let old: Vec<String> = self
            .file
            .done
            .iter()
            .filter(|(_, d)| d.spooled && d.report.finished < horizon)
            .map(|(k, _)| k.clone())
            .collect();
        for k in old {
            if let Some(d) = self.file.done.remove(&k) {
                if let Some(s) = d.slot_key {
                    self.file.slots.remove(&s);
                }
            }
        }
    }

    fn save(&self) -> Result<(), DaemonError> {
        fsutil::write_json(&self.path, &self.file)
    }
}
