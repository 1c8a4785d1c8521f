//! Shipping the log to the stores: a checkpoint now, then the signed
//! segments each store does not have yet, written once to
//! `cadang-audit/<first>-<last>.json` at the top of every configured store
//! (both sites), with the controller's public key beside them. The last
//! seq each store holds is remembered in the state (`audit_shipped`), so a
//! store that was down gets everything it missed when it is back.

use std::sync::Arc;

use redb::TableDefinition;

use super::entry::Checkpoint;
use super::segment::Segment;
use super::{AuditLog, Auditor, Result};
use crate::api::App;
use crate::state::State;

/// store name → the last seq written to it.
pub const AUDIT_SHIPPED: TableDefinition<'static, &'static str, u64> =
    TableDefinition::new("audit_shipped");
/// The controller's public report key (hex and a newline), beside the
/// segments: for a reader without `--key` (self-consistency only).
pub const KEY_FILE: &str = "controller-key.hex";
/// How often the log goes to the stores (controller clock), besides shutdown.
pub const SHIP_EVERY_MINUTES: i64 = 5;
/// A segment holds at most this many entries (more only when the
/// checkpoints are further apart).
pub const MAX_SEGMENT_ENTRIES: u64 = 10_000;

/// What one store got.
#[derive(Debug, Clone, PartialEq)]
pub struct Shipped {
    pub store: String,
    pub segments: usize,
    /// The last seq the store holds now.
    pub last_seq: u64,
    pub error: Option<String>,
}

/// The last seq written to `store` (0: nothing yet).
pub fn shipped(state: &State, store: &str) -> crate::error::Result<u64> {
    state.read(|txn| match txn.open_table(AUDIT_SHIPPED) {
        Ok(t) => Ok(t.get(store)?.map_or(0, |v| v.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(e.into()),
    })
}

fn set_shipped(state: &State, store: &str, seq: u64) -> crate::error::Result<()> {
    state.write(|txn| {
        let mut t = txn.open_table(AUDIT_SHIPPED)?;
        t.insert(store, seq)?;
        Ok(())
    })
}

/// The segments after entry `after`, each ending at a checkpoint, merged
/// up to [`MAX_SEGMENT_ENTRIES`] so a store gets few files, not one per
/// automatic checkpoint.
pub fn segments_since<L: AuditLog>(auditor: &Auditor<L>, after: u64) -> Result<Vec<Segment>> {
    let mut checkpoints: Vec<Checkpoint> = auditor
        .log()
        .checkpoints()?
        .into_iter()
        .filter(|c| c.seq > after)
        .collect();
    checkpoints.sort_by_key(|c| c.seq);
    let mut out = Vec::new();
    let mut first = after + 1;
    for (i, c) in checkpoints.iter().enumerate() {
        let next_too_far = checkpoints
            .get(i + 1)
            .is_none_or(|n| n.seq + 1 - first > MAX_SEGMENT_ENTRIES);
        if next_too_far {
            let entries = auditor.log().entries(first, c.seq)?;
            out.push(Segment::new(entries, c.clone()));
            first = c.seq + 1;
        }
    }
    Ok(out)
}

/// Checkpoints the log now and writes what each store lacks. Never fails
/// as a whole: each store's outcome is returned (and logged), so one
/// unreachable site does not keep the log from the other.
pub async fn ship(app: &Arc<App>) -> Vec<Shipped> {
    let a = app.clone();
    let checkpointed = tokio::task::spawn_blocking(move || a.audit.checkpoint(a.clock.now())).await;
    match checkpointed {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "audit checkpoint failed; segments are written up to the last one")
        }
        Err(e) => tracing::error!(error = %e, "audit checkpoint task failed"),
    }
    let mut out = Vec::new();
    for store in app.config.stores.keys() {
        let r = ship_to(app, store).await;
        match &r.error {
            Some(e) => {
                tracing::warn!(store = %r.store, error = %e, "the audit log could not be written to a store; it is retried at the next run")
            }
            None if r.segments > 0 => {
                tracing::info!(store = %r.store, segments = r.segments, last_seq = r.last_seq, "audit segments written")
            }
            None => {}
        }
        out.push(r);
    }
    out
}

async fn ship_to(app: &Arc<App>, store: &str) -> Shipped {
    let mut result = Shipped {
        store: store.to_string(),
        segments: 0,
        last_seq: 0,
        error: None,
    };
    let prepared = shipped(&app.state, store)
        .map_err(|e| e.to_string())
        .and_then(|after| {
            result.last_seq = after;
            segments_since(&app.audit, after).map_err(|e| e.to_string())
        });
    let segments = match prepared {
        Ok(s) => s,
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    };
    if segments.is_empty() {
        return result;
    }
    let key = format!("{}\n", app.audit.public_key().to_hex());
    let key_name = format!("{}/{KEY_FILE}", crate::publish::AUDIT_DIR);
    if let Err(e) = crate::publish::put_top(app, store, &key_name, key.into_bytes()).await {
        result.error = Some(e);
        return result;
    }
    for s in segments {
        if let Err(e) = crate::publish::put_top(app, store, &s.store_path(), s.to_bytes()).await {
            result.error = Some(e);
            return result;
        }
        if let Err(e) = set_shipped(&app.state, store, s.last_seq) {
            result.error = Some(e.to_string());
            return result;
        }
        result.segments += 1;
        result.last_seq = s.last_seq;
    }
    result
}

/// Ships every [`SHIP_EVERY_MINUTES`] on the controller's clock until
/// `stop`; the daemon ships once more at shutdown.
pub async fn ship_every(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let next = app.clock.now() + chrono::Duration::minutes(SHIP_EVERY_MINUTES);
        tokio::select! {
            _ = app.clock.sleep_until(next) => {}
            _ = stop.changed() => return,
        }
        ship(&app).await;
    }
}
