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

use crate::api::{ApiErr, App};
use crate::engine::pd_repo_url;
use crate::error::Error;
use crate::state::agents::{self, AgentRecord};
use crate::state::pds::{self, PdRecord};
use crate::state::tokens::{self, TokenRecord};

/// A new one-time token for `host` in `pd`, stored hashed.
pub fn issue_token(
    state: &crate::state::State,
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
    state.write(|txn| tokens::insert(txn, &secret, &rec))?;
    Ok((
        EnrollmentToken {
            secret,
            ca_fingerprint,
        },
        expires,
    ))
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
        return Err(refuse(tokens::TokenRefusal::Used(t)));
    }
    if token.expires <= now {
        return Err(refuse(tokens::TokenRefusal::Expired(token.expires)));
    }
    if token.host != req.host {
        return Err(refuse(tokens::TokenRefusal::WrongHost {
            expected: token.host,
            found: req.host,
        }));
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
    let consumed = app
        .state
        .write_blocking(move |txn| {
            let token = tokens::consume(txn, &secret, &host, &rec.id, now)?;
            if token.is_ok() {
                agents::insert(txn, &rec)?;
            }
            Ok(token)
        })
        .await?;
    // A second enrollment racing with the same token loses here.
    consumed.map_err(refuse)?;
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
