//! The entries of the controller's own flows (start and stop, policy
//! loads), and the actor strings of people: one place, so the actions and
//! their detail fields stay the same everywhere (`docs/format.md` §12).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::entry::{NewEntry, CONTROLLER_ACTOR};
use crate::api::App;
use crate::error::Result;
use crate::state::users::UserRecord;

/// How long shipping the log at shutdown may take before the controller
/// stops anyway (the next start ships the rest).
pub const SHIP_AT_SHUTDOWN: Duration = Duration::from_secs(30);

/// A person as an actor: the NIP (operators and custodians always have
/// one), or the user name for those without (admins, auditors).
pub fn person_actor(user: &UserRecord) -> String {
    match &user.nip {
        Some(nip) if !nip.is_empty() => nip.clone(),
        _ => user.name.clone(),
    }
}

/// `controller.start`, and the policy set it loaded (`policy.load`, ok
/// with its fingerprint, or refused: nothing is scheduled then).
pub fn started(app: &App) -> Result<()> {
    app.record(
        NewEntry::new(CONTROLLER_ACTOR, "controller.start", "controller", "ok").detail(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "listen": app.config.listen,
        })),
    )?;
    let dir = app.config.resolve(&app.config.policy_dir);
    let entry = match app.policies() {
        Some(set) => NewEntry::new(CONTROLLER_ACTOR, "policy.load", "policies", "ok").detail(
            json!({ "fingerprint": set.fingerprint, "pds": set.pds.keys().collect::<Vec<_>>(), "dir": dir.display().to_string() }),
        ),
        None => NewEntry::new(CONTROLLER_ACTOR, "policy.load", "policies", "refused")
            .detail(json!({ "dir": dir.display().to_string(), "reason": "the policy files have errors; nothing is scheduled" })),
    };
    app.record(entry)?;
    Ok(())
}

/// A policy reload by `actor`: the new fingerprint (and the one it
/// replaces), or the refusal with how many errors.
pub fn policy_reload(
    actor: &str,
    previous: Option<&str>,
    outcome: std::result::Result<&str, usize>,
) -> NewEntry {
    match outcome {
        Ok(fingerprint) => NewEntry::new(actor, "policy.reload", "policies", "ok")
            .detail(json!({ "fingerprint": fingerprint, "previous": previous })),
        Err(errors) => NewEntry::new(actor, "policy.reload", "policies", "refused")
            .detail(json!({ "errors": errors, "running": previous })),
    }
}

/// `controller.stop`, then the log to the stores (bounded by
/// [`SHIP_AT_SHUTDOWN`]), so the DR site holds it up to the stop.
pub async fn stopping(app: &Arc<App>) {
    if let Err(e) = app.record(NewEntry::new(
        CONTROLLER_ACTOR,
        "controller.stop",
        "controller",
        "ok",
    )) {
        tracing::error!(error = %e, "the stop could not be written to the audit log");
    }
    if tokio::time::timeout(SHIP_AT_SHUTDOWN, super::ship::ship(app))
        .await
        .is_err()
    {
        tracing::warn!(
            "writing the audit log to the stores took too long at shutdown; the next start writes the rest"
        );
    }
}
