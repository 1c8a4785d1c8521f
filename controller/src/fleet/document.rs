//! The fleet status document as `GET /api/v1/fleet` serves it, built
//! ahead of its callers.
//!
//! At 10,000 agents the document is a few MB of JSON; building and
//! serialising it took ~30 ms of CPU per call, so on a loaded two-core
//! controller the p99 of the call was 84 ms against a 50 ms target. With
//! `[fleet] status_refresh_ms` set (`controller init` writes 1000), a
//! background task rebuilds it that often while someone has asked for it
//! in the last minute, and a call hands out the newest one: its
//! `generated` field says when it was built, at most a refresh period (and
//! one build) ago. With 0, the default of a config that does not set it,
//! each call builds its own, exactly as of that moment.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use cadang_proto::api::FleetStatus;
use tokio::sync::watch;

use crate::api::App;
use crate::error::{Error, Result};

/// Nobody asked for this long: stop rebuilding.
const IDLE_AFTER: Duration = Duration::from_secs(60);

/// One built document: the status and its JSON.
pub struct StatusDocument {
    pub status: FleetStatus,
    json: Bytes,
    built: Instant,
}

/// The newest document and when it was last asked for.
#[derive(Default)]
pub struct DocumentCache {
    newest: Mutex<Option<Arc<StatusDocument>>>,
    asked: Mutex<Option<Instant>>,
}

impl DocumentCache {
    /// The newest document if it was built less than `max_age` ago.
    fn fresh(&self, max_age: Duration) -> Option<Arc<StatusDocument>> {
        let newest = self.newest.lock().unwrap_or_else(|p| p.into_inner());
        newest
            .as_ref()
            .filter(|d| d.built.elapsed() < max_age)
            .cloned()
    }

    fn keep(&self, doc: Arc<StatusDocument>) {
        let mut newest = self.newest.lock().unwrap_or_else(|p| p.into_inner());
        // Two builds may race; the later one built wins.
        if newest.as_ref().is_none_or(|d| d.built <= doc.built) {
            *newest = Some(doc);
        }
    }

    fn mark_asked(&self) {
        *self.asked.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn asked_within(&self, within: Duration) -> bool {
        self.asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < within)
    }
}

/// Builds the document for everyone (every PD).
pub fn build(app: &App) -> Result<StatusDocument> {
    let built = Instant::now();
    let status = super::status(app, |_| true)?;
    let json = to_json(&status)?;
    Ok(StatusDocument {
        status,
        json,
        built,
    })
}

fn to_json(status: &FleetStatus) -> Result<Bytes> {
    serde_json::to_vec(status)
        .map(Bytes::from)
        .map_err(|e| Error::State(format!("fleet status could not be written as JSON: {e}")))
}

/// The fleet status JSON for a caller who sees the PDs `visible` admits.
pub fn status_json(app: &App, visible: impl Fn(&str) -> bool) -> Result<Bytes> {
    let refresh = app.config.fleet.status_refresh();
    if refresh.is_zero() {
        return to_json(&super::status(app, visible)?);
    }
    let cache = &app.fleet.documents;
    cache.mark_asked();
    // A missed refresh or two (a busy pool) still serves; after that the
    // caller builds one, so a document is never much older than promised.
    let doc = match cache.fresh(refresh * 3) {
        Some(doc) => doc,
        None => {
            let doc = Arc::new(build(app)?);
            cache.keep(doc.clone());
            doc
        }
    };
    if doc.status.pds.iter().all(|p| visible(&p.pd)) {
        return Ok(doc.json.clone());
    }
    // Every PD is in the document, so its part for a narrower caller is
    // the same as one built for them.
    to_json(&FleetStatus {
        generated: doc.status.generated,
        pds: doc
            .status
            .pds
            .iter()
            .filter(|p| visible(&p.pd))
            .cloned()
            .collect(),
    })
}

/// Rebuilds the document every refresh period while it is asked for.
pub async fn refresh_every(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let every = app.config.fleet.status_refresh();
    if every.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if !app.fleet.documents.asked_within(IDLE_AFTER) {
            continue;
        }
        let a = app.clone();
        match tokio::task::spawn_blocking(move || build(&a)).await {
            Ok(Ok(doc)) => app.fleet.documents.keep(Arc::new(doc)),
            Ok(Err(e)) => tracing::warn!(error = %e, "building fleet status failed"),
            Err(e) => tracing::warn!(error = %e, "the fleet status build crashed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(age: Duration) -> Arc<StatusDocument> {
        Arc::new(StatusDocument {
            status: FleetStatus::default(),
            json: Bytes::from_static(b"{}"),
            built: Instant::now() - age,
        })
    }

    #[test]
    fn a_document_is_served_only_while_younger_than_the_age_asked() {
        let cache = DocumentCache::default();
        assert!(cache.fresh(Duration::from_secs(3)).is_none());
        cache.keep(doc(Duration::from_secs(2)));
        assert!(cache.fresh(Duration::from_secs(3)).is_some());
        assert!(cache.fresh(Duration::from_secs(1)).is_none());
    }

    #[test]
    fn an_older_build_finishing_late_does_not_replace_a_newer_one() {
        let cache = DocumentCache::default();
        cache.keep(doc(Duration::from_millis(100)));
        cache.keep(doc(Duration::from_secs(5)));
        assert!(cache.fresh(Duration::from_secs(1)).is_some());
    }

    #[test]
    fn rebuilding_stops_when_nobody_asked_lately() {
        let cache = DocumentCache::default();
        assert!(!cache.asked_within(IDLE_AFTER));
        cache.mark_asked();
        assert!(cache.asked_within(IDLE_AFTER));
    }
}
