//! The rules of the verdict; see the table in the module docs.

use cadang_proto::signals::{BackupSignals, Shares};
use chrono::Weekday;

use super::baseline::{self, Baseline};
use super::words;
use super::{Observation, Reason, ReasonKind, Thresholds, Verdict};

/// Judges `current` against the source's earlier backups. `history` is
/// oldest first and `verdicts[i]` is the verdict already given to
/// `history[i]` (missing ones count as clean): flagged backups never enter
/// a baseline.
pub fn verdict(
    history: &[Observation],
    verdicts: &[Verdict],
    current: &Observation,
    t: &Thresholds,
) -> Verdict {
    if !current.signals.has_parent {
        return Verdict {
            learning: true,
            ..Default::default()
        };
    }
    let ctx = Context::new(history, verdicts, current, t);
    let mut reasons: Vec<Reason> = [
        ctx.transitions(),
        ctx.slow(),
        ctx.extensions(),
        ctx.known_extensions(),
        ctx.notes(),
        ctx.replacement(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let flagged = reasons.iter().any(|r| r.kind.strong());
    if flagged {
        reasons.extend(
            [ctx.many_changes(), ctx.incompressible()]
                .into_iter()
                .flatten(),
        );
    }
    Verdict {
        flagged,
        onset: reasons
            .iter()
            .any(|r| r.kind == ReasonKind::SlowEncryption)
            .then(|| ctx.onset.clone())
            .flatten(),
        reasons,
        learning: false,
    }
}

pub(crate) fn verdict_at(
    history: &[Observation],
    verdicts: &[Verdict],
    i: usize,
    t: &Thresholds,
) -> Verdict {
    verdict(
        &history[..i],
        &verdicts[..i.min(verdicts.len())],
        &history[i],
        t,
    )
}

fn flagged(verdicts: &[Verdict], i: usize) -> bool {
    verdicts.get(i).is_some_and(|v| v.flagged)
}

/// Everything the rules share: tonight's numbers and the baselines.
struct Context<'a> {
    t: &'a Thresholds,
    s: &'a BackupSignals,
    sh: Shares,
    transitions: Baseline,
    extensions: Baseline,
    changed: Baseline,
    incompressible: Baseline,
    /// Transition shares of the window's earlier unflagged nights, oldest first.
    window: Vec<(&'a str, f64, u64)>,
    onset: Option<String>,
}

impl<'a> Context<'a> {
    fn new(
        history: &'a [Observation],
        verdicts: &[Verdict],
        current: &'a Observation,
        t: &'a Thresholds,
    ) -> Context<'a> {
        // The window's nights stay out of the baseline, so a slow attack
        // cannot teach the baseline that encryption is normal.
        let window_start = history
            .len()
            .saturating_sub(t.window_nights.saturating_sub(1));
        let clean: Vec<&Observation> = history[..window_start]
            .iter()
            .enumerate()
            .filter(|(i, o)| o.signals.has_parent && !flagged(verdicts, *i))
            .map(|(_, o)| o)
            .collect();
        let clean = &clean[clean.len().saturating_sub(t.history)..];
        let day = baseline::weekday(current.time, t.utc_offset_minutes);
        let base = |f: fn(&Shares) -> f64| base_of(clean, day, t, f);
        let window = history[window_start..]
            .iter()
            .enumerate()
            .filter(|(i, o)| o.signals.has_parent && !flagged(verdicts, window_start + i))
            .map(|(_, o)| {
                let sh = Shares::of(&o.signals);
                (
                    o.snapshot.as_str(),
                    sh.entropy_transitions,
                    o.signals.entropy_transitions,
                )
            })
            .collect();
        let mut ctx = Context {
            t,
            s: &current.signals,
            sh: Shares::of(&current.signals),
            transitions: base(|s| s.entropy_transitions),
            extensions: base(|s| s.extension_changed),
            changed: base(|s| s.changed),
            incompressible: base(|s| s.incompressible),
            window,
            onset: None,
        };
        ctx.onset = ctx.find_onset();
        ctx
    }

    /// A night of the window counts as part of a slow attack when at least
    /// two files turned random and their share is above the baseline by
    /// half the window's per-night budget (`window_share / window_nights /
    /// 2`): one VM image block turning random is noise, not an onset.
    fn elevated(&self, share: f64, files: u64) -> bool {
        let budget = self.t.window_share / self.t.window_nights.max(1) as f64 / 2.0;
        files >= 2 && share > self.transitions.median + (3.0 * self.transitions.spread).max(budget)
    }

    /// The unbroken run of elevated nights just before tonight, oldest
    /// first; its first night is where the damage probably began.
    fn elevated_run(&self) -> &[(&'a str, f64, u64)] {
        let n = self
            .window
            .iter()
            .rev()
            .take_while(|(_, share, files)| self.elevated(*share, *files))
            .count();
        &self.window[self.window.len() - n..]
    }

    fn find_onset(&self) -> Option<String> {
        self.elevated_run().first().map(|(id, _, _)| id.to_string())
    }

    fn reason(
        &self,
        kind: ReasonKind,
        value: f64,
        files: u64,
        limit: f64,
        b: Option<&Baseline>,
    ) -> Reason {
        let baseline = b.filter(|b| b.samples > 0).map(|b| b.median);
        let (english, indonesian) = words::reason(kind, value, files, limit, baseline, self.s);
        Reason {
            kind,
            value,
            files,
            limit,
            baseline,
            english,
            indonesian,
        }
    }

    fn transitions(&self) -> Option<Reason> {
        let limit = self
            .transitions
            .limit(self.t.mad_k, self.t.transition_share);
        (self.sh.entropy_transitions > limit
            && self.s.entropy_transitions >= self.t.transition_min_files)
            .then(|| {
                self.reason(
                    ReasonKind::EntropyTransitions,
                    self.sh.entropy_transitions,
                    self.s.entropy_transitions,
                    limit,
                    Some(&self.transitions),
                )
            })
    }

    fn slow(&self) -> Option<Reason> {
        let m = self.transitions.median;
        let run = self.elevated_run();
        let excess: f64 = run.iter().map(|(_, s, _)| (s - m).max(0.0)).sum::<f64>()
            + (self.sh.entropy_transitions - m).max(0.0);
        let files: u64 = run.iter().map(|(_, _, n)| n).sum::<u64>() + self.s.entropy_transitions;
        // A one-night attack is the transitions rule's; this one is for
        // damage spread over consecutive nights that each stayed under its
        // limit.
        (!run.is_empty()
            && self.elevated(self.sh.entropy_transitions, self.s.entropy_transitions)
            && excess >= self.t.window_share
            && files >= self.t.window_min_files)
            .then(|| {
                self.reason(
                    ReasonKind::SlowEncryption,
                    excess,
                    files,
                    self.t.window_share,
                    Some(&self.transitions),
                )
            })
    }

    fn extensions(&self) -> Option<Reason> {
        let limit = self.extensions.limit(self.t.mad_k, self.t.extension_share);
        (self.sh.extension_changed > limit
            && self.s.extension_changed >= self.t.extension_min_files)
            .then(|| {
                self.reason(
                    ReasonKind::ExtensionChanges,
                    self.sh.extension_changed,
                    self.s.extension_changed,
                    limit,
                    Some(&self.extensions),
                )
            })
    }

    fn known_extensions(&self) -> Option<Reason> {
        let n = self.s.known_extension_files;
        let min = self.t.known_extension_min_files;
        (n >= min).then(|| self.reason(ReasonKind::KnownExtensions, n as f64, n, min as f64, None))
    }

    fn notes(&self) -> Option<Reason> {
        let dirs = self.s.ransom_note_dirs;
        let min = self.t.ransom_note_min_dirs;
        (dirs >= min).then(|| {
            self.reason(
                ReasonKind::RansomNotes,
                dirs as f64,
                self.s.ransom_notes,
                min as f64,
                None,
            )
        })
    }

    fn replacement(&self) -> Option<Reason> {
        let s = self.s;
        (self.sh.deleted >= self.t.replacement_share
            && s.files_deleted >= self.t.replacement_min_files
            && s.new_files_random * 2 >= s.files_deleted)
            .then(|| {
                self.reason(
                    ReasonKind::MassReplacement,
                    self.sh.deleted,
                    s.files_deleted,
                    self.t.replacement_share,
                    None,
                )
            })
    }

    fn many_changes(&self) -> Option<Reason> {
        let limit = self
            .changed
            .limit(self.t.supporting_k, 2.0 * self.changed.median);
        (self.sh.changed > limit && self.s.files_changed > 0).then(|| {
            self.reason(
                ReasonKind::ManyChanges,
                self.sh.changed,
                self.s.files_changed,
                limit,
                Some(&self.changed),
            )
        })
    }

    fn incompressible(&self) -> Option<Reason> {
        let limit = self.incompressible.limit(self.t.supporting_k, 0.5);
        (self.sh.incompressible > limit).then(|| {
            self.reason(
                ReasonKind::IncompressibleData,
                self.sh.incompressible,
                0,
                limit,
                Some(&self.incompressible),
            )
        })
    }
}

fn base_of(
    clean: &[&Observation],
    day: Weekday,
    t: &Thresholds,
    f: fn(&Shares) -> f64,
) -> Baseline {
    if clean.len() < t.min_history {
        return Baseline::default();
    }
    let samples: Vec<(Weekday, f64)> = clean
        .iter()
        .map(|o| {
            (
                baseline::weekday(o.time, t.utc_offset_minutes),
                f(&Shares::of(&o.signals)),
            )
        })
        .collect();
    baseline::baseline(&samples, day, t.weekly_min_weeks, t.weekly_strength)
}
