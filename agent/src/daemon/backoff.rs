//! Reconnect delays: capped exponential backoff with full jitter (a uniform
//! draw between zero and the cap). After a controller restart thousands of
//! agents then spread their reconnects over the whole window instead of
//! arriving in waves.

use std::time::Duration;

pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min: min.max(Duration::from_millis(1)),
            max: max.max(min),
            attempt: 0,
        }
    }

    /// After a success: the next failure starts from `min` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The ceiling of the next delay: `min * 2^attempt`, at most `max`.
    pub fn cap(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt, drawn from the system's random
    /// source.
    pub fn next_delay(&mut self) -> Duration {
        let mut b = [0u8; 8];
        cadang_core::keys::fill_random(&mut b);
        self.next_delay_with(u64::from_le_bytes(b))
    }

    /// As [`Backoff::next_delay`] with a given random draw (for tests).
    pub fn next_delay_with(&mut self, random: u64) -> Duration {
        let cap = self.cap().as_millis() as u64;
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(random % (cap + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_doubles_up_to_the_maximum() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let caps: Vec<u64> = (0..9)
            .map(|_| {
                let c = b.cap().as_secs();
                b.next_delay_with(0);
                c
            })
            .collect();
        assert_eq!(caps, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.reset();
        assert_eq!(b.cap(), Duration::from_secs(1));
    }

    #[test]
    fn delays_are_jittered_and_never_above_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..20 {
            b.next_delay_with(0);
        }
        let delays: Vec<Duration> = (0..200).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(60)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 150, "full jitter spreads the delays");
        let mean = delays.iter().map(|d| d.as_millis()).sum::<u128>() / 200;
        assert!((15_000..45_000).contains(&mean), "mean {mean} ms");
        // Many attempts never overflow.
        for _ in 0..1000 {
            assert!(b.next_delay() <= Duration::from_secs(60));
        }
    }
}
