//! One-time enrollment tokens. Only the SHA-256 of the secret is stored:
//! a copy of the state file enrolls nobody.

use cadang_proto::agent::AgentRole;
use chrono::{DateTime, Utc};
use redb::WriteTransaction;
use serde::{Deserialize, Serialize};

use super::{get_json, hash_hex, put_json, TOKENS};
use crate::error::Result;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    pub host: String,
    pub pd: String,
    pub role: AgentRole,
    pub created: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    #[serde(default)]
    pub used: Option<DateTime<Utc>>,
    #[serde(default)]
    pub used_by: Option<String>,
}

/// Why a token was refused, in words for the operator at the PD server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("this enrollment token is unknown to the controller (mistyped, or issued by another controller); ask the controller's administrator for a new one")]
    Unknown,
    #[error("this enrollment token was already used (at {0}); tokens work once: ask the operator for a new one")]
    Used(DateTime<Utc>),
    #[error("this enrollment token expired at {0}; ask the operator for a new one")]
    Expired(DateTime<Utc>),
    #[error("this enrollment token is for host {expected}, not {found}; use the token made for this host")]
    WrongHost { expected: String, found: String },
}

pub fn insert(txn: &WriteTransaction, secret: &[u8; 32], rec: &TokenRecord) -> Result<()> {
    put_json(&mut txn.open_table(TOKENS)?, &hash_hex(secret), rec)
}

/// Checks a token for `host` at `now` and marks it used by `agent_id`,
/// inside the caller's transaction (which commits only if enrollment
/// succeeds).
pub fn consume(
    txn: &WriteTransaction,
    secret: &[u8; 32],
    host: &str,
    agent_id: &str,
    now: DateTime<Utc>,
) -> Result<Result<TokenRecord, TokenRefusal>> {
    let key = hash_hex(secret);
    let mut table = txn.open_table(TOKENS)?;
    let Some(mut rec) = get_json::<TokenRecord>(&table, &key)? else {
        return Ok(Err(TokenRefusal::Unknown));
    };
    if let Some(t) = rec.used {
        return Ok(Err(TokenRefusal::Used(t)));
    }
    if rec.expires <= now {
        return Ok(Err(TokenRefusal::Expired(rec.expires)));
    }
    if rec.host != host {
        return Ok(Err(TokenRefusal::WrongHost {
            expected: rec.host,
            found: host.to_string(),
        }));
    }
    rec.used = Some(now);
    rec.used_by = Some(agent_id.to_string());
    put_json(&mut table, &key, &rec)?;
    Ok(Ok(rec))
}

/// Looks a token up without consuming it.
pub fn peek(txn: &redb::ReadTransaction, secret: &[u8; 32]) -> Result<Option<TokenRecord>> {
    get_json(&txn.open_table(TOKENS)?, &hash_hex(secret))
}
