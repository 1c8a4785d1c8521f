//! Enrollment: a one-time token in, a client certificate and everything an
//! agent needs to work alone out.
//!
//! Stages: check the request → check the token (read-only, so a refusal
//! changes nothing) → sign the CSR → certify the agent's signing key in its
//! PD's repository → commit agent + used token in one transaction. The
//! repository write comes before the commit: if it fails, the token stays
//! usable.

use cadang_core::certify::Certifier;
use cadang_core::keys::AgentPublicKey;
use cadang_policies::model::{PolicySet, SourceKind as PolicySourceKind};
use cadang_proto::agent::{
    AgentPolicy, AgentRole, EnrollRequest, EnrollResponse, RepositoryGrant, SourceKind, SourceSpec,
    StoreAccess,
};
use cadang_proto::EnrollmentToken;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::api::{ApiErr, App};
use crate::audit::NewEntry;
use crate::engine::pd_repo_url;
use crate::error::Error;
use crate::state::agents::{self, AgentRecord};
use crate::state::pds::{self, PdRecord};
use crate::state::tokens::{self, TokenRecord};

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

pub async fn enroll(
    app: &std::sync::Arc<App>,
    req: EnrollRequest,
) -> Result<EnrollResponse, ApiErr> {
    let now = app.clock.now();
    // Stage 1: the request itself.
    if req.proto != cadang_proto::PROTO_VERSION {
        return Err(ApiErr::bad_request(format!(
            "this controller speaks protocol {}, the agent {}; install matching versions",
            cadang_proto::PROTO_VERSION,
            req.proto
        )));
    }
    let secret = EnrollmentToken::parse_secret(&req.token).map_err(refuse)?;
    let signing_key = AgentPublicKey::from_hex(&req.signing_public_key)
        .map_err(|e| ApiErr::bad_request(format!("signing_public_key: {e}")))?;
    if !req.age_recipient.starts_with("age1") {
        return Err(ApiErr::bad_request(
            "age_recipient must be an age X25519 recipient (age1...)",
        ));
    }
    // Stage 2: the token, read-only (a refusal changes nothing).
    let token = app
        .state
        .read(|txn| tokens::peek(txn, &secret))?
        .ok_or_else(|| refuse(tokens::TokenRefusal::Unknown))?;
    if let Some(t) = token.used {
        let why = tokens::TokenRefusal::Used(t);
        return Err(refused(app, &secret, &token, &req.host, why));
    }
    if token.expires <= now {
        let why = tokens::TokenRefusal::Expired(token.expires);
        return Err(refused(app, &secret, &token, &req.host, why));
    }
    if token.host != req.host {
        let why = tokens::TokenRefusal::WrongHost {
            expected: token.host.clone(),
            found: req.host.clone(),
        };
        return Err(refused(app, &secret, &token, &req.host, why));
    }
    let pd: PdRecord = app
        .state
        .read(|txn| pds::get(txn, &token.pd))?
        .ok_or_else(|| {
            ApiErr::forbidden(format!(
                "PD {} is not registered yet: its Wali Data runs `cadang pd register` first",
                token.pd
            ))
        })?;
    let set = app.policies().ok_or_else(|| {
        ApiErr::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the controller has no valid policy set loaded",
        )
    })?;
    let store = store_access(app, &set, &pd.pd, token.role)?;
    let policy = agent_policy(&set, &pd.pd, &req.host);
    // Stage 3: the certificate.
    let agent_id = new_agent_id(&req.host);
    let cert = app
        .ca
        .sign_agent(&req.csr_pem, &agent_id, &req.host)
        .map_err(|e| ApiErr::bad_request(e.to_string()))?;
    // Stage 4: certify the signing key in the repository (backup agents
    // sign snapshots; a drill runner signs none).
    if token.role == AgentRole::Backup {
        certify_in_repository(app, &set, &pd, &agent_id, &req.host, &signing_key).await?;
    }
    // Stage 5: one transaction: the token is used, the agent exists.
    let record = AgentRecord {
        id: agent_id.clone(),
        host: req.host.clone(),
        pd: pd.pd.clone(),
        role: token.role,
        cert_serial: cert.serial_hex.clone(),
        cert_fingerprint: hex::encode(cert.fingerprint),
        age_recipient: req.age_recipient.clone(),
        signing_public_key: req.signing_public_key.clone(),
        enrolled: now,
        last_seen: Some(now),
        revoked: None,
    };
    let (host, rec) = (req.host.clone(), record.clone());
    let a = app.clone();
    let consumed = app
        .state
        .write_blocking(move |txn| {
            let token = tokens::consume(txn, &secret, &host, &rec.id, now)?;
            if token.is_ok() {
                agents::insert(txn, &rec)?;
            }
            a.record_in(txn, enrolled_entry(&rec, &secret, &token))?;
            Ok(token)
        })
        .await?;
    // A second enrollment racing with the same token loses here.
    consumed.map_err(refuse)?;
    app.fleet.agents_changed(); // fleet status reads the agents again (issue 7)
    tracing::info!(agent = %agent_id, host = %req.host, pd = %pd.pd, "agent enrolled");
    Ok(EnrollResponse {
        agent_id,
        host: req.host,
        pd: pd.pd.clone(),
        role: token.role,
        client_cert_pem: cert.cert_pem,
        ca_cert_pem: app.ca.cert_pem.clone(),
        repository: RepositoryGrant {
            pd: pd.pd.clone(),
            repo_id: pd.repo_id.clone(),
            data_recipient: pd.data_recipient.clone(),
            repo_secret_json: pd.repo_secret_json.clone(),
        },
        store,
        policy,
    })
}

