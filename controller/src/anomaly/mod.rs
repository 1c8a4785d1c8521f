//! Ransomware early warning on the controller (issue 10): per source, a
//! robust baseline of each signal the agent measured, and a verdict on each
//! backup. Pure functions, no I/O: the daemon stores the observations and
//! verdicts, raises the alert and holds retention.
//!
//! How the verdict is reached (each rule is a [`ReasonKind`]; any one of
//! the *strong* rules flags the backup):
//!
//! | rule | fires when |
//! |---|---|
//! | entropy transitions | the share of files whose sampled blocks turned random tonight exceeds `max(transition_share, median + k·MAD)` and at least `transition_min_files` files |
//! | slow encryption | tonight and an unbroken run of earlier nights (within `window_nights`) each had files turn random above the baseline by at least `window_share / window_nights / 2`, and together they add up to `window_share` of the files |
//! | extension changes | files renamed or replaced under another extension exceed `max(extension_share, median + k·MAD)` and `extension_min_files` |
//! | known extensions | at least `known_extension_min_files` new names end in a known ransomware extension |
//! | ransom notes | new ransom-note files in at least `ransom_note_min_dirs` directories |
//! | mass replacement | `replacement_share` of the files deleted and at least half as many random-looking new files (families that rename to random names) |
//!
//! When a backup is flagged, supporting observations (many changed files,
//! new data that did not compress) are added to its reasons; alone they
//! never flag, because month-end and bulk scan imports look like that.
//!
//! ```text
//! let verdicts = anomaly::evaluate(&observations, &Thresholds::default());
//! if verdicts.last().is_some_and(|v| v.flagged) { /* alert, hold */ }
//! let clean = anomaly::last_clean(&observations, &verdicts); // Option<&Observation>
//! ```

mod baseline;
pub mod clear;
pub mod held;
mod hold;
pub mod policy;
mod rules;
pub mod service;
mod words;

use cadang_proto::signals::BackupSignals;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use baseline::{median, Baseline};
pub use held::{FixedHolds, HeldSource, HoldBook, StateHolds};
pub use hold::RetentionHold;
pub use rules::verdict;

/// One measured backup of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The snapshot id the backup wrote.
    pub snapshot: String,
    /// When the backup started (its weekday comes from this).
    pub time: DateTime<Utc>,
    pub signals: BackupSignals,
}

/// Margins of the verdict, tunable per policy. Shares are fractions of the
/// source's files (0.02 = 2%).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// Clean backups the baseline is computed over (the most recent ones).
    pub history: usize,
    /// Clean backups a source needs before its baseline is used; until
    /// then only the fixed floors below apply (a baseline of one or two
    /// nights says little, and may only raise the limits).
    pub min_history: usize,
    /// How far above the median a value must be, in MAD-sigmas, to count
    /// as leaving the baseline. 6 keeps ordinary nights (even busy ones)
    /// inside; the floors below decide when the baseline is near zero.
    pub mad_k: f64,
    /// Entropy transitions: the lowest share of files that can flag a
    /// night. 2% sits well above ordinary nights (almost always 0: people
    /// rarely turn a text file into random bytes under the same name) and
    /// below the 5% a night the issue's targets require to catch.
    pub transition_share: f64,
    /// ...and at least this many files, so a tiny source is not flagged
    /// for two files.
    pub transition_min_files: u64,
    /// Slow attack: nights summed (tonight included).
    pub window_nights: usize,
    /// Slow attack: share of files that turned random over the window,
    /// beyond the baseline, that flags.
    pub window_share: f64,
    pub window_min_files: u64,
    /// Extension changes: lowest share and count that can flag.
    pub extension_share: f64,
    pub extension_min_files: u64,
    /// New files with a known ransomware extension that flag on their own.
    pub known_extension_min_files: u64,
    /// Directories with a new ransom note that flag on their own (notes are
    /// dropped in every directory; one file of that name may be a joke or
    /// a security training).
    pub ransom_note_min_dirs: u64,
    /// Mass replacement: share of files deleted, with at least half as many
    /// new random-looking files.
    pub replacement_share: f64,
    pub replacement_min_files: u64,
    /// Weekday baselines need this many backups of every weekday...
    pub weekly_min_weeks: usize,
    /// ...and the weekday must explain this share of the variance (η²).
    pub weekly_strength: f64,
    /// The PD's zone, for weekdays: 420 = WIB, 480 = WITA, 540 = WIT.
    pub utc_offset_minutes: i32,
    /// Supporting observation: changed-file share this many MAD-sigmas
    /// above its baseline is mentioned in a flagged backup's reasons.
    pub supporting_k: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            history: 28,
            min_history: 1,
            mad_k: 6.0,
            transition_share: 0.02,
            transition_min_files: 10,
            window_nights: 7,
            window_share: 0.05,
            window_min_files: 20,
            extension_share: 0.02,
            extension_min_files: 10,
            known_extension_min_files: 5,
            ransom_note_min_dirs: 2,
            replacement_share: 0.05,
            replacement_min_files: 20,
            weekly_min_weeks: 3,
            weekly_strength: 0.5,
            utc_offset_minutes: 420,
            supporting_k: 4.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonKind {
    EntropyTransitions,
    SlowEncryption,
    ExtensionChanges,
    KnownExtensions,
    RansomNotes,
    MassReplacement,
    /// Supporting only: many more changed files than usual.
    ManyChanges,
    /// Supporting only: most new data did not compress.
    IncompressibleData,
}

