//! Latency samples and request-rate buckets, summarised as the targets ask:
//! 99th percentiles, and the peak requests per second.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct Samples(Mutex<Vec<Duration>>);

impl Samples {
    pub fn record(&self, d: Duration) {
        self.0.lock().expect("samples").push(d);
    }

    pub fn summary(&self) -> Summary {
        let mut v = self.0.lock().expect("samples").clone();
        v.sort();
        let pick = |q: f64| -> Duration {
            if v.is_empty() {
                return Duration::ZERO;
            }
            let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
            v[i]
        };
        Summary {
            count: v.len(),
            p50: pick(0.50),
            p99: pick(0.99),
            max: v.last().copied().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
            self.count,
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Requests per whole second since the bench started.
#[derive(Default)]
pub struct Rate(Mutex<BTreeMap<u64, u64>>);

impl Rate {
    pub fn hit(&self, second: u64) {
        *self.0.lock().expect("rate").entry(second).or_default() += 1;
    }

    /// The busiest second in `[from, to)` and its request count.
    pub fn peak(&self, from: u64, to: u64) -> (u64, u64) {
        self.0
            .lock()
            .expect("rate")
            .range(from..to)
            .max_by_key(|(_, n)| **n)
            .map(|(s, n)| (*s, *n))
            .unwrap_or((from, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_sample() {
        let s = Samples::default();
        for i in 1..=100 {
            s.record(Duration::from_millis(i));
        }
        let sum = s.summary();
        assert_eq!(sum.count, 100);
        assert_eq!(sum.p50, Duration::from_millis(50));
        assert_eq!(sum.p99, Duration::from_millis(99));
        assert_eq!(sum.max, Duration::from_millis(100));
    }

    #[test]
    fn peak_is_the_busiest_second_in_range() {
        let r = Rate::default();
        for (s, n) in [(1, 3), (2, 9), (5, 20)] {
            for _ in 0..n {
                r.hit(s);
            }
        }
        assert_eq!(r.peak(0, 4), (2, 9));
        assert_eq!(r.peak(0, 10), (5, 20));
        assert_eq!(r.peak(6, 10), (6, 0));
    }
}
