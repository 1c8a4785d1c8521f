//! The retention hold a flag puts on a source: forget/prune must keep every
//! snapshot taken before the damage began until an operator and the PD's
//! custodian clear it. Pure: the retention job asks [`RetentionHold::protects`]
//! for each snapshot it was about to forget.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{last_clean, Observation, Verdict};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionHold {
    /// The first flagged backup.
    pub flagged_snapshot: String,
    /// Snapshots taken before this instant are kept: the start of the first
    /// flagged backup, or of its onset for a slow attack.
    pub since: DateTime<Utc>,
    /// The snapshot to restore ("cadangan bersih terakhir").
    pub last_clean: Option<String>,
}

impl RetentionHold {
    /// The hold a source's history calls for; `None` when nothing is flagged.
    pub fn from_history(history: &[Observation], verdicts: &[Verdict]) -> Option<RetentionHold> {
        let first = verdicts.iter().position(|v| v.flagged)?;
        let flagged = history.get(first)?;
        let onset = verdicts[first]
            .onset
            .as_ref()
            .and_then(|s| history.iter().find(|o| &o.snapshot == s));
        let since = onset.map_or(flagged.time, |o| o.time.min(flagged.time));
        Some(RetentionHold {
            flagged_snapshot: flagged.snapshot.clone(),
            since,
            last_clean: last_clean(history, verdicts).map(|o| o.snapshot.clone()),
        })
    }

    /// True when retention must keep a snapshot taken at `time`.
    pub fn protects(&self, time: DateTime<Utc>) -> bool {
        time < self.since
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn a_hold_protects_everything_before_the_damage_and_names_the_clean_snapshot() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 19, 0, 0).unwrap();
        let history: Vec<Observation> = (0..5)
            .map(|d| Observation {
                snapshot: format!("s{d}"),
                time: t0 + Duration::days(d),
                signals: Default::default(),
            })
            .collect();
        let mut verdicts = vec![Verdict::default(); 5];
        assert!(RetentionHold::from_history(&history, &verdicts).is_none());
        verdicts[3].flagged = true;
        let h = RetentionHold::from_history(&history, &verdicts).unwrap();
        assert_eq!(h.flagged_snapshot, "s3");
        assert_eq!(h.last_clean.as_deref(), Some("s2"));
        assert!(h.protects(t0 + Duration::days(2)));
        assert!(
            h.protects(t0 - Duration::days(300)),
            "old monthly snapshots too"
        );
        assert!(!h.protects(t0 + Duration::days(4)));
        // A slow attack's onset moves the hold back.
        verdicts[3].onset = Some("s1".into());
        let h = RetentionHold::from_history(&history, &verdicts).unwrap();
        assert_eq!(h.last_clean.as_deref(), Some("s0"));
        assert!(h.protects(t0 + Duration::hours(12)));
        assert!(!h.protects(t0 + Duration::days(1)));
    }
}
