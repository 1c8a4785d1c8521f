//! A test double of the controller: the proto routes over real TLS (leaf +
//! CA chain, optional client certificates), with switches for the faults
//! the agent must survive. Port 0 only.

#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cadang_agent::daemon::{self, AgentConfig, EnrollOptions, EnrollmentToken};
use cadang_core::backend::{Backend, FileKind};
use cadang_core::config::ChunkerParams;
use cadang_core::keys::Credentials;
use cadang_core::Repository;
use cadang_proto::agent::*;
use cadang_proto::paths;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub struct Pki {
    pub issuer: Issuer<'static, KeyPair>,
    pub ca_der: CertificateDer<'static>,
    pub ca_pem: String,
    pub leaf_der: CertificateDer<'static>,
    pub leaf_key: KeyPair,
}

pub fn pki(name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    let ca = params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    Pki {
        issuer,
        ca_der: ca.der().clone(),
        ca_pem: ca.pem(),
        leaf_der: leaf.der().clone(),
        leaf_key,
    }
}

pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    daemon::tls::fingerprint(der)
}

/// What the fake controller knows and how it misbehaves.
pub struct State {
    pub token_secret: [u8; 32],
    pub enroll_requests: usize,
    pub refuse_enrollment: Option<String>,
    pub grant: Option<(RepositoryGrant, StoreAccess)>,
    pub policy: AgentPolicy,
    pub jobs: VecDeque<Job>,
    /// Reports stored, in arrival order, each id once.
    pub reports: Vec<JobReport>,
    pub report_posts: usize,
    /// Answer this many report deliveries with 500 after storing them.
    pub lose_acks: usize,
    /// Answer everything with 503 (a controller that is down).
    pub down: bool,
    pub revoked: bool,
    pub polls_with_cert: usize,
    pub polls_without_cert: usize,
    pub last_running: Vec<JobProgress>,
}

pub struct FakeController {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    pub pki: Arc<Pki>,
}

