//! A byte-rate limiter for transfers between sites (`--bwlimit`).
//!
//! A leaky bucket: a grant of `n` bytes may go once the bytes before it have
//! "drained" at the rate, so the bytes sent by time `t` never exceed
//! `rate × t` plus one grant, plus a credit of 50 ms for pauses (so no
//! second carries more than 105% of the rate plus one grant). The grain is the caller's: the S3 backend
//! paces its upload bodies in 64 KiB slices (so no second carries more than
//! the rate plus 64 KiB); replication to a directory paces whole files.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Idle time that may be made up afterwards: 5% of a second.
const CREDIT: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub struct RateLimiter {
    bytes_per_sec: f64,
    /// When the bytes granted so far will have drained.
    next_free: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        RateLimiter {
            bytes_per_sec: bytes_per_sec.max(1) as f64,
            next_free: Mutex::new(None),
        }
    }

    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec as u64
    }

    /// Books `n` bytes and returns when they may be sent.
    pub fn reserve(&self, n: u64) -> Instant {
        let mut next = self.next_free.lock().expect("not poisoned");
        let now = Instant::now();
        // Up to CREDIT of idle time is made up later (a pause while the
        // next file is read and signed), so the average holds; it bounds a
        // second's bytes to the rate plus 5% plus one grant.
        let earliest = now.checked_sub(CREDIT).unwrap_or(now);
        let start = next.map_or(now, |t| t.max(earliest));
        *next = Some(start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec));
        start
    }

    /// Waits until `n` more bytes may be sent.
    pub async fn acquire(&self, n: u64) {
        tokio::time::sleep_until(self.reserve(n)).await;
    }
}

/// Parses `20MiB/s`, `500KiB/s`, `1.5MB/s`, `800k`, or plain bytes per second.
pub fn parse_rate(text: &str) -> Option<u64> {
    let t = text.trim().trim_end_matches("/s").trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = num * mult;
    (v >= 1.0 && v.is_finite()).then_some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("20MiB/s"), Some(20 * 1024 * 1024));
        assert_eq!(parse_rate("500KiB/s"), Some(500 * 1024));
        assert_eq!(parse_rate("1.5MB/s"), Some(1_500_000));
        assert_eq!(parse_rate("4096"), Some(4096));
        assert_eq!(parse_rate("fast"), None);
        assert_eq!(parse_rate("0"), None);
        assert_eq!(parse_rate("10 parsecs"), None);
    }

    /// With tokio's paused clock: 40 files of 4 MiB at 20 MiB/s take 8 s of
    /// virtual time (±1 file), and no 1 s window starts more than the rate
    /// plus one file.
    #[tokio::test(start_paused = true)]
    async fn paces_to_the_rate() {
        let rate = 20 * 1024 * 1024u64;
        let file = 4 * 1024 * 1024u64;
        let limiter = RateLimiter::new(rate);
        let t0 = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..40 {
            limiter.acquire(file).await;
            starts.push(t0.elapsed().as_secs_f64());
        }
        let total = (40 * file) as f64;
        let elapsed = starts.last().unwrap() + file as f64 / rate as f64;
        let avg = total / elapsed;
        assert!(
            (avg / rate as f64 - 1.0).abs() < 0.05,
            "average {avg} vs {rate}"
        );
        for (i, s) in starts.iter().enumerate() {
            let in_window = starts[i..].iter().take_while(|t| **t < s + 1.0).count() as u64;
            assert!(
                in_window * file <= rate + file,
                "window at {s}: {in_window} files"
            );
        }
    }

    /// After a pause, at most the 50 ms credit is made up: a burst stays
    /// within 5% of a second's worth, and a long pause is not banked.
    #[tokio::test(start_paused = true)]
    async fn pauses_earn_a_bounded_credit() {
        let rate = 1024 * 1024u64;
        let limiter = RateLimiter::new(rate);
        limiter.acquire(rate).await; // one second's worth, drained at t=1
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t0 = Instant::now();
        let mut sent = 0u64;
        while limiter.reserve(4096) < t0 + Duration::from_secs(1) {
            sent += 4096;
        }
        assert!(
            sent as f64 <= rate as f64 * 1.06,
            "{sent} bytes in one second after a pause"
        );
        assert!(
            sent as f64 >= rate as f64 * 1.04,
            "{sent}: the credit was not granted"
        );
    }
}
