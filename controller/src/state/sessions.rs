//! Console sessions. The session id (256 random bits) lives only in the
//! person's cookie; the state keys the session by its SHA-256, so a copy of
//! the state file signs nobody in. A session ends at its absolute expiry,
//! after an idle gap, at logout, or when its user is disabled or gets a
//! new password.

use chrono::{DateTime, Duration, Utc};
use redb::{ReadTransaction, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{get_json, hash_hex, put_json, scan_prefix, SESSIONS};
use crate::error::{Error, Result};

/// A session lasts at most this long, however busy.
pub const ABSOLUTE_HOURS: i64 = 12;
/// A session unused this long is over.
pub const IDLE_MINUTES: i64 = 30;
/// `last_seen` is written at most this often (a page view is not a commit).
pub const TOUCH_SECONDS: i64 = 60;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionRecord {
    pub user: String,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Sent in every state-changing form (hidden field `csrf`) or the
    /// `X-CSRF-Token` header; useless without the session cookie.
    pub csrf: String,
    /// How the person signed in: `password` or `sso`.
    #[serde(default)]
    pub method: String,
}

impl SessionRecord {
    pub fn expires(&self) -> DateTime<Utc> {
        let absolute = self.created + Duration::hours(ABSOLUTE_HOURS);
        let idle = self.last_seen + Duration::minutes(IDLE_MINUTES);
        absolute.min(idle)
    }

    pub fn valid_at(&self, now: DateTime<Utc>) -> bool {
        now < self.expires()
    }
}

/// 32 random bytes, URL-safe base64.
pub fn random_secret() -> Result<String> {
    use base64::Engine;
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)
        .map_err(|e| Error::State(format!("the OS random source failed: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Opens a session for `user`; gives the id for the cookie (shown once,
/// never stored) and the record. Expired sessions are swept on the way.
pub fn create(
    txn: &WriteTransaction,
    user: &str,
    method: &str,
    now: DateTime<Utc>,
) -> Result<(String, SessionRecord)> {
    sweep(txn, now)?;
    let id = random_secret()?;
    let rec = SessionRecord {
        user: user.to_string(),
        created: now,
        last_seen: now,
        csrf: random_secret()?,
        method: method.to_string(),
    };
    put_json(
        &mut txn.open_table(SESSIONS)?,
        &hash_hex(id.as_bytes()),
        &rec,
    )?;
    Ok((id, rec))
}

/// The session of cookie value `id`, if it exists and has not expired at
/// `now` (read only; see [`touch`]).
pub fn find(txn: &ReadTransaction, id: &str, now: DateTime<Utc>) -> Result<Option<SessionRecord>> {
    let rec: Option<SessionRecord> =
        get_json(&txn.open_table(SESSIONS)?, &hash_hex(id.as_bytes()))?;
    Ok(rec.filter(|r| r.valid_at(now)))
}

/// Whether the session's `last_seen` is old enough to be written again.
pub fn needs_touch(rec: &SessionRecord, now: DateTime<Utc>) -> bool {
    (now - rec.last_seen).num_seconds() >= TOUCH_SECONDS
}

/// Marks the session used at `now` (idle expiry starts again), if it is
/// still valid.
pub fn touch(txn: &WriteTransaction, id: &str, now: DateTime<Utc>) -> Result<()> {
    let key = hash_hex(id.as_bytes());
    let mut table = txn.open_table(SESSIONS)?;
    let rec: Option<SessionRecord> = get_json(&table, &key)?;
    if let Some(mut rec) = rec.filter(|r| r.valid_at(now)) {
        rec.last_seen = now;
        put_json(&mut table, &key, &rec)?;
    }
    Ok(())
}

/// Ends one session (logout); `None` when there was none.
pub fn remove(txn: &WriteTransaction, id: &str) -> Result<Option<SessionRecord>> {
    let mut table = txn.open_table(SESSIONS)?;
    let old = table
        .remove(hash_hex(id.as_bytes()).as_str())?
        .map(|v| serde_json::from_slice::<SessionRecord>(v.value()));
    old.transpose()
        .map_err(|e| Error::State(format!("session record: {e}")))
}

/// Ends every session of `user` (disabled, new password, new roles);
/// returns how many.
pub fn remove_user(txn: &WriteTransaction, user: &str) -> Result<usize> {
    remove_where(txn, |r| r.user == user)
}

/// Removes the sessions expired at `now`.
pub fn sweep(txn: &WriteTransaction, now: DateTime<Utc>) -> Result<usize> {
    remove_where(txn, |r| !r.valid_at(now))
}

fn remove_where(txn: &WriteTransaction, pred: impl Fn(&SessionRecord) -> bool) -> Result<usize> {
    let mut table = txn.open_table(SESSIONS)?;
    let doomed: Vec<String> = scan_prefix::<SessionRecord>(&table, "")?
        .into_iter()
        .filter(|(_, r)| pred(r))
        .map(|(k, _)| k)
        .collect();
    for k in &doomed {
        table.remove(k.as_str())?;
    }
    Ok(doomed.len())
}
