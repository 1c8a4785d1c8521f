//! Restore requests (table `restores`): the request as people see it, and
//! the sealed envelope once the custodian approved. The envelope is
//! age-encrypted to the restoring agent; the controller can neither read it
//! nor ever holds the identity inside it.

use cadang_proto::restore::{RestoreRequest, RestoreState};
use chrono::{DateTime, Utc};
use redb::{ReadTransaction, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{get_json, put_json, scan_prefix, JsonTable, META};
use crate::error::Result;

pub const RESTORES: JsonTable = JsonTable::new("restores");

/// One stored request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreRecord {
    pub request: RestoreRequest,
    /// The armored envelope from the approval; removed when the job ends
    /// (the agent refuses a second use anyway).
    #[serde(default)]
    pub envelope: Option<String>,
}

/// A new, sortable request id (`rr-000000000042`).
pub fn next_id(txn: &WriteTransaction) -> Result<String> {
    let mut meta = txn.open_table(META)?;
    let n: u64 = get_json(&meta, "restore_seq")?.unwrap_or(0) + 1;
    put_json(&mut meta, "restore_seq", &n)?;
    Ok(format!("rr-{n:012}"))
}

pub fn get(txn: &ReadTransaction, id: &str) -> Result<Option<RestoreRecord>> {
    get_json(&txn.open_table(RESTORES)?, id)
}

/// The record as the write transaction sees it.
pub fn get_in(txn: &WriteTransaction, id: &str) -> Result<Option<RestoreRecord>> {
    get_json(&txn.open_table(RESTORES)?, id)
}

pub fn put(txn: &WriteTransaction, rec: &RestoreRecord) -> Result<()> {
    put_json(&mut txn.open_table(RESTORES)?, &rec.request.id, rec)
}

/// Every request `visible` lets through, newest first.
pub fn list(txn: &ReadTransaction, visible: impl Fn(&str) -> bool) -> Result<Vec<RestoreRecord>> {
    let mut out: Vec<RestoreRecord> = scan_prefix(&txn.open_table(RESTORES)?, "")?
        .into_iter()
        .map(|(_, r): (String, RestoreRecord)| r)
        .filter(|r| visible(&r.request.pd))
        .collect();
    out.reverse();
    Ok(out)
}

/// Whether `req` has run out of time at `now` without reaching the agent:
/// a pending request, or an approved one whose envelope was not handed
/// over yet. A delivered envelope is the agent's to refuse (it checks the
/// expiry itself, by its own clock).
pub fn is_overdue(req: &RestoreRequest, now: DateTime<Utc>) -> bool {
    let waiting = match req.state {
        RestoreState::Pending => true,
        RestoreState::Approved => req.delivered.is_none(),
        _ => false,
    };
    waiting && req.expires <= now
}

/// Requests [`is_overdue`] at `now` (for the sweep).
pub fn overdue(txn: &ReadTransaction, now: DateTime<Utc>) -> Result<Vec<String>> {
    Ok(list(txn, |_| true)?
        .into_iter()
        .filter(|r| is_overdue(&r.request, now))
        .map(|r| r.request.id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadang_proto::restore::{RestoreWhat, Signoff};

    fn req(state: RestoreState, expires: &str) -> RestoreRequest {
        let at: DateTime<Utc> = "2026-12-03T00:00:00Z".parse().unwrap();
        RestoreRequest {
            id: "rr-1".into(),
            pd: "DUKCAPIL".into(),
            snapshot: "ab".into(),
            snapshot_time: None,
            snapshot_host: None,
            what: RestoreWhat::Whole,
            agent_id: "a".into(),
            agent_host: "h".into(),
            target: "/t".into(),
            in_place: false,
            reason: "r".into(),
            expires: expires.parse().unwrap(),
            state,
            filed: Signoff {
                actor: "1".into(),
                name: "op".into(),
                at,
            },
            approved: None,
            rejected: None,
            reject_reason: None,
            cancelled: None,
            job_id: None,
            delivered: None,
            finished: None,
            report: None,
            message: String::new(),
        }
    }

    #[test]
    fn only_waiting_requests_become_overdue() {
        let now: DateTime<Utc> = "2026-12-04T00:00:00Z".parse().unwrap();
        assert!(is_overdue(
            &req(RestoreState::Pending, "2026-12-04T00:00:00Z"),
            now
        ));
        assert!(!is_overdue(
            &req(RestoreState::Pending, "2026-12-04T00:00:01Z"),
            now
        ));
        let mut approved = req(RestoreState::Approved, "2026-12-03T12:00:00Z");
        assert!(is_overdue(&approved, now));
        approved.delivered = Some(now);
        assert!(!is_overdue(&approved, now), "the agent checks it");
        assert!(!is_overdue(
            &req(RestoreState::Done, "2026-12-03T12:00:00Z"),
            now
        ));
    }
}
