//! People: name, NIP, roles, password (argon2id), disabled flag, failed
//! logins and lockout; and their API tokens (stored as SHA-256 only).
//!
//! A record written before people had several roles holds one `role`; it
//! reads as a list of that one role, so no migration is needed.

use cadang_proto::api::Role;
use chrono::{DateTime, Duration, Utc};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Deserializer, Serialize};

use super::{get_json, hash_hex, put_json, scan_prefix, API_TOKENS, USERS};
use crate::error::{Error, Result};

/// Wrong passwords in a row that lock an account.
pub const LOCKOUT_AFTER: u32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT_MINUTES: i64 = 15;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserRecord {
    pub name: String,
    #[serde(default)]
    pub nip: Option<String>,
    #[serde(alias = "role", deserialize_with = "one_or_many")]
    pub roles: Vec<Role>,
    pub created: DateTime<Utc>,
    /// `argon2id$...` (see `console::password`); none: no console login
    /// (API token or single sign-on only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    /// Wrong passwords since the last good one (or the last lockout).
    #[serde(default)]
    pub failed_logins: u32,
    #[serde(default)]
    pub locked_until: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Role>),
    One(Role),
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<Role>, D::Error> {
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(v) => v,
        OneOrMany::One(r) => vec![r],
    })
}

impl UserRecord {
    /// A user with these roles and no password yet.
    pub fn new(name: &str, nip: Option<String>, roles: Vec<Role>, now: DateTime<Utc>) -> Self {
        UserRecord {
            name: name.trim().to_string(),
            nip,
            roles,
            created: now,
            password: None,
            disabled: false,
            failed_logins: 0,
            locked_until: None,
        }
    }

    /// Whether one of the roles is `kind` (`admin`, `operator`, ...).
    pub fn has(&self, kind: &str) -> bool {
        self.roles.iter().any(|r| r.kind() == kind)
    }

    /// Whether one of the roles is in `kinds`.
    pub fn has_any(&self, kinds: &[&str]) -> bool {
        kinds.iter().any(|k| self.has(k))
    }

    /// The role names, for messages (`operator, custodian`).
    pub fn kinds(&self) -> String {
        let names: Vec<&str> = self.roles.iter().map(Role::kind).collect();
        if names.is_empty() {
            "no role".into()
        } else {
            names.join(", ")
        }
    }

    /// Whether the user may see `pd`: every role but custodian sees all
    /// PDs; a custodian only theirs (`Role::covers_pd`).
    pub fn covers_pd(&self, pd: &str) -> bool {
        self.roles.iter().any(|r| r.covers_pd(pd))
    }

    /// Whether the user is the Wali Data of `pd` (approvals are theirs
    /// alone, an admin's rights do not include them).
    pub fn is_custodian_of(&self, pd: &str) -> bool {
        self.roles
            .iter()
            .any(|r| matches!(r, Role::Custodian { pds } if pds.iter().any(|p| p == pd)))
    }

