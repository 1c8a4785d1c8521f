//! The report spool: every finished job's [`JobReport`] is appended here
//! (one JSON line, fsynced) before anything else learns of it, and leaves
//! only when the controller's [`cadang_proto::agent::ReportAck`] names it.
//! Reports are delivered oldest first, so the controller sees them in the
//! order the agent wrote them; a resend after a lost ack carries the same
//! `report_id`, which the controller deduplicates.
//!
//! The spool is bounded (reports and bytes). When full, the oldest
//! *successful* reports go first: a failure is what an operator must see.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use cadang_proto::agent::{JobReport, Outcome};

use super::{fsutil, DaemonError};

pub struct Spool {
    path: PathBuf,
    reports: Vec<Entry>,
    max_reports: usize,
    max_bytes: u64,
}

struct Entry {
    report: JobReport,
    /// Length of its line on disk, newline included.
    size: u64,
}

impl Spool {
    /// Opens (or creates) the spool. A torn last line left by a crash
    /// during an append is dropped: that report's job was not yet marked
    /// done, so it is reported again.
    pub fn open(path: &Path, max_reports: usize, max_bytes: u64) -> Result<Spool, DaemonError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(DaemonError::io("read", path)(e)),
        };
        let mut reports = Vec::new();
        let mut torn = false;
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<JobReport>(line) {
                Ok(report) => reports.push(Entry {
                    report,
                    size: line.len() as u64 + 1,
                }),
                Err(e) => {
                    torn = true;
                    tracing::warn!(spool = %path.display(), error = %e, "dropping an unreadable spool line (a crash during a write)");
                }
            }
        }
        let spool = Spool {
            path: path.to_path_buf(),
            reports,
            max_reports: max_reports.max(1),
            max_bytes: max_bytes.max(1024),
        };
        if torn {
            spool.rewrite()?;
        }
        Ok(spool)
    }

    pub fn len(&self) -> usize {
        self.reports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.reports.iter().map(|e| e.size).sum()
    }

    pub fn contains(&self, report_id: &str) -> bool {
        self.reports.iter().any(|e| e.report.report_id == report_id)
    }

    /// The oldest `n` reports, in order.
    pub fn head(&self, n: usize) -> Vec<JobReport> {
        self.reports
            .iter()
            .take(n)
            .map(|e| e.report.clone())
            .collect()
    }

    /// Appends durably (fsync). A report already in the spool is not
    /// added twice.
    pub fn append(&mut self, report: JobReport) -> Result<(), DaemonError> {
        if self.contains(&report.report_id) {
            return Ok(());
        }
        let mut line = serde_json::to_vec(&report).map_err(|e| DaemonError::Corrupt {
            path: self.path.clone(),
            reason: format!("cannot encode a report: {e}"),
        })?;
        line.push(b'\n');
        let size = line.len() as u64;
        self.reports.push(Entry { report, size });
        if self.over_bounds() {
            self.shed();
            return self.rewrite();
        }
        let created = !self.path.exists();
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(DaemonError::io("open", &self.path))?;
        f.write_all(&line)
            .and_then(|_| f.sync_data())
            .map_err(DaemonError::io("append to", &self.path))?;
        if created {
            fsutil::sync_dir(&self.path)?;
        }
        Ok(())
    }

    /// Drops the reports the controller acknowledged. Returns how many.
    pub fn remove_acked(&mut self, accepted: &[String]) -> Result<usize, DaemonError> {
        let before = self.reports.len();
        self.reports
            .retain(|e| !accepted.contains(&e.report.report_id));
        let removed = before - self.reports.len();
        if removed > 0 {
            self.rewrite()?;
        }
        Ok(removed)
    }

    fn over_bounds(&self) -> bool {
        self.reports.len() > self.max_reports || self.bytes() > self.max_bytes
    }

    /// Makes room: oldest successful reports first, then the oldest of any
    /// outcome. Logged, because the controller will never see them.
    fn shed(&mut self) {
        let mut dropped_ok = 0usize;
        while self.over_bounds() {
            match self
                .reports
                .iter()
                .position(|e| e.report.outcome == Outcome::Succeeded)
            {
                Some(i) if i + 1 < self.reports.len() => {
                    self.reports.remove(i);
                    dropped_ok += 1;
                }
                _ => break,
            }
        }
        let mut dropped_other = 0usize;
        while self.over_bounds() && self.reports.len() > 1 {
            self.reports.remove(0);
            dropped_other += 1;
        }
        tracing::warn!(
            spool = %self.path.display(),
            dropped_successful = dropped_ok,
            dropped_other,
            kept = self.reports.len(),
            "the report spool is full (the controller has been unreachable a long time); the oldest reports were dropped and will never reach it"
        );
    }

    fn rewrite(&self) -> Result<(), DaemonError> {
        let mut data = Vec::with_capacity(self.bytes() as usize);
        for e in &self.reports {
            let line = serde_json::to_vec(&e.report).map_err(|err| DaemonError::Corrupt {
                path: self.path.clone(),
                reason: format!("cannot encode a report: {err}"),
            })?;
            data.extend_from_slice(&line);
            data.push(b'\n');
        }
        fsutil::write_atomic(&self.path, &data)
    }
}
