//! Time as the engine sees it. Production uses the wall clock; tests use a
//! [`ManualClock`] they move by hand, so a schedule over three nights or a
//! retry backoff of minutes is checked without waiting for it.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;

#[async_trait::async_trait]
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Returns at `t` (or at once if past). ManualClock returns when advanced past `t`.
    async fn sleep_until(&self, t: DateTime<Utc>);
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, t: DateTime<Utc>) {
        // Sleep in bounded steps and re-read the wall clock: a tokio sleep
        // runs on the monotonic clock, which does not follow an NTP step or a
        // suspended VM, and a nightly slot must not drift by that much.
        const STEP: std::time::Duration = std::time::Duration::from_secs(30);
        loop {
            let left = t - Utc::now();
            let Ok(left) = left.to_std() else { return };
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(STEP)).await;
        }
    }
}

/// A clock that moves only when told to. Every sleeper whose instant is
/// reached by [`ManualClock::set`] or [`ManualClock::advance`] wakes up.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    changed: watch::Sender<DateTime<Utc>>,
    /// How many tasks are inside `sleep_until` right now: lets a test wait
    /// until the code under test has gone to sleep before moving time.
    sleepers: watch::Sender<usize>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
            changed: watch::channel(start).0,
            sleepers: watch::channel(0).0,
        }
    }

    /// Moves the clock to `t` (backwards too: a test may model a clock step).
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = t;
        self.changed.send_replace(t);
    }

    pub fn advance(&self, by: Duration) {
        let t = self.now() + by;
        self.set(t);
    }

    /// Number of tasks currently waiting in `sleep_until`.
    pub fn sleepers(&self) -> usize {
        *self.sleepers.borrow()
    }

    /// Waits (in real time, yielding to the runtime) until at least `n`
    /// tasks sleep on this clock. For tests: "the retry is now waiting".
    pub async fn wait_for_sleepers(&self, n: usize) {
        let mut rx = self.sleepers.subscribe();
        let _ = rx.wait_for(|count| *count >= n).await;
    }
}

/// Counts a task as sleeping for as long as it lives, including when the
/// sleeping future is dropped (a cancelled job).
struct SleeperGuard<'a>(&'a watch::Sender<usize>);

impl<'a> SleeperGuard<'a> {
    fn new(counter: &'a watch::Sender<usize>) -> Self {
        counter.send_modify(|n| *n += 1);
        SleeperGuard(counter)
    }
}

impl Drop for SleeperGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[async_trait::async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn sleep_until(&self, t: DateTime<Utc>) {
        let mut rx = self.changed.subscribe();
        if *rx.borrow_and_update() >= t {
            return;
        }
        let _guard = SleeperGuard::new(&self.sleepers);
        // The sender lives as long as `self`, so `wait_for` only ends when
        // the clock reaches `t`.
        let _ = rx.wait_for(|now| *now >= t).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn manual_sleep_returns_only_when_advanced_past() {
        let clock = Arc::new(ManualClock::new(at("2026-01-01T00:00:00Z")));
        let c = clock.clone();
        let sleeper = tokio::spawn(async move {
            c.sleep_until(at("2026-01-01T01:00:00Z")).await;
            c.now()
        });
        clock.wait_for_sleepers(1).await;
        clock.advance(Duration::minutes(59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        assert_eq!(clock.sleepers(), 1);
        clock.advance(Duration::minutes(1));
        assert_eq!(sleeper.await.unwrap(), at("2026-01-01T01:00:00Z"));
        assert_eq!(clock.sleepers(), 0);
    }

    #[tokio::test]
    async fn past_instants_return_at_once() {
        let clock = ManualClock::new(at("2026-01-01T00:00:00Z"));
        clock.sleep_until(at("2025-12-31T00:00:00Z")).await;
        SystemClock
            .sleep_until(Utc::now() - Duration::seconds(1))
            .await;
    }
}