    /// The PDs the user is custodian of.
    pub fn custodian_pds(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .roles
            .iter()
            .filter_map(|r| match r {
                Role::Custodian { pds } => Some(pds.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Who the audit log names: the NIP (civil servants are identified by
    /// it), else the user name.
    pub fn actor(&self) -> String {
        self.nip.clone().unwrap_or_else(|| self.name.clone())
    }

    /// Whether a login at `now` is refused because of a lockout.
    pub fn locked_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.locked_until.filter(|t| *t > now)
    }
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

/// Checks a user before it is stored: a name, a valid NIP when there is
/// one, and an NIP for operators and custodians (they act on PDs' data:
/// only identifiable civil servants may, Pasal 15(7)).
pub fn check_user(name: &str, nip: Option<&str>, roles: &[Role]) -> Result<()> {
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "a user needs a name (1-200 characters, no control characters)".into(),
        ));
    }
    if let Some(n) = nip {
        cadang_policies::nip::parse(n)
            .map_err(|e| Error::Invalid(format!("NIP of {name}: {e}")))?;
    }
    for role in roles {
        let needs_nip = matches!(role, Role::Operator | Role::Custodian { .. });
        if needs_nip && nip.is_none() {
            return Err(Error::Invalid(format!(
                "{name} cannot be {}: operators and custodians must have an NIP (18 digits); give the user's NIP, then the role",
                role.kind()
            )));
        }
        if let Role::Custodian { pds } = role {
            if pds.is_empty() || pds.iter().any(|p| p.trim().is_empty()) {
                return Err(Error::Invalid(format!(
                    "{name}: a custodian role names the PDs it covers (custodian:DUKCAPIL,DINKES)"
                )));
            }
        }
    }
    Ok(())
}

/// Creates a user with a new API token; refuses an existing name.
pub fn create(txn: &WriteTransaction, user: &UserRecord) -> Result<String> {
    check_user(&user.name, user.nip.as_deref(), &user.roles)?;
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

/// The user a bearer token belongs to (a disabled user's tokens work no
/// more).
pub fn by_token(txn: &ReadTransaction, token: &str) -> Result<Option<UserRecord>> {
    let key = hash_hex(token.trim().as_bytes());
    let name = match txn.open_table(API_TOKENS)?.get(key.as_str())? {
        Some(v) => String::from_utf8_lossy(v.value()).into_owned(),
        None => return Ok(None),
    };
    Ok(get(txn, &name)?.filter(|u| !u.disabled))
}

pub fn get(txn: &ReadTransaction, name: &str) -> Result<Option<UserRecord>> {
    get_json(&txn.open_table(USERS)?, name)
}

/// Every user, by name.
pub fn all(txn: &ReadTransaction) -> Result<Vec<UserRecord>> {
    Ok(scan_prefix(&txn.open_table(USERS)?, "")?
        .into_iter()
        .map(|(_, u)| u)
        .collect())
}

/// Changes a user inside the caller's transaction; the change is checked
/// as a new user would be.
pub fn update(
    txn: &WriteTransaction,
    name: &str,
    change: impl FnOnce(&mut UserRecord),
) -> Result<UserRecord> {
    let mut users = txn.open_table(USERS)?;
    let mut user: UserRecord = get_json(&users, name)?.ok_or_else(|| {
        Error::Invalid(format!(
            "there is no user {name:?}; check the name against the list of users (Users in the console, or `cadang user list`)"
        ))
    })?;
    change(&mut user);
    check_user(&user.name, user.nip.as_deref(), &user.roles)?;
    put_json(&mut users, name, &user)?;
    Ok(user)
}

/// What a wrong password did to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted; `left` more are allowed before the lockout.
    Counted { left: u32 },
    /// This failure locked the account until the time given.
    LockedNow(DateTime<Utc>),
}

/// Counts a wrong password (re-read inside the transaction, so two
/// failures at once are both counted); the [`LOCKOUT_AFTER`]th locks the
/// account for [`LOCKOUT_MINUTES`].
pub fn login_failed(txn: &WriteTransaction, name: &str, now: DateTime<Utc>) -> Result<Failure> {
    let mut outcome = Failure::Counted { left: 0 };
    update(txn, name, |u| {
        u.failed_logins = u.failed_logins.saturating_add(1);
        if u.failed_logins >= LOCKOUT_AFTER {
            let until = now + Duration::minutes(LOCKOUT_MINUTES);
            u.locked_until = Some(until);
            u.failed_logins = 0;
            outcome = Failure::LockedNow(until);
        } else {
            outcome = Failure::Counted {
                left: LOCKOUT_AFTER - u.failed_logins,
            };
        }
    })?;
    Ok(outcome)
}

/// A good password: the failure count starts again.
pub fn login_succeeded(txn: &WriteTransaction, name: &str) -> Result<UserRecord> {
    update(txn, name, |u| {
        u.failed_logins = 0;
        u.locked_until = None;
    })
}
