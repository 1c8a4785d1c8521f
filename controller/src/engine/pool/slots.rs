//! The slots an attempt waits for before it runs, and how long a failed
//! attempt waits before the next.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use super::{cancellable, lock, PoolConfig, Shared};
use crate::engine::sitejob::SiteJob;

/// Capped exponential backoff with a stable jitter in its upper half (two
/// jobs that failed together do not retry together).
pub(super) fn backoff(config: &PoolConfig, job_id: &str, attempt: u32) -> chrono::Duration {
    let base = config.backoff_base.as_millis() as u64;
    let cap = config.backoff_cap.as_millis() as u64;
    let exp = base.saturating_mul(1u64 << (attempt.saturating_sub(1)).min(32));
    let full = exp.min(cap);
    let half = full / 2;
    let spread = if half == 0 {
        0
    } else {
        let seed = format!("{job_id}/{attempt}");
        seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        }) % (half + 1)
    };
    chrono::Duration::milliseconds((half + spread) as i64)
}

/// Slots an attempt holds while it runs; dropped in reverse order.
pub(super) struct Slots {
    _worker: OwnedSemaphorePermit,
    _stores: Vec<OwnedSemaphorePermit>,
    _repositories: Vec<OwnedMutexGuard<()>>,
}

pub(super) async fn acquire_slots(shared: &Arc<Shared>, job: &SiteJob) -> Option<Slots> {
    // Every store in name order (so two jobs over the same two stores
    // cannot deadlock): the PD's repository there first, then a store slot;
    // a worker last, so a job waiting for a busy repository holds no worker.
    let mut names: Vec<&str> = job.kind.stores().iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut repositories = Vec::with_capacity(names.len());
    for name in &names {
        let key = format!("{}\u{0}{name}", job.pd);
        let m = keyed(&shared.repositories, &key, || Arc::new(AsyncMutex::new(())));
        repositories.push(cancellable(&shared.cancel, m.lock_owned()).await?);
    }
    let mut stores = Vec::with_capacity(names.len());
    for name in names {
        let per_store = shared.config.per_store.max(1);
        let sem = keyed(&shared.per_store, name, || {
            Arc::new(Semaphore::new(per_store))
        });
        stores.push(
            cancellable(&shared.cancel, sem.acquire_owned())
                .await?
                .ok()?,
        );
    }
    let worker = cancellable(&shared.cancel, shared.workers.clone().acquire_owned())
        .await?
        .ok()?;
    Some(Slots {
        _worker: worker,
        _stores: stores,
        _repositories: repositories,
    })
}

fn keyed<T: Clone>(map: &Mutex<HashMap<String, T>>, key: &str, make: impl FnOnce() -> T) -> T {
    lock(map)
        .entry(key.to_string())
        .or_insert_with(make)
        .clone()
}
