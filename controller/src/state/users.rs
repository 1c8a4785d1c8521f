//! People and their API tokens (stored as SHA-256 only).

use cadang_proto::api::Role;
use chrono::{DateTime, Utc};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{get_json, hash_hex, put_json, API_TOKENS, USERS};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserRecord {
    pub name: String,
    #[serde(default)]
    pub nip: Option<String>,
    pub role: Role,
    pub created: DateTime<Utc>,
}

const TOKEN_PREFIX: &str = "cadang-api-1.";

/// A fresh random API token (text shown once).
pub fn new_token() -> String {
    use base64::Engine;
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source is available");
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

/// Operators and custodians act on PDs' data: they must be identifiable
/// civil servants (NIP, 18 digits).
pub fn check_user(name: &str, nip: Option<&str>, role: &Role) -> Result<()> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(Error::Invalid(
            "a user needs a name (1-200 characters)".into(),
        ));
    }
    let needs_nip = matches!(role, Role::Operator | Role::Custodian { .. });
    match nip {
        Some(n) if !(n.len() == 18 && n.bytes().all(|b| b.is_ascii_digit())) => {
            Err(Error::Invalid(format!(
                "NIP {n:?} is not 18 digits (birth date, appointment month, sex digit, serial)"
            )))
        }
        None if needs_nip => Err(Error::Invalid(format!(
            "a {} must have an NIP (18 digits)",
            role.kind()
        ))),
        _ => Ok(()),
    }
}

/// Creates a user with a new token; refuses an existing name.
pub fn create(txn: &WriteTransaction, user: &UserRecord) -> Result<String> {
    check_user(&user.name, user.nip.as_deref(), &user.role)?;
    let mut users = txn.open_table(USERS)?;
    if users.get(user.name.as_str())?.is_some() {
        return Err(Error::Invalid(format!("user {} already exists", user.name)));
    }
    put_json(&mut users, &user.name, user)?;
    let token = new_token();
    txn.open_table(API_TOKENS)?
        .insert(hash_hex(token.as_bytes()).as_str(), user.name.as_bytes())?;
    Ok(token)
}

/// The user a bearer token belongs to.
pub fn by_token(txn: &ReadTransaction, token: &str) -> Result<Option<UserRecord>> {
    let key = hash_hex(token.trim().as_bytes());
    let name = match txn.open_table(API_TOKENS)?.get(key.as_str())? {
        Some(v) => String::from_utf8_lossy(v.value()).into_owned(),
        None => return Ok(None),
    };
    get_json(&txn.open_table(USERS)?, &name)
}
