//! Clearing a retention hold: an operator (or administrator) and the PD's
//! custodian must both agree, in either order, as two different people.
//! The first agreement is recorded as `hold.clear.request`, the second
//! ends the hold and is recorded as `hold.clear`; each in the transaction
//! that changes the hold.

use cadang_proto::api::Role;
use redb::WriteTransaction;
use serde_json::json;

use crate::api::App;
use crate::audit::NewEntry;
use crate::error::Error;
use crate::state::anomalies::{self, source_key, Approval, HoldRecord};
use crate::state::users::UserRecord;

#[derive(Debug, thiserror::Error)]
pub enum ClearError {
    #[error("source {0} has no retention hold in force (nothing to clear); `cadang anomalies --pd PD` lists the holds")]
    NoHold(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    State(#[from] Error),
}

/// Which half of the agreement a person gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Operator,
    Custodian,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Operator => "operator",
            Side::Custodian => "custodian",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cleared {
    pub hold: HoldRecord,
    /// True when this call ended the hold.
    pub cleared: bool,
    /// The side still to agree, when the hold stays on.
    pub waiting_for: Option<Side>,
}

/// The side a user speaks for on `pd`, or why not. A person holding both
/// an operator role and the PD's custodian role speaks for the side not yet
/// given (the other must then come from someone else).
pub fn side_of(user: &UserRecord, pd: &str, hold: &HoldRecord) -> Result<Side, ClearError> {
    let operator = user
        .roles
        .iter()
        .any(|r| matches!(r, Role::Admin | Role::Operator));
    let custodian = user
        .roles
        .iter()
        .any(|r| matches!(r, Role::Custodian { pds } if pds.iter().any(|p| p == pd)));
    match (operator, custodian) {
        (true, true) if hold.operator_clear.is_some() => Ok(Side::Custodian),
        (true, _) => Ok(Side::Operator),
        (false, true) => Ok(Side::Custodian),
        (false, false) => Err(ClearError::Forbidden(format!(
            "{} may not clear the hold: that needs an operator and PD {pd}'s own Wali Data (custodian); auditors and custodians of other PDs can only look",
            user.name
        ))),
    }
}

/// The audit actor of a person: the NIP, or the user name without one.
pub fn actor(user: &UserRecord) -> String {
    user.nip.clone().unwrap_or_else(|| user.name.clone())
}

/// Records `user`'s agreement to clear the hold on `pd/host/source`.
pub fn clear(
    app: &App,
    txn: &WriteTransaction,
    user: &UserRecord,
    pd: &str,
    host: &str,
    source: &str,
) -> Result<Cleared, ClearError> {
    let key = source_key(pd, host, source);
    let mut hold = anomalies::hold(txn, &key)?
        .filter(HoldRecord::active)
        .ok_or_else(|| ClearError::NoHold(key.clone()))?;
    let side = side_of(user, pd, &hold)?;
    let other = match side {
        Side::Operator => hold.custodian_clear.as_ref(),
        Side::Custodian => hold.operator_clear.as_ref(),
    };
    if let Some(o) = other {
        let same_nip = o.nip.is_some() && o.nip == user.nip;
        if o.user == user.name || same_nip {
            return Err(ClearError::Forbidden(format!(
                "{} already agreed as the other side; clearing a hold needs two different people (an operator and the Wali Data)",
                user.name
            )));
        }
    }
    let now = app.clock.now();
    let approval = Approval {
        user: user.name.clone(),
        nip: user.nip.clone(),
        at: now,
    };
    match side {
        Side::Operator => hold.operator_clear = Some(approval),
        Side::Custodian => hold.custodian_clear = Some(approval),
    }
    let done = hold.operator_clear.is_some() && hold.custodian_clear.is_some();
    if done {
        hold.cleared = Some(now);
    }
    anomalies::put_hold(txn, &hold)?;
    let (action, outcome) = if done {
        ("hold.clear", "ok")
    } else {
        ("hold.clear.request", "waiting")
    };
    let waiting_for = (!done).then_some(match side {
        Side::Operator => Side::Custodian,
        Side::Custodian => Side::Operator,
    });
    app.record_in(
        txn,
        NewEntry::new(&actor(user), action, &key, outcome).detail(json!({
            "as": side.name(),
            "user": user.name,
            "flagged_snapshots": hold.flagged_snapshots,
            "hold_since": hold.since,
            "waiting_for": waiting_for.map(Side::name),
        })),
    )?;
    Ok(Cleared {
        hold,
        cleared: done,
        waiting_for,
    })
}