/// `agent.enroll` ok (agent id, host, PD, role), or refused when another
/// enrollment with the same token won the race.
fn enrolled_entry(
    rec: &AgentRecord,
    secret: &[u8; 32],
    token: &std::result::Result<TokenRecord, tokens::TokenRefusal>,
) -> NewEntry {
    let subject = format!("{}/{}", rec.pd, rec.host);
    let detail = json!({ "agent": rec.id, "host": rec.host, "pd": rec.pd, "role": role_name(rec.role), "token": token_ref(secret) });
    match token {
        Ok(_) => NewEntry::new(&crate::audit::agent_actor(&rec.id), "agent.enroll", &subject, "ok").detail(detail),
        Err(why) => NewEntry::new(crate::audit::CONTROLLER_ACTOR, "agent.enroll", &subject, "refused")
            .detail(json!({ "host": rec.host, "pd": rec.pd, "token": token_ref(secret), "reason": why.to_string() })),
    }
}

fn new_agent_id(host: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).expect("the OS random source is available");
    let short: String = host.chars().take(40).collect();
    format!("{short}-{}", hex::encode(b))
}

async fn certify_in_repository(
    app: &App,
    set: &PolicySet,
    pd: &PdRecord,
    agent_id: &str,
    host: &str,
    key: &AgentPublicKey,
) -> Result<(), ApiErr> {
    let unavailable = |m: String| ApiErr::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, m);
    let (onsite, _) = set
        .stores_of(&pd.pd)
        .ok_or_else(|| ApiErr::forbidden(format!("PD {} has no stores in its policy", pd.pd)))?;
    let target = app.config.store_target(&onsite.name).ok_or_else(|| {
        unavailable(format!(
            "store {} is not configured in controller.toml",
            onsite.name
        ))
    })?;
    let backend = target
        .open_pd(&pd.pd)
        .map_err(|e| unavailable(format!("store {}: {e}", onsite.name)))?;
    let repo = cadang_core::Repository::open(backend).await.map_err(|e| {
        unavailable(format!(
            "the repository of PD {} in store {} cannot be opened ({e}); has the Wali Data run `cadang repo init` there?",
            pd.pd, onsite.name
        ))
    })?;
    if repo.config.id.to_string() != pd.repo_id {
        return Err(ApiErr::forbidden(format!(
            "the repository in store {} is {}, not the one PD {} registered; register it again",
            onsite.name, repo.config.id, pd.pd
        )));
    }
    let certifier = Certifier::controller(&app.signing_secret);
    repo.register_agent_certified(host, key, &certifier)
        .await
        .map_err(|e| {
            unavailable(format!(
                "writing agent {agent_id}'s key to the repository: {e}"
            ))
        })
}
