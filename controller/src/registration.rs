//! Registering a PD: the custodian's machine sends the repository id, the
//! data recipient and the repository secret from the credential file of
//! `cadang repo init`. Never an identity or a passphrase: the request has no
//! field for one, and a secret that does not parse is refused.

use cadang_core::keys::{DataRecipient, RepoSecret};
use cadang_proto::api::{RegisterPd, RegisterPdResponse};
use chrono::{DateTime, Utc};
use redb::WriteTransaction;

use crate::error::Result;
use crate::state::pds::{self, PdRecord};

/// Checks the fields alone.
pub fn check(req: &RegisterPd) -> std::result::Result<(), String> {
    let pd_ok = !req.pd.is_empty()
        && req.pd.len() <= 64
        && req
            .pd
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !pd_ok {
        return Err(format!(
            "PD code {:?} must be letters, digits, '-' or '_'",
            req.pd
        ));
    }
    req.repo_id
        .parse::<cadang_core::id::Id>()
        .map_err(|e| format!("repo_id: {e}"))?;
    DataRecipient::parse(&req.data_recipient).map_err(|e| format!("data_recipient: {e}"))?;
    if req.repo_secret_json.contains("AGE-SECRET-KEY") {
        return Err("this looks like an identity, not a repository secret; the controller never takes an identity".into());
    }
    RepoSecret::from_json(req.repo_secret_json.as_bytes())
        .map_err(|e| format!("repo_secret_json: {e}"))?;
    Ok(())
}

/// Records the PD; the same repository again is fine, another one is
/// refused (it would orphan the agents enrolled for the first).
pub fn register(
    txn: &WriteTransaction,
    req: &RegisterPd,
    by: &str,
    now: DateTime<Utc>,
) -> Result<std::result::Result<RegisterPdResponse, String>> {
    let existing = {
        let table = txn.open_table(crate::state::PDS)?;
        crate::state::get_json::<PdRecord>(&table, &req.pd)?
    };
    if let Some(old) = &existing {
        if old.repo_id != req.repo_id {
            return Ok(Err(format!(
                "PD {} is registered with repository {} already; a second repository would orphan its agents",
                req.pd, old.repo_id
            )));
        }
    }
    pds::put(
        txn,
        &PdRecord {
            pd: req.pd.clone(),
            repo_id: req.repo_id.clone(),
            data_recipient: req.data_recipient.clone(),
            repo_secret_json: req.repo_secret_json.clone(),
            registered: now,
            registered_by: by.to_string(),
        },
    )?;
    Ok(Ok(RegisterPdResponse {
        pd: req.pd.clone(),
        repo_id: req.repo_id.clone(),
        new: existing.is_none(),
    }))
}

/// The `pd.register` audit entry: ok (new, or the same repository again),
/// or refused (another repository). The repository secret never goes in.
pub fn entry(
    req: &RegisterPd,
    actor: &str,
    result: &std::result::Result<RegisterPdResponse, String>,
) -> crate::audit::NewEntry {
    use serde_json::json;
    match result {
        Ok(r) => crate::audit::NewEntry::new(actor, "pd.register", &req.pd, "ok")
            .detail(json!({ "pd": req.pd, "repo_id": req.repo_id, "data_recipient": req.data_recipient, "new": r.new })),
        Err(reason) => crate::audit::NewEntry::new(actor, "pd.register", &req.pd, "refused")
            .detail(json!({ "pd": req.pd, "repo_id": req.repo_id, "reason": reason })),
    }
}
