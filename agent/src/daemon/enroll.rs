//! `cadang agent enroll`: the agent makes its keys on its own host, proves
//! the controller is the one that issued the token (CA fingerprint), sends
//! only the public halves and stores what comes back.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use cadang_core::keys::{AgentKey, Credentials, RepoSecret};
use cadang_proto::agent::{EnrollRequest, EnrollResponse};
use cadang_proto::{paths, EnrollmentToken, PROTO_VERSION};

use super::config::{AgentConfig, StatePaths, Tuning};
use super::http::{CallError, ControllerClient};
use super::tls::{self, FingerprintVerifier};
use super::{fsutil, DaemonError};

pub struct EnrollOptions {
    /// `https://HOST:PORT`.
    pub controller: String,
    pub token: EnrollmentToken,
    pub state_dir: PathBuf,
    /// The host name to enroll as (must match the token's).
    pub host: String,
}

/// The keys made on this host; only public halves leave it.
struct LocalKeys {
    tls_key_pem: String,
    csr_pem: String,
    restore_identity: age::x25519::Identity,
    signing: AgentKey,
}

/// Enrolls and writes `STATE_DIR/agent.toml`; returns the configuration.
pub async fn enroll(opts: EnrollOptions) -> Result<AgentConfig, DaemonError> {
    let paths = prepare_state_dir(&opts.state_dir)?;
    let keys = make_keys(&opts.host)?;
    let response = post_enrollment(&opts, &keys).await?;
    check_ca(&opts, &response)?;
    store(&opts, &paths, &keys, &response)
}

fn prepare_state_dir(dir: &std::path::Path) -> Result<StatePaths, DaemonError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(DaemonError::io("create the state directory", dir))?;
    let paths = StatePaths(dir.to_path_buf());
    if paths.config().exists() {
        return Err(DaemonError::AlreadyEnrolled {
            state_dir: dir.to_path_buf(),
            config: paths.config(),
        });
    }
    Ok(paths)
}

fn make_keys(host: &str) -> Result<LocalKeys, DaemonError> {
    let key = rcgen::KeyPair::generate().map_err(|e| DaemonError::Keys(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()])
        .map_err(|e| DaemonError::Keys(format!("host name {host:?}: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(|e| DaemonError::Keys(format!("certificate request: {e}")))?;
    Ok(LocalKeys {
        tls_key_pem: key.serialize_pem(),
        csr_pem: csr,
        restore_identity: age::x25519::Identity::generate(),
        signing: AgentKey::generate(),
    })
}

async fn post_enrollment(
    opts: &EnrollOptions,
    keys: &LocalKeys,
) -> Result<EnrollResponse, DaemonError> {
    let verifier = Arc::new(FingerprintVerifier::new(opts.token.ca_fingerprint));
    let client = ControllerClient::new(&opts.controller, verifier.client_config()?);
    let request = EnrollRequest {
        proto: PROTO_VERSION,
        token: opts.token.secret_text(),
        host: opts.host.clone(),
        csr_pem: keys.csr_pem.clone(),
        age_recipient: keys.restore_identity.to_public().to_string(),
        signing_public_key: keys.signing.public().to_hex(),
    };
    let url = opts.controller.clone();
    match client
        .post::<_, EnrollResponse>(paths::ENROLL, &request, Duration::from_secs(60))
        .await
    {
        Ok(r) => Ok(r),
        Err(CallError::Unreachable(reason)) => match verifier.mismatch() {
            Some(found) => Err(DaemonError::WrongController {
                url,
                found,
                expected: opts.token.ca_fingerprint_hex(),
            }),
            None => Err(DaemonError::Unreachable { url, reason }),
        },
        Err(CallError::Status { status, message }) => Err(DaemonError::Refused {
            url,
            status,
            message,
        }),
        Err(CallError::Decode(reason)) => Err(DaemonError::Http {
            url,
            path: paths::ENROLL.into(),
            status: 200,
            message: format!("unreadable enrollment answer ({reason}); is the controller the same cadang version?"),
        }),
    }
}

/// The CA the controller hands over must be the one the token names.
fn check_ca(opts: &EnrollOptions, r: &EnrollResponse) -> Result<(), DaemonError> {
    let certs = tls::parse_certs(&r.ca_cert_pem)?;
    if certs
        .iter()
        .any(|c| tls::fingerprint(c.as_ref()) == opts.token.ca_fingerprint)
    {
        return Ok(());
    }
    Err(DaemonError::WrongController {
        url: opts.controller.clone(),
        found: certs
            .iter()
            .map(|c| hex::encode(tls::fingerprint(c.as_ref())))
            .collect::<Vec<_>>()
            .join(", "),
        expected: opts.token.ca_fingerprint_hex(),
    })
}

fn credentials(r: &EnrollResponse, signing: &AgentKey) -> Result<Credentials, DaemonError> {
    let g = &r.repository;
    let bad = |reason: String| DaemonError::Http {
        url: String::new(),
        path: paths::ENROLL.into(),
        status: 200,
        message: reason,
    };
    Ok(Credentials {
        format: Credentials::FORMAT.into(),
        version: 1,
        repo_id: g
            .repo_id
            .parse()
            .map_err(|_| bad(format!("the repository id {:?} is not an id", g.repo_id)))?,
        pd: g.pd.clone(),
        agent_name: r.host.clone(),
        data_recipient: g.data_recipient.clone(),
        repo_secret: RepoSecret::from_json(g.repo_secret_json.as_bytes())?,
        agent_signing_key: signing.to_hex(),
        custodian_key: None,
    })
}

fn store(
    opts: &EnrollOptions,
    paths: &StatePaths,
    keys: &LocalKeys,
    r: &EnrollResponse,
) -> Result<AgentConfig, DaemonError> {
    let creds = credentials(r, &keys.signing)?;
    fsutil::write_atomic(&paths.tls_key(), keys.tls_key_pem.as_bytes())?;
    fsutil::write_atomic(&paths.client_cert(), r.client_cert_pem.as_bytes())?;
    fsutil::write_atomic(&paths.ca_cert(), r.ca_cert_pem.as_bytes())?;
    fsutil::write_atomic(
        &paths.age_identity(),
        format!("{}\n", keys.restore_identity.to_string().expose_secret()).as_bytes(),
    )?;
    fsutil::write_atomic(&paths.credentials(), &creds.to_json())?;
    fsutil::write_json(&paths.store(), &r.store)?;
    fsutil::write_json(&paths.policy(), &r.policy)?;
    let config = AgentConfig {
        controller: opts.controller.trim_end_matches('/').to_string(),
        state_dir: opts.state_dir.clone(),
        host: r.host.clone(),
        agent_id: r.agent_id.clone(),
        pd: r.pd.clone(),
        cache_dir: None,
        tuning: Tuning::default(),
    };
    // Last: its presence means the enrollment is complete.
    config.save(&paths.config())?;
    Ok(config)
}