impl FakeController {
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub fn token(&self) -> EnrollmentToken {
        EnrollmentToken {
            secret: self.state.lock().unwrap().token_secret,
            ca_fingerprint: fingerprint(&self.pki.ca_der),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

pub async fn start(pki: Pki, policy: AgentPolicy) -> FakeController {
    let pki = Arc::new(pki);
    let provider = daemon::tls::provider();
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![pki.leaf_der.clone(), pki.ca_der.clone()],
            PrivateKeyDer::Pkcs8(pki.leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut secret = [0u8; 32];
    cadang_core::keys::fill_random(&mut secret);
    let state = Arc::new(Mutex::new(State {
        token_secret: secret,
        enroll_requests: 0,
        refuse_enrollment: None,
        grant: None,
        policy,
        jobs: VecDeque::new(),
        reports: Vec::new(),
        report_posts: 0,
        lose_acks: 0,
        down: false,
        revoked: false,
        polls_with_cert: 0,
        polls_without_cert: 0,
        last_running: Vec::new(),
    }));
    let (st, p) = (state.clone(), pki.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, st, p) = (acceptor.clone(), st.clone(), p.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let has_cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty());
                let svc = hyper::service::service_fn(move |req| {
                    handle(st.clone(), p.clone(), has_cert, req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    FakeController { addr, state, pki }
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
        .unwrap()
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

async fn handle(
    state: Arc<Mutex<State>>,
    pki: Arc<Pki>,
    has_cert: bool,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if state.lock().unwrap().down {
        return Ok(error(StatusCode::SERVICE_UNAVAILABLE, "down"));
    }
    Ok(match path.as_str() {
        p if p == paths::ENROLL => enroll(&state, &pki, &body),
        p if p == paths::POLL => {
            if !has_cert {
                state.lock().unwrap().polls_without_cert += 1;
                return Ok(error(
                    StatusCode::UNAUTHORIZED,
                    "client certificate required",
                ));
            }
            let req: PollRequest = serde_json::from_slice(&body).unwrap();
            let answer = {
                let mut s = state.lock().unwrap();
                s.polls_with_cert += 1;
                s.last_running = req.running.clone();
                if s.revoked {
                    return Ok(error(
                        StatusCode::FORBIDDEN,
                        "this agent was revoked by admin",
                    ));
                }
                let policy = (s.policy.version != req.policy_version).then(|| s.policy.clone());
                let jobs: Vec<Job> = s.jobs.drain(..).collect();
                (policy, jobs)
            };
            if answer.0.is_none() && answer.1.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            json(
                StatusCode::OK,
                &PollResponse {
                    policy: answer.0,
                    jobs: answer.1,
                },
            )
        }
        p if p == paths::REPORTS => {
            if !has_cert {
                return Ok(error(
                    StatusCode::UNAUTHORIZED,
                    "client certificate required",
                ));
            }
            let batch: ReportBatch = serde_json::from_slice(&body).unwrap();
            let mut s = state.lock().unwrap();
            s.report_posts += 1;
            if s.revoked {
                return Ok(error(
                    StatusCode::FORBIDDEN,
                    "this agent was revoked by admin",
                ));
            }
            let mut accepted = Vec::new();
            for r in batch.reports {
                if !s.reports.iter().any(|x| x.report_id == r.report_id) {
                    s.reports.push(r.clone());
                }
                accepted.push(r.report_id);
            }
            if s.lose_acks > 0 {
                s.lose_acks -= 1;
                return Ok(error(StatusCode::INTERNAL_SERVER_ERROR, "ack lost"));
            }
            json(StatusCode::OK, &ReportAck { accepted })
        }
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    })
}

fn enroll(state: &Mutex<State>, pki: &Pki, body: &[u8]) -> Response<Full<Bytes>> {
    let mut s = state.lock().unwrap();
    s.enroll_requests += 1;
    let req: EnrollRequest = serde_json::from_slice(body).unwrap();
    if let Some(m) = &s.refuse_enrollment {
        return error(StatusCode::FORBIDDEN, m);
    }
    if EnrollmentToken::parse_secret(&req.token).ok() != Some(s.token_secret) {
        return error(StatusCode::FORBIDDEN, "unknown or used token");
    }
    let csr = CertificateSigningRequestParams::from_pem(&req.csr_pem).unwrap();
    let cert = csr.signed_by(&pki.issuer).unwrap();
    let (repository, store) = s.grant.clone().expect("grant set");
    json(
        StatusCode::OK,
        &EnrollResponse {
            agent_id: format!("agent-{}", req.host),
            host: req.host.clone(),
            pd: repository.pd.clone(),
            role: AgentRole::Backup,
            client_cert_pem: cert.pem(),
            ca_cert_pem: pki.ca_pem.clone(),
            repository,
            store,
            policy: s.policy.clone(),
        },
    )
}

/// A real directory repository and the grant the controller would hand out.
pub async fn repository(dir: &Path) -> (Arc<dyn Backend>, RepositoryGrant, StoreAccess) {
    let url = dir.join("store").display().to_string();
    let backend = cadang_s3::open_store(&url, None).unwrap();
    let init = Repository::init(
        backend.clone(),
        "DINKES",
        "custodian",
        "pw",
        ChunkerParams::default(),
    )
    .await
    .unwrap();
    let c: Credentials = init.credentials;
    let grant = RepositoryGrant {
        pd: c.pd.clone(),
        repo_id: c.repo_id.to_hex(),
        data_recipient: c.data_recipient.clone(),
        repo_secret_json: String::from_utf8(c.repo_secret.to_json()).unwrap(),
    };
    (
        backend,
        grant,
        StoreAccess {
            url,
            access_key_id: None,
            secret_access_key: None,
        },
    )
}

pub fn policy(host: &str, files: &Path, schedule: &str) -> AgentPolicy {
    AgentPolicy {
        version: "v1".into(),
        pd: "DINKES".into(),
        host: host.into(),
        zone: "Asia/Makassar".into(),
        sources: vec![
            SourceSpec {
                name: "files".into(),
                schedule: schedule.into(),
                kind: SourceKind::Paths {
                    paths: vec![files.display().to_string()],
                },
                excludes: vec![],
                tags: vec!["test".into()],
            },
            SourceSpec {
                name: "db".into(),
                schedule: "0 3 * * *".into(),
                kind: SourceKind::Command {
                    stream_name: "db.dump".into(),
                    command: "echo dump-of-the-database".into(),
                },
                excludes: vec![],
                tags: vec![],
            },
        ],
        jitter_seconds: 0,
    }
}

/// Enrolls a fresh state directory with fast test timings.
pub async fn enrolled(fc: &FakeController, state_dir: &Path, host: &str) -> AgentConfig {
    let mut config = daemon::enroll(EnrollOptions {
        controller: fc.url(),
        token: fc.token(),
        state_dir: state_dir.to_path_buf(),
        host: host.into(),
    })
    .await
    .unwrap();
    config.tuning.poll_wait_seconds = 1;
    config.tuning.tick_millis = 20;
    config.tuning.backoff_min_millis = 10;
    config.tuning.backoff_max_millis = 100;
    config.tuning.stop_deadline_seconds = 2;
    config.tuning.workers = 2;
    config.save(&config.paths().config()).unwrap();
    config
}

pub async fn snapshot_count(backend: &Arc<dyn Backend>) -> usize {
    backend.list(FileKind::Snapshots).await.unwrap().len()
}

pub async fn lock_count(backend: &Arc<dyn Backend>) -> usize {
    backend.list(FileKind::Locks).await.unwrap().len()
}

/// Waits (polling, at most `secs`) until `f` holds.
pub async fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn reports_for_slot(s: &State, slot: i64) -> Vec<JobReport> {
    s.reports
        .iter()
        .filter(|r| matches!(&r.kind, ReportKind::Backup { slot: Some(x), .. } if *x == slot))
        .cloned()
        .collect()
}

pub fn unique_ids(reports: &[JobReport]) -> bool {
    let ids: HashSet<&str> = reports.iter().map(|r| r.report_id.as_str()).collect();
    ids.len() == reports.len()
}

pub async fn wait_snapshots(backend: &Arc<dyn Backend>, n: usize, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let have = snapshot_count(backend).await;
        if have == n {
            return;
        }
        assert!(have < n, "{have} snapshots, expected {n}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {n} snapshots (have {have})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lines in the agent's spool file (reports not yet acknowledged).
pub fn spooled(config: &AgentConfig) -> usize {
    std::fs::read_to_string(config.paths().spool())
        .map(|t| t.lines().filter(|l| !l.is_empty()).count())
        .unwrap_or(0)
}

/// A running agent and the switch that stops it.
pub struct Agent {
    pub stop: tokio::sync::watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<Result<(), daemon::DaemonError>>,
}

pub fn spawn(config: &AgentConfig, clock: Arc<daemon::ManualClock>) -> Agent {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(daemon::run(config.clone(), clock, rx));
    Agent { stop, task }
}

impl Agent {
    pub async fn stop(self) -> Result<(), daemon::DaemonError> {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("agent stops in time")
            .unwrap()
    }
}
