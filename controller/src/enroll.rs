//! Enrollment: a one-time token in, a client certificate and everything an
//! agent needs to work alone out.
//!
//! Stages: check the request → check the token (read-only, so a refusal
//! changes nothing) → sign the CSR → certify the agent's signing key in its
//! PD's repository → commit agent + used token in one transaction. The
//! repository write comes before the commit: if it fails, the token stays
//! usable.

use cadang_policies::model::{PolicySet, SourceKind as PolicySourceKind};
use cadang_proto::agent::{AgentPolicy, AgentRole, SourceKind, SourceSpec, StoreAccess};
use cadang_proto::EnrollmentToken;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::api::{ApiErr, App};
use crate::audit::NewEntry;
use crate::engine::pd_repo_url;
use crate::error::Error;
use crate::state::tokens::{self, TokenRecord};

mod admit;
pub use admit::enroll;

/// A new one-time token for `host` in `pd`, stored hashed. Offline (the
/// CLI beside a stopped controller): its audit entry is appended without
/// a checkpoint, which the controller signs at its next start.
pub fn issue_token(
    state: &crate::state::State,
    ca_fingerprint: [u8; 32],
    host: &str,
    pd: &str,
    role: AgentRole,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<(EnrollmentToken, DateTime<Utc>), Error> {
    let record =
        |txn: &redb::WriteTransaction, e| crate::audit::store::append_in(txn, e, now).map(|_| ());
    let actor = crate::audit::CONTROLLER_ACTOR;
    issue_token_by(
        state,
        &record,
        actor,
        ca_fingerprint,
        host,
        pd,
        role,
        ttl,
        now,
    )
}

/// How a caller puts an audit entry into the transaction it is handed.
pub type RecordIn<'a> = &'a dyn Fn(&redb::WriteTransaction, NewEntry) -> Result<(), Error>;

/// [`issue_token`] for `actor`, its `enroll-token.create` entry put into
/// the token's own transaction by `record`.
#[allow(clippy::too_many_arguments)]
pub fn issue_token_by(
    state: &crate::state::State,
    record: RecordIn<'_>,
    actor: &str,
    ca_fingerprint: [u8; 32],
    host: &str,
    pd: &str,
    role: AgentRole,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<(EnrollmentToken, DateTime<Utc>), Error> {
    check_name("host", host)?;
    check_name("PD", pd)?;
    if ttl <= Duration::zero() || ttl > Duration::days(30) {
        return Err(Error::Invalid(
            "--ttl must be between 1 second and 30 days".into(),
        ));
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the OS random source is available");
    let expires = now + ttl;
    let rec = TokenRecord {
        host: host.to_string(),
        pd: pd.to_string(),
        role,
        created: now,
        expires,
        used: None,
        used_by: None,
    };
    let entry = NewEntry::new(actor, "enroll-token.create", &format!("{pd}/{host}"), "ok").detail(
        json!({ "host": host, "pd": pd, "role": role_name(role), "expires": expires, "token": token_ref(&secret) }),
    );
    state.write(|txn| {
        tokens::insert(txn, &secret, &rec)?;
        record(txn, entry)
    })?;
    Ok((
        EnrollmentToken {
            secret,
            ca_fingerprint,
        },
        expires,
    ))
}

/// A token named in the log without its secret: the first 16 hex digits
/// of the SHA-256 it is stored under.
fn token_ref(secret: &[u8; 32]) -> String {
    crate::state::hash_hex(secret)[..16].to_string()
}

fn role_name(role: AgentRole) -> &'static str {
    match role {
        AgentRole::Backup => "backup",
        AgentRole::DrillRunner => "drill-runner",
    }
}

/// An enrollment refused for a real token (used, expired, other host):
/// an entry, then the refusal. Unknown tokens are not logged: anyone can
/// send those, and the log must not be fillable from the network.
fn refused(
    app: &App,
    secret: &[u8; 32],
    token: &TokenRecord,
    host: &str,
    why: tokens::TokenRefusal,
) -> ApiErr {
    let entry = NewEntry::new(
        crate::audit::CONTROLLER_ACTOR,
        "agent.enroll",
        &format!("{}/{host}", token.pd),
        "refused",
    )
    .detail(json!({ "host": host, "pd": token.pd, "token": token_ref(secret), "reason": why.to_string() }));
    if let Err(e) = app.record(entry) {
        tracing::error!(error = %e, "a refused enrollment could not be written to the audit log");
    }
    refuse(why)
}

fn check_name(what: &str, s: &str) -> Result<(), Error> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} {s:?} must be letters, digits, '-', '_' or '.'"
        )))
    }
}

/// The part of the policy set one agent needs, with a version that changes
/// whenever any of it does.
pub fn agent_policy(set: &PolicySet, pd: &str, host: &str) -> AgentPolicy {
    let sources = set
        .host(host)
        .filter(|(p, _)| p.code == pd)
        .map(|(_, h)| {
            h.sources
                .iter()
                .map(|s| SourceSpec {
                    name: s.name.clone(),
                    schedule: s.schedule.expr().to_string(),
                    kind: match &s.kind {
                        PolicySourceKind::Paths(p) => SourceKind::Paths { paths: p.clone() },
                        PolicySourceKind::Command {
                            stream_name,
                            command,
                        } => SourceKind::Command {
                            stream_name: stream_name.clone(),
                            command: command.clone(),
                        },
                    },
                    excludes: s.excludes.clone(),
                    tags: s.tags.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut policy = AgentPolicy {
        version: String::new(),
        pd: pd.to_string(),
        host: host.to_string(),
        zone: set.regency.zone.clone(),
        sources,
        jitter_seconds: crate::engine::plan::BACKUP_JITTER.num_seconds() as u32,
    };
    let body = serde_json::to_vec(&policy).unwrap_or_default();
    policy.version = blake3::hash(&body).to_hex()[..16].to_string();
    policy
}

/// The store an agent of `role` in `pd` gets: the on-site store for backup
/// agents, the DR store for drill runners — never both.
fn store_access(
    app: &App,
    set: &PolicySet,
    pd: &str,
    role: AgentRole,
) -> Result<StoreAccess, ApiErr> {
    let (onsite, dr) = set.stores_of(pd).ok_or_else(|| {
        ApiErr::forbidden(format!(
            "PD {pd} has no policy with stores; add its policy file and reload"
        ))
    })?;
    let name = match role {
        AgentRole::Backup => &onsite.name,
        AgentRole::DrillRunner => &dr.name,
    };
    let s = app.config.stores.get(name).ok_or_else(|| {
        ApiErr::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("store {name} is not configured in controller.toml ([stores.{name}])"),
        )
    })?;
    Ok(StoreAccess {
        url: pd_repo_url(&s.url, pd),
        access_key_id: s.access_key_id.clone(),
        secret_access_key: s.secret_access_key.clone(),
    })
}

fn refuse<E: std::fmt::Display>(e: E) -> ApiErr {
    ApiErr::forbidden(e.to_string())
}
