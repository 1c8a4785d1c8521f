//! [`enroll`] as its stages (see the parent module): check the request,
//! check the token, gather the PD's grant, sign the CSR, certify the signing
//! key in the repository, commit.

use std::sync::Arc;

use cadang_core::certify::Certifier;
use cadang_core::keys::AgentPublicKey;
use cadang_policies::model::PolicySet;
use cadang_proto::agent::{
    AgentPolicy, AgentRole, EnrollRequest, EnrollResponse, RepositoryGrant, StoreAccess,
};
use cadang_proto::EnrollmentToken;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{agent_policy, refuse, refused, role_name, store_access, token_ref};
use crate::api::{ApiErr, App};
use crate::audit::NewEntry;
use crate::state::agents::{self, AgentRecord};
use crate::state::pds::{self, PdRecord};
use crate::state::tokens::{self, TokenRecord};

pub async fn enroll(app: &Arc<App>, req: EnrollRequest) -> Result<EnrollResponse, ApiErr> {
    let now = app.clock.now();
    let (secret, signing_key) = check_request(&req)?;
    let token = check_token(app, &secret, &req.host, now)?;
    let grant = Grant::gather(app, &token, &req.host)?;
    let agent_id = new_agent_id(&req.host);
    let cert = app
        .ca
        .sign_agent(&req.csr_pem, &agent_id, &req.host)
        .map_err(|e| ApiErr::bad_request(e.to_string()))?;
    // Backup agents sign snapshots; a drill runner signs none.
    if token.role == AgentRole::Backup {
        certify_in_repository(
            app,
            &grant.set,
            &grant.pd,
            &agent_id,
            &req.host,
            &signing_key,
        )
        .await?;
    }
    let record = AgentRecord {
        id: agent_id.clone(),
        host: req.host.clone(),
        pd: grant.pd.pd.clone(),
        role: token.role,
        cert_serial: cert.serial_hex.clone(),
        cert_fingerprint: hex::encode(cert.fingerprint),
        age_recipient: req.age_recipient.clone(),
        signing_public_key: req.signing_public_key.clone(),
        enrolled: now,
        last_seen: Some(now),
        revoked: None,
    };
    commit(app, secret, record, now).await?;
    tracing::info!(agent = %agent_id, host = %req.host, pd = %grant.pd.pd, "agent enrolled");
    Ok(grant.response(app, agent_id, req.host, token.role, cert.cert_pem))
}

/// Stage 1: the request itself. Returns the token's secret and the agent's
/// signing key.
fn check_request(req: &EnrollRequest) -> Result<([u8; 32], AgentPublicKey), ApiErr> {
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
    Ok((secret, signing_key))
}

/// Stage 2: the token, read-only (a refusal changes nothing). A refusal of
/// a real token is written to the audit log.
fn check_token(
    app: &App,
    secret: &[u8; 32],
    host: &str,
    now: DateTime<Utc>,
) -> Result<TokenRecord, ApiErr> {
    let token = app
        .state
        .read(|txn| tokens::peek(txn, secret))?
        .ok_or_else(|| refuse(tokens::TokenRefusal::Unknown))?;
    let why = if let Some(t) = token.used {
        tokens::TokenRefusal::Used(t)
    } else if token.expires <= now {
        tokens::TokenRefusal::Expired(token.expires)
    } else if token.host != host {
        tokens::TokenRefusal::WrongHost {
            expected: token.host.clone(),
            found: host.to_string(),
        }
    } else {
        return Ok(token);
    };
    Err(refused(app, secret, &token, host, why))
}

/// What the agent is given besides its certificate: its PD's repository,
/// its store and its policy.
struct Grant {
    pd: PdRecord,
    set: Arc<PolicySet>,
    store: StoreAccess,
    policy: AgentPolicy,
}

impl Grant {
    fn gather(app: &App, token: &TokenRecord, host: &str) -> Result<Self, ApiErr> {
        let pd: PdRecord = app
            .state
            .read(|txn| pds::get(txn, &token.pd))?
            .ok_or_else(|| {
                ApiErr::forbidden(format!(
                    "PD {} is not registered with this controller yet: its Wali Data registers the PD's repository first, then this agent can enroll",
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
        let policy = agent_policy(&set, &pd.pd, host);
        Ok(Self {
            pd,
            set,
            store,
            policy,
        })
    }

    fn response(
        self,
        app: &App,
        agent_id: String,
        host: String,
        role: AgentRole,
        client_cert_pem: String,
    ) -> EnrollResponse {
        EnrollResponse {
            agent_id,
            host,
            pd: self.pd.pd.clone(),
            role,
            client_cert_pem,
            ca_cert_pem: app.ca.cert_pem.clone(),
            repository: RepositoryGrant {
                pd: self.pd.pd,
                repo_id: self.pd.repo_id,
                data_recipient: self.pd.data_recipient,
                repo_secret_json: self.pd.repo_secret_json,
            },
            store: self.store,
            policy: self.policy,
        }
    }
}

/// Stage 5: one transaction: the token is used, the agent exists. A second
/// enrollment racing with the same token loses here.
async fn commit(
    app: &Arc<App>,
    secret: [u8; 32],
    record: AgentRecord,
    now: DateTime<Utc>,
) -> Result<(), ApiErr> {
    let host = record.host.clone();
    let a = app.clone();
    let consumed = app
        .state
        .write_blocking(move |txn| {
            let token = tokens::consume(txn, &secret, &host, &record.id, now)?;
            if token.is_ok() {
                agents::insert(txn, &record)?;
            }
            a.record_in(txn, enrolled_entry(&record, &secret, &token))?;
            Ok(token)
        })
        .await?;
    consumed.map_err(refuse)?;
    app.fleet.agents_changed(); // fleet status reads the agents again (issue 7)
    Ok(())
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
            "the repository of PD {} in store {} cannot be opened ({e}); check that the store is reachable and that the PD's Wali Data has created the repository there",
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
