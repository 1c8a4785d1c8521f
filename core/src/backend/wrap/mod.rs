//! Decorators around any [`Backend`]: retries, rate limits and fault
//! injection, put together in one place by [`wrap_backend`] (after restic's
//! `wrapBackend`). Every program that opens a store (CLI, agent daemon,
//! controller) opens the raw backend and hands it to `wrap_backend` with
//! the options of its situation; nothing else stacks decorators.
//!
//! The stack, from the store outwards:
//!
//! ```text
//! caller → retry → rate limit → faults → backend (directory, S3)
//! ```
//!
//! * **faults** sit next to the store, so an injected failure looks to
//!   everything above it exactly like the store failing;
//! * **rate limit** paces every attempt, because a retried write sends its
//!   bytes again;
//! * **retry** is outermost, so one logical call is retried as a whole.
//!
//! The durability contract of [`Backend`] holds through every layer: none of
//! them ever hands the inner store a part of a file, so a file is written
//! whole or not at all, and a failed write leaves nothing a reader sees
//! (the inner store's own guarantee). The retry layer adds the one thing a
//! retry needs: a create-only write whose answer was lost is recognised by
//! its bytes (see [`retry`]).

pub mod faults;
mod limit;
pub mod retry;

use std::sync::Arc;

use super::Backend;
use crate::ratelimit::RateLimiter;

pub use faults::{FaultBackend, FaultPlan, FaultSpecError, FAULTS_ENV};
pub use limit::RateLimitedBackend;
pub use retry::{RetryBackend, RetryPolicy};

/// What to wrap a store in.
#[derive(Clone, Debug)]
pub struct WrapOptions {
    /// Retries of transient errors; `None` for stores whose client already
    /// retries (the S3 SDK does: standard mode, backoff with jitter), so the
    /// two never multiply.
    pub retry: Option<RetryPolicy>,
    /// Paces the bytes of every write (`--bwlimit`).
    pub write_limit: Option<Arc<RateLimiter>>,
    /// Paces the bytes of every read.
    pub read_limit: Option<Arc<RateLimiter>>,
    /// Test only: deterministic failures, see [`faults`].
    pub faults: Option<FaultPlan>,
}

impl Default for WrapOptions {
    /// Retries with the default policy; no pacing, no faults.
    fn default() -> WrapOptions {
        WrapOptions {
            retry: Some(RetryPolicy::default()),
            write_limit: None,
            read_limit: None,
            faults: None,
        }
    }
}

impl WrapOptions {
    /// Nothing at all: the store as it is.
    pub fn none() -> WrapOptions {
        WrapOptions {
            retry: None,
            ..WrapOptions::default()
        }
    }

    /// The defaults, plus the fault plan in `CADANG_FAULTS` if it is set
    /// (a test hook; see [`faults`]). A plan that does not parse is an
    /// error rather than silently no faults, so a test cannot pass by
    /// injecting nothing.
    pub fn from_env() -> Result<WrapOptions, FaultSpecError> {
        Ok(WrapOptions {
            faults: FaultPlan::from_env()?,
            ..WrapOptions::default()
        })
    }
}

/// Wraps `inner` in the decorators `options` ask for (see the module
/// documentation for their order). With nothing asked, `inner` itself comes
/// back.
pub fn wrap_backend(inner: Arc<dyn Backend>, options: &WrapOptions) -> Arc<dyn Backend> {
    let mut backend = inner;
    if let Some(plan) = &options.faults {
        tracing::warn!(
            store = %backend.location(),
            plan = %plan,
            "fault injection is on for this store ({FAULTS_ENV}); it is meant for tests only"
        );
        backend = Arc::new(FaultBackend::new(backend, plan.clone()));
    }
    if options.write_limit.is_some() || options.read_limit.is_some() {
        backend = Arc::new(RateLimitedBackend::new(
            backend,
            options.write_limit.clone(),
            options.read_limit.clone(),
        ));
    }
    if let Some(policy) = &options.retry {
        backend = Arc::new(RetryBackend::new(backend, policy.clone()));
    }
    backend
}

/// A small deterministic generator (SplitMix64) for jitter and seeded
/// fault chances: the same seed gives the same sequence, on every machine.
#[derive(Debug)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    /// Seeded from the operating system, for jitter that differs between
    /// processes (so that many agents do not retry in step).
    pub(crate) fn from_os() -> SplitMix {
        let mut b = [0u8; 8];
        // Jitter needs no secrecy: a failed read of the OS generator only
        // makes processes retry in step, which is harmless.
        let _ = getrandom::fill(&mut b);
        SplitMix(u64::from_le_bytes(b))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
