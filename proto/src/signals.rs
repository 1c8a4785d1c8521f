//! Ransomware early-warning signals: what an agent measured during one
//! backup, sent as JSON in `ReportKind::Backup.signals`.
//!
//! Counts only: no file name, no path and no content ever appears here. The
//! controller keeps these per source and compares each backup with the
//! source's own history (`cadang_controller::anomaly`).
//!
//! Compatibility: fields are added with `#[serde(default)]`, never renamed;
//! [`SIGNALS_VERSION`] changes only if a count changes meaning.

use serde::{Deserialize, Serialize};

/// The meaning of the counts below; see the module docs.
pub const SIGNALS_VERSION: u32 = 1;

/// Signals of one backup of one source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupSignals {
    pub version: u32,
    /// False on the first backup the agent measured for this source (no
    /// previous state to compare with): every file then counts as new and
    /// the controller uses this backup only to learn what is normal.
    pub has_parent: bool,
    /// Regular files in the previous measured backup of this source.
    pub files_before: u64,
    /// Regular files in this backup.
    pub files_total: u64,
    /// Files whose path did not exist in the previous backup (renames and
    /// replacements paired with a deleted file are not counted here).
    pub files_new: u64,
    /// Files whose size, mtime, ctime or inode differ from the previous
    /// backup, plus files replaced under a new name (see `extension_changed`).
    pub files_changed: u64,
    /// Files of the previous backup that are gone (renamed or replaced
    /// files are not counted here).
    pub files_deleted: u64,
    /// Files moved to a new name with their inode, size and mtime kept.
    pub files_renamed: u64,
    /// Bytes in new and changed files (their current sizes).
    pub bytes_changed: u64,
    /// New data the repository stored in this backup (raw bytes of new chunks
    /// whose stored size was observed).
    pub new_data_bytes: u64,
    /// Of `new_data_bytes`, the bytes zstd could not shrink (stored as is).
    pub new_data_incompressible_bytes: u64,
    /// Changed files whose sampled blocks were looked at and whose previous
    /// blocks were known: the denominator of `entropy_transitions`.
    pub entropy_checked: u64,
    /// Changed files where a block that looked structured before (entropy
    /// ≤ the threshold, or a known file signature) now looks random (entropy
    /// above the threshold and no known signature): the mark of encryption,
    /// whole-file or only the first kilobytes.
    pub entropy_transitions: u64,
    /// New files whose first block looks random (a JPEG or PDF does not:
    /// they start with a signature).
    pub new_files_random: u64,
    /// Files renamed or replaced under a name with another extension
    /// (`laporan.xlsx` → `laporan.xlsx.locked` or `laporan.locked`).
    pub extension_changed: u64,
    /// New, renamed or replaced files whose name ends with an extension on
    /// the agent's list of known ransomware extensions.
    pub known_extension_files: u64,
    /// New files named like a ransom note on the agent's list.
    pub ransom_notes: u64,
    /// Distinct directories holding at least one new ransom note.
    pub ransom_note_dirs: u64,
    /// Which lists matched: e.g. "builtin 2026-12" or a file's name+hash.
    pub lists_version: String,
    /// Shares computed from the counts (also available as [`Shares::of`]);
    /// filled by the agent for people reading the JSON.
    pub shares: Shares,
}

/// The counts as fractions (0.0–1.0) of the relevant whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Shares {
    /// `files_changed / files_before`.
    pub changed: f64,
    /// `files_new / files_total`.
    pub new: f64,
    /// `files_deleted / files_before`.
    pub deleted: f64,
    /// `entropy_transitions / files_before`: "how much of the data set
    /// became random tonight" — comparable between busy and quiet nights.
    pub entropy_transitions: f64,
    /// `extension_changed / files_before`.
    pub extension_changed: f64,
    /// `new_data_incompressible_bytes / new_data_bytes`.
    pub incompressible: f64,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Shares {
    pub fn of(s: &BackupSignals) -> Shares {
        Shares {
            changed: ratio(s.files_changed, s.files_before),
            new: ratio(s.files_new, s.files_total),
            deleted: ratio(s.files_deleted, s.files_before),
            entropy_transitions: ratio(s.entropy_transitions, s.files_before),
            extension_changed: ratio(s.extension_changed, s.files_before),
            incompressible: ratio(s.new_data_incompressible_bytes, s.new_data_bytes),
        }
    }
}

impl BackupSignals {
    /// Fills `shares` from the counts and stamps the version; call once the
    /// counts are final.
    pub fn finish(mut self) -> BackupSignals {
        self.version = SIGNALS_VERSION;
        self.shares = Shares::of(&self);
        self
    }

    /// For `ReportKind::Backup.signals`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Reads `ReportKind::Backup.signals`; `None` when absent or not signals
    /// (an older agent).
    pub fn from_json(v: &serde_json::Value) -> Option<BackupSignals> {
        if v.is_null() {
            return None;
        }
        serde_json::from_value(v.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip_and_tolerate_missing_fields() {
        let s = BackupSignals {
            has_parent: true,
            files_before: 200,
            files_total: 200,
            files_changed: 50,
            entropy_transitions: 40,
            new_data_bytes: 100,
            new_data_incompressible_bytes: 90,
            ..Default::default()
        }
        .finish();
        assert_eq!(s.shares.changed, 0.25);
        assert_eq!(s.shares.entropy_transitions, 0.2);
        assert_eq!(s.shares.incompressible, 0.9);
        let back = BackupSignals::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        let old: BackupSignals =
            serde_json::from_str(r#"{"files_total":3,"has_parent":true}"#).unwrap();
        assert_eq!(old.files_total, 3);
        assert_eq!(old.entropy_transitions, 0);
        assert!(BackupSignals::from_json(&serde_json::Value::Null).is_none());
    }

    #[test]
    fn shares_of_an_empty_backup_are_zero_not_nan() {
        let s = BackupSignals::default().finish();
        assert_eq!(s.shares, Shares::default());
    }
}
