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
    #[error("source {0} has no retention hold in force, so there is nothing to clear; check the source's name: only a source the ransomware early warning flagged is held")]
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

/// Adds `user`'s agreement as `side` to `hold`; whether the hold is now
/// cleared, or whose agreement is still missing. Refused when the other
/// side's agreement came from the same person (same name or same NIP).
pub fn agree(
    hold: &mut HoldRecord,
    user: &UserRecord,
    side: Side,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(bool, Option<Side>), ClearError> {
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
    let waiting = match side {
        Side::Operator => Side::Custodian,
        Side::Custodian => Side::Operator,
    };
    Ok((done, (!done).then_some(waiting)))
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
    let (done, waiting_for) = agree(&mut hold, user, side, app.clock.now())?;
    anomalies::put_hold(txn, &hold)?;
    let (action, outcome) = if done {
        ("hold.clear", "ok")
    } else {
        ("hold.clear.request", "waiting")
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, nip: Option<&str>, roles: Vec<Role>) -> UserRecord {
        UserRecord::new(name, nip.map(str::to_string), roles, chrono::Utc::now())
    }

    fn hold() -> HoldRecord {
        HoldRecord {
            pd: "DINKES".into(),
            host: "fs".into(),
            source: "berkas".into(),
            created: chrono::Utc::now(),
            since: chrono::Utc::now(),
            flagged_snapshots: vec!["s3".into()],
            last_clean: Some("s2".into()),
            summary_en: String::new(),
            summary_id: String::new(),
            operator_clear: None,
            custodian_clear: None,
            cleared: None,
        }
    }

    #[test]
    fn only_operators_and_the_pds_own_custodian_may_agree() {
        let h = hold();
        let op = user("op", Some("199001152015031002"), vec![Role::Operator]);
        let admin = user("admin", None, vec![Role::Admin]);
        let wali = user(
            "wali",
            Some("198111072008042001"),
            vec![Role::Custodian {
                pds: vec!["DINKES".into()],
            }],
        );
        let other = user(
            "wali2",
            Some("198702202012122003"),
            vec![Role::Custodian {
                pds: vec!["DISDIK".into()],
            }],
        );
        let auditor = user("insp", None, vec![Role::Auditor]);
        assert_eq!(side_of(&op, "DINKES", &h).unwrap(), Side::Operator);
        assert_eq!(side_of(&admin, "DINKES", &h).unwrap(), Side::Operator);
        assert_eq!(side_of(&wali, "DINKES", &h).unwrap(), Side::Custodian);
        assert!(matches!(
            side_of(&other, "DINKES", &h),
            Err(ClearError::Forbidden(_))
        ));
        assert!(matches!(
            side_of(&auditor, "DINKES", &h),
            Err(ClearError::Forbidden(_))
        ));
        // Someone who is both speaks for the side still missing.
        let both = user(
            "both",
            Some("199001152015031002"),
            vec![
                Role::Operator,
                Role::Custodian {
                    pds: vec!["DINKES".into()],
                },
            ],
        );
        assert_eq!(side_of(&both, "DINKES", &h).unwrap(), Side::Operator);
        let mut given = h.clone();
        given.operator_clear = Some(Approval {
            user: "op".into(),
            nip: None,
            at: chrono::Utc::now(),
        });
        assert_eq!(side_of(&both, "DINKES", &given).unwrap(), Side::Custodian);
    }

    #[test]
    fn the_hold_ends_when_two_different_people_have_agreed_in_either_order() {
        let now = chrono::Utc::now();
        let op = user("op", Some("199001152015031002"), vec![Role::Operator]);
        let wali = user(
            "wali",
            Some("198111072008042001"),
            vec![Role::Custodian {
                pds: vec!["DINKES".into()],
            }],
        );
        for order in [
            [(&op, Side::Operator), (&wali, Side::Custodian)],
            [(&wali, Side::Custodian), (&op, Side::Operator)],
        ] {
            let mut h = hold();
            let (done, waiting) = agree(&mut h, order[0].0, order[0].1, now).unwrap();
            assert!(!done && h.active());
            assert_eq!(waiting, Some(order[1].1));
            let (done, waiting) = agree(&mut h, order[1].0, order[1].1, now).unwrap();
            assert!(done && !h.active() && waiting.is_none());
        }
        // One person with both roles cannot clear alone, nor a second
        // account with the same NIP.
        let both = user(
            "both",
            Some("199001152015031002"),
            vec![
                Role::Operator,
                Role::Custodian {
                    pds: vec!["DINKES".into()],
                },
            ],
        );
        let mut h = hold();
        agree(&mut h, &both, Side::Operator, now).unwrap();
        assert!(matches!(
            agree(&mut h, &both, Side::Custodian, now),
            Err(ClearError::Forbidden(_))
        ));
        let twin = user(
            "op-as-wali",
            Some("199001152015031002"),
            vec![Role::Custodian {
                pds: vec!["DINKES".into()],
            }],
        );
        assert!(matches!(
            agree(&mut h, &twin, Side::Custodian, now),
            Err(ClearError::Forbidden(_))
        ));
        assert!(h.active());
    }
}
