//! A byte-rate limiter for transfers between sites (`--bwlimit`).
//!
//! Leaky bucket at the granularity of whole files: a transfer of `n` bytes
//! may start once the bytes before it have "drained" at the rate, so the
//! bytes started by time `t` never exceed `rate × t` plus one file. Stores
//! take whole files (a pack is one atomic write), so a single file is the
//! finest grain the limiter can pace; with 16 MiB packs and tens of MiB/s
//! the average holds, but a one-second window can see one pack early.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

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

    /// Waits until `n` more bytes may be sent.
    pub async fn acquire(&self, n: u64) {
        let start = {
            let mut next = self.next_free.lock().await;
            let now = Instant::now();
            let start = next.map_or(now, |t| t.max(now));
            *next = Some(start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec));
            start
        };
        tokio::time::sleep_until(start).await;
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
}
