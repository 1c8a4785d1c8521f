//! Robust baselines: median and MAD of one signal over a source's recent
//! clean backups, per weekday when the history shows a weekly rhythm.
//!
//! Median and MAD rather than mean and standard deviation because the
//! history itself contains bursts (month-end, updates): one wild night must
//! not move what "normal" is.

use chrono::{DateTime, Datelike, Duration, Utc, Weekday};

/// Scales a MAD to a standard deviation for normally distributed data, so
/// `k` in the thresholds reads as "k sigmas".
const MAD_SCALE: f64 = 1.4826;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Baseline {
    pub median: f64,
    /// Median absolute deviation, already scaled to a sigma.
    pub spread: f64,
    /// Samples it was computed from (0: no baseline yet).
    pub samples: usize,
    /// True when only backups of the same weekday were used.
    pub weekday: bool,
}

impl Baseline {
    /// The level a value must exceed to leave this baseline by `k` spreads,
    /// never below `floor`.
    pub fn limit(&self, k: f64, floor: f64) -> f64 {
        if self.samples == 0 {
            return floor;
        }
        (self.median + k * self.spread).max(floor)
    }
}

pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn plain(values: &[f64]) -> Baseline {
    let mut v = values.to_vec();
    let m = median(&mut v);
    let mut dev: Vec<f64> = values.iter().map(|x| (x - m).abs()).collect();
    Baseline {
        median: m,
        spread: MAD_SCALE * median(&mut dev),
        samples: values.len(),
        weekday: false,
    }
}

/// The weekday of a backup in the PD's zone (`offset` from UTC), since a
/// night backup at 01:00 WIB is still "Monday night" for the office.
pub fn weekday(t: DateTime<Utc>, offset_minutes: i32) -> Weekday {
    (t + Duration::minutes(offset_minutes as i64)).weekday()
}

/// Share of the variance explained by the weekday (η²): near 1 when every
/// Monday looks alike and unlike Sundays, near 0 without weekly rhythm.
fn weekly_strength(samples: &[(Weekday, f64)], min_per_day: usize) -> Option<f64> {
    let mut groups: [Vec<f64>; 7] = Default::default();
    for (d, v) in samples {
        groups[d.num_days_from_monday() as usize].push(*v);
    }
    if groups.iter().any(|g| g.len() < min_per_day) {
        return None;
    }
    let n = samples.len() as f64;
    let mean = samples.iter().map(|(_, v)| v).sum::<f64>() / n;
    let total: f64 = samples.iter().map(|(_, v)| (v - mean).powi(2)).sum();
    if total <= f64::EPSILON {
        return Some(0.0);
    }
    let between: f64 = groups
        .iter()
        .map(|g| {
            let m = g.iter().sum::<f64>() / g.len() as f64;
            g.len() as f64 * (m - mean).powi(2)
        })
        .sum();
    Some(between / total)
}

/// Baseline of one signal for a backup falling on `day`. `samples` are the
/// recent clean backups' (weekday, value), oldest first.
pub fn baseline(
    samples: &[(Weekday, f64)],
    day: Weekday,
    min_weeks: usize,
    strength: f64,
) -> Baseline {
    let values: Vec<f64> = samples.iter().map(|(_, v)| *v).collect();
    let rhythmic = weekly_strength(samples, min_weeks).is_some_and(|s| s >= strength);
    if rhythmic {
        let same: Vec<f64> = samples
            .iter()
            .filter(|(d, _)| *d == day)
            .map(|(_, v)| *v)
            .collect();
        return Baseline {
            weekday: true,
            ..plain(&same)
        };
    }
    plain(&values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_ignore_one_wild_value() {
        let s: Vec<(Weekday, f64)> = [1.0, 1.2, 0.9, 1.1, 50.0, 1.0, 0.95]
            .iter()
            .map(|v| (Weekday::Mon, *v))
            .collect();
        let b = plain(&s.iter().map(|x| x.1).collect::<Vec<_>>());
        assert_eq!(b.median, 1.0);
        assert!(b.spread < 0.2, "{b:?}");
        assert_eq!(b.limit(6.0, 0.0), b.median + 6.0 * b.spread);
        assert_eq!(Baseline::default().limit(6.0, 0.02), 0.02);
    }

    #[test]
    fn a_weekly_rhythm_gives_each_weekday_its_own_baseline() {
        // Busy weekdays (10% changed), quiet weekends (0.5%), four weeks.
        let days = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ];
        let mut s = Vec::new();
        for w in 0..4 {
            for d in days {
                let busy = !matches!(d, Weekday::Sat | Weekday::Sun);
                let v = if busy { 0.10 } else { 0.005 } + w as f64 * 0.001;
                s.push((d, v));
            }
        }
        let sun = baseline(&s, Weekday::Sun, 3, 0.5);
        assert!(sun.weekday);
        assert!(sun.median < 0.01, "{sun:?}");
        let mon = baseline(&s, Weekday::Mon, 3, 0.5);
        assert!(mon.median > 0.09, "{mon:?}");
        // Without enough weeks, one baseline for all days.
        let short = baseline(&s[..14], Weekday::Sun, 3, 0.5);
        assert!(!short.weekday);
    }

    #[test]
    fn weekday_is_taken_in_the_pd_zone() {
        // 2026-12-06 20:00 UTC is Monday 03:00 WIB.
        let t = DateTime::parse_from_rfc3339("2026-12-06T20:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(weekday(t, 0), Weekday::Sun);
        assert_eq!(weekday(t, 420), Weekday::Mon);
    }
}
