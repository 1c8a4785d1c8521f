//! From a policy's `[anomaly]` settings to the verdict's [`Thresholds`]:
//! the source's settings over the PD's over the built-in values.

use cadang_policies::model::{AnomalyPolicy, PdPolicy};

use super::Thresholds;

/// η² can never reach this: weekday baselines are never used.
const NEVER_WEEKLY: f64 = 2.0;

/// Applies `pd`'s `[anomaly]` (and the source's, when `host`/`source` is
/// in the policy) to `t`.
pub fn apply(t: &mut Thresholds, pd: &PdPolicy, host: &str, source: &str) {
    let from_source = pd
        .hosts
        .iter()
        .filter(|h| h.name == host)
        .flat_map(|h| &h.sources)
        .find(|s| s.name == source)
        .map(|s| &s.anomaly);
    apply_settings(t, from_source.unwrap_or(&pd.anomaly));
}

pub fn apply_settings(t: &mut Thresholds, a: &AnomalyPolicy) {
    if let Some(n) = a.history {
        t.history = n as usize;
    }
    if let Some(n) = a.min_history {
        t.min_history = n as usize;
    }
    if let Some(k) = a.margin {
        t.mad_k = k;
    }
    if let Some(s) = a.entropy_share {
        t.transition_share = s;
    }
    if let Some(s) = a.extension_share {
        t.extension_share = s;
    }
    if let Some(n) = a.slow_nights {
        t.window_nights = n as usize;
    }
    if let Some(s) = a.slow_share {
        t.window_share = s;
    }
    if let Some(n) = a.min_files {
        t.transition_min_files = u64::from(n);
        t.extension_min_files = u64::from(n);
        // A slow attack is summed over nights: twice the one-night minimum,
        // as in the built-in values (10 and 20).
        t.window_min_files = 2 * u64::from(n);
    }
    if a.weekday_rhythm == Some(false) {
        t.weekly_strength = NEVER_WEEKLY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_keys_keep_the_built_in_values_and_set_ones_win() {
        let mut t = Thresholds::default();
        apply_settings(&mut t, &AnomalyPolicy::default());
        assert_eq!(t, Thresholds::default());
        let a = AnomalyPolicy {
            margin: Some(8.0),
            entropy_share: Some(0.05),
            min_files: Some(4),
            weekday_rhythm: Some(false),
            min_history: Some(3),
            ..Default::default()
        };
        apply_settings(&mut t, &a);
        assert_eq!(t.mad_k, 8.0);
        assert_eq!(t.transition_share, 0.05);
        assert_eq!((t.transition_min_files, t.window_min_files), (4, 8));
        assert!(t.weekly_strength > 1.0, "weekday baselines off");
        assert_eq!(t.min_history, 3);
        assert_eq!(t.history, Thresholds::default().history);
    }
}