impl ReasonKind {
    /// Strong reasons flag a backup; supporting ones only explain it.
    pub fn strong(self) -> bool {
        !matches!(
            self,
            ReasonKind::ManyChanges | ReasonKind::IncompressibleData
        )
    }
}

/// One reason, with the numbers behind it and the words for an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub kind: ReasonKind,
    /// The measured value (a share, or a count for count rules).
    pub value: f64,
    /// Files involved.
    pub files: u64,
    /// The level it had to exceed.
    pub limit: f64,
    /// The source's normal level, when there was a baseline.
    #[serde(default)]
    pub baseline: Option<f64>,
    pub english: String,
    /// Bahasa Indonesia, in the glossary's terms.
    pub indonesian: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub flagged: bool,
    pub reasons: Vec<Reason>,
    /// For a slow attack: the earliest backup of the window that already
    /// carried encryption, i.e. where the damage probably began.
    #[serde(default)]
    pub onset: Option<String>,
    /// The first measured backup of a source is never judged (nothing to
    /// compare with); it only starts the baseline.
    #[serde(default)]
    pub learning: bool,
}

impl Verdict {
    /// One line for alerts and `cadang jobs`: "dugaan serangan ransomware"
    /// and the reasons.
    pub fn summary(&self, indonesian: bool) -> String {
        words::summary(self, indonesian)
    }
}

/// Verdicts for a source's whole history, oldest first, each judged against
/// the clean backups before it (a flagged backup never becomes "normal").
pub fn evaluate(history: &[Observation], t: &Thresholds) -> Vec<Verdict> {
    let mut verdicts: Vec<Verdict> = Vec::with_capacity(history.len());
    for i in 0..history.len() {
        let v = rules::verdict_at(history, &verdicts, i, t);
        verdicts.push(v);
    }
    verdicts
}

/// The last snapshot before the first flagged one (or before that flag's
/// onset, for a slow attack): the one to restore. `None` when nothing is
/// flagged or no clean backup precedes the damage.
pub fn last_clean<'a>(history: &'a [Observation], verdicts: &[Verdict]) -> Option<&'a Observation> {
    let first = verdicts.iter().position(|v| v.flagged)?;
    let onset = verdicts[first].onset.as_ref().and_then(|s| {
        history[..=first.min(history.len().saturating_sub(1))]
            .iter()
            .position(|o| &o.snapshot == s)
    });
    let start = onset.map_or(first, |o| o.min(first));
    start.checked_sub(1).and_then(|i| history.get(i))
}

#[cfg(test)]
mod tests;
