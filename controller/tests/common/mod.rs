//! A controller on 127.0.0.1:0 with a manual clock, a registered PD with a
//! real repository in a directory store, and helpers that act as agents and
//! people over real TLS.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cadang_controller::api::App;
use cadang_controller::client::ApiClient;
use cadang_controller::config::{Config, StoreSettings};
use cadang_controller::daemon::{self, Options};
use cadang_controller::engine::{pd_repo_url, Clock, ManualClock};
use cadang_controller::init::{init, InitOptions};
use cadang_proto::agent::{AgentRole, EnrollRequest, EnrollResponse};
use cadang_proto::api::{
    CreateUser, CreateUserResponse, EnrollTokenRequest, EnrollTokenResponse, RegisterPd, Role,
};
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

pub const PD: &str = "DUKCAPIL";
pub const HOST: &str = "srv-dukcapil";
pub const OTHER_PD: &str = "DINKES";
pub const OTHER_HOST: &str = "fs-dinkes";
pub const NIP: &str = "198111072008042001";

pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub const REGENCY: &str = r#"
name = "Kabupaten Uji"
zone = "Asia/Jakarta"

[stores.pusat-data]
site = "onsite"

[stores.drc]
site = "dr"

[defaults.all]
schedule = "0 1 * * *"
onsite_store = "pusat-data"
dr_store = "drc"
rpo = "26h"
object_lock_days = 0
retention_schedule = "30 6 * * *"

[defaults.all.retention]
daily = 7

[defaults.all.replication]
windows = ["22:00-05:00"]
delay = "15m"

[defaults.all.verification]
schedule = "0 4 * * 0"
read_share = "5%"
"#;

pub fn pd_file(code: &str, host: &str, schedule: &str) -> String {
    format!(
        r#"
code = "{code}"
name = "Dinas {code}"
group = "kependudukan"
schedule = "{schedule}"

[wali_data]
name = "Nurhayati"
nip = "{NIP}"

[[hosts]]
name = "{host}"

[[hosts.sources]]
name = "files"
paths = ["/srv/data"]
"#
    )
}

pub fn write_policies(dir: &Path, dukcapil_schedule: &str) {
    std::fs::create_dir_all(dir.join("pd")).unwrap();
    std::fs::write(dir.join("regency.toml"), REGENCY).unwrap();
    std::fs::write(
        dir.join("pd/dukcapil.toml"),
        pd_file(PD, HOST, dukcapil_schedule),
    )
    .unwrap();
    std::fs::write(
        dir.join("pd/dinkes.toml"),
        pd_file(OTHER_PD, OTHER_HOST, "0 2 * * *"),
    )
    .unwrap();
}

pub struct Controller {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub config: Config,
    pub url: String,
    pub ca_pem: String,
    pub admin_token: String,
    pub clock: Arc<ManualClock>,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<cadang_controller::Result<()>>>,
}

/// A fresh controller dir: init, stores, policies, and the PD's repository.
pub async fn prepare() -> (tempfile::TempDir, PathBuf, String, Config) {
    std::env::set_var("CADANG_SCRYPT_LOG_N", "10");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("controller");
    let out = init(&InitOptions {
        dir: dir.clone(),
        names: vec!["localhost".into(), "127.0.0.1".into()],
        listen: "127.0.0.1:0".into(),
        admin_name: "Admin Diskominfo".into(),
        admin_nip: Some(NIP.into()),
        regency: "Uji".into(),
    })
    .unwrap();
    let mut config = Config::load(&out.config_path).unwrap();
    // Tests read fleet status right after a change: built per call, exact.
    // `report_audit` tests the served document `controller init` asks for.
    config.fleet.status_refresh_ms = 0;
    for (name, sub) in [("pusat-data", "onsite"), ("drc", "dr")] {
        let url = tmp.path().join(sub).display().to_string();
        std::fs::create_dir_all(&url).unwrap();
        config.stores.insert(
            name.into(),
            StoreSettings {
                url,
                ..Default::default()
            },
        );
    }
    std::fs::write(&out.config_path, config.to_toml()).unwrap();
    write_policies(&dir.join("policies"), "0 1 * * *");
    (tmp, dir, out.admin_token, config)
}

/// The PD's repository in the on-site store, as `cadang repo init` makes it.
pub async fn init_repository(config: &Config, pd: &str) -> cadang_core::keys::Credentials {
    let url = pd_repo_url(&config.stores["pusat-data"].url, pd);
    let backend = cadang_s3::open_store(&url, None).unwrap();
    cadang_core::Repository::init(
        backend,
        pd,
        "wali-data-laptop",
        "correct horse",
        Default::default(),
    )
    .await
    .unwrap()
    .credentials
}

impl Controller {
    pub async fn start() -> Controller {
        let (tmp, dir, admin_token, config) = prepare().await;
        let c =
            Controller::start_in(tmp, dir, admin_token, config, at("2026-03-02T00:00:00Z")).await;
        let creds = init_repository(&c.config, PD).await;
        c.register_pd(&creds).await;
        c
    }

    pub async fn start_in(
        tmp: tempfile::TempDir,
        dir: PathBuf,
        admin_token: String,
        config: Config,
        now: DateTime<Utc>,
    ) -> Controller {
        Controller::start_with(tmp, dir, admin_token, config, now, None).await
    }

    /// As [`Controller::start_in`], with site jobs run by `runner`.
    pub async fn start_with(
        tmp: tempfile::TempDir,
        dir: PathBuf,
        admin_token: String,
        config: Config,
        now: DateTime<Utc>,
        runner: Option<Arc<dyn cadang_controller::engine::JobRunner>>,
    ) -> Controller {
        let clock = Arc::new(ManualClock::new(now));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let options = Options {
            on_ready: Some(ready_tx),
            shutdown_deadline: std::time::Duration::from_secs(2),
            runner,
            ..Options::default()
        };
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let handle = tokio::spawn(daemon::run_with(
            listener,
            config.clone(),
            dyn_clock,
            async move {
                let _ = stop_rx.await;
            },
            options,
        ));
        let app = match ready_rx.await {
            Ok(app) => app,
            Err(_) => panic!("the daemon did not start: {:?}", handle.await),
        };
        let ca_pem = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
        Controller {
            tmp,
            dir,
            config,
            url,
            ca_pem,
            admin_token,
            clock,
            app,
            stop: Some(stop_tx),
            handle: Some(handle),
        }
    }

    /// Stops the daemon; gives back what a restart needs.
    pub async fn stop(mut self) -> (tempfile::TempDir, PathBuf, String, Config) {
        let _ = self.stop.take().unwrap().send(());
        self.handle.take().unwrap().await.unwrap().unwrap();
        drop(self.app);
        (self.tmp, self.dir, self.admin_token, self.config)
    }

    pub fn person(&self, token: &str) -> ApiClient {
        ApiClient::new(&self.url, &self.ca_pem, None, Some(token.to_string())).unwrap()
    }

    pub fn admin(&self) -> ApiClient {
        self.person(&self.admin_token)
    }

    pub fn anonymous(&self) -> ApiClient {
        ApiClient::new(&self.url, &self.ca_pem, None, None).unwrap()
    }

    pub async fn register_pd(&self, creds: &cadang_core::keys::Credentials) {
        let _: serde_json::Value = self
            .admin()
            .post(
                "/api/v1/pds",
                &RegisterPd {
                    pd: creds.pd.clone(),
                    repo_id: creds.repo_id.to_string(),
                    data_recipient: creds.data_recipient.clone(),
                    repo_secret_json: String::from_utf8(creds.repo_secret.to_json()).unwrap(),
                },
            )
            .await
            .unwrap();
    }

    pub async fn user(&self, name: &str, role: Role) -> String {
        let r: CreateUserResponse = self
            .admin()
            .post(
                "/api/v1/users",
                &CreateUser {
                    name: name.into(),
                    nip: Some(NIP.into()),
                    role,
                },
            )
            .await
            .unwrap();
        r.token
    }

    pub async fn token(&self, host: &str, pd: &str, ttl_seconds: u64) -> String {
        let r: EnrollTokenResponse = self
            .admin()
            .post(
                "/api/v1/enroll-tokens",
                &EnrollTokenRequest {
                    host: host.into(),
                    pd: pd.into(),
                    role: AgentRole::Backup,
                    ttl_seconds,
                },
            )
            .await
            .unwrap();
        r.token
    }

    /// Number of agents and used tokens in the state.
    pub fn counts(&self) -> (usize, usize) {
        self.app
            .state
            .read(|txn| {
                use redb::{ReadableTable, ReadableTableMetadata};
                let agents = txn.open_table(cadang_controller::state::AGENTS)?.len()? as usize;
                let mut used = 0;
                for item in txn.open_table(cadang_controller::state::TOKENS)?.iter()? {
                    let (_, v) = item?;
                    let t: cadang_controller::state::tokens::TokenRecord =
                        serde_json::from_slice(v.value()).unwrap();
                    used += usize::from(t.used.is_some());
                }
                Ok((agents, used))
            })
            .unwrap()
    }
}

/// An agent's keys, made on "its host".
pub struct AgentKeys {
    pub host: String,
    pub key_pem: String,
    pub csr_pem: String,
    pub age_recipient: String,
    pub signing_public_key: String,
}

impl AgentKeys {
    pub fn new(host: &str) -> AgentKeys {
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::new(vec![host.to_string()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        AgentKeys {
            host: host.into(),
            key_pem: key.serialize_pem(),
            csr_pem: csr,
            age_recipient: cadang_core::keys::DataIdentity::generate()
                .recipient()
                .encode(),
            signing_public_key: cadang_core::keys::AgentKey::generate().public().to_hex(),
        }
    }

    pub fn request(&self, token: &str) -> EnrollRequest {
        let secret = token
            .parse::<cadang_proto::EnrollmentToken>()
            .unwrap()
            .secret_text();
        EnrollRequest {
            proto: cadang_proto::PROTO_VERSION,
            token: secret,
            host: self.host.clone(),
            csr_pem: self.csr_pem.clone(),
            age_recipient: self.age_recipient.clone(),
            signing_public_key: self.signing_public_key.clone(),
        }
    }
}

/// Enrolls `keys` and returns the response and a client with its certificate.
pub async fn enroll(
    c: &Controller,
    keys: &AgentKeys,
    token: &str,
) -> cadang_controller::Result<(EnrollResponse, ApiClient)> {
    let resp: EnrollResponse = c
        .anonymous()
        .post(cadang_proto::paths::ENROLL, &keys.request(token))
        .await?;
    let client = ApiClient::new(
        &c.url,
        &c.ca_pem,
        Some((&resp.client_cert_pem, &keys.key_pem)),
        None,
    )?;
    Ok((resp, client))
}

pub fn status_of<T: std::fmt::Debug>(r: cadang_controller::Result<T>) -> u16 {
    match r {
        Err(cadang_controller::Error::Api { status, .. }) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A client with an enrolled agent's certificate, for (a restarted) `c`.
pub fn agent_client(c: &Controller, resp: &EnrollResponse, keys: &AgentKeys) -> ApiClient {
    ApiClient::new(
        &c.url,
        &c.ca_pem,
        Some((&resp.client_cert_pem, &keys.key_pem)),
        None,
    )
    .unwrap()
}

/// Polls as an agent holding the current policy, waiting up to `wait` s.
pub async fn poll_jobs(
    agent: &ApiClient,
    version: &str,
    wait: u32,
) -> cadang_proto::agent::PollResponse {
    let req = cadang_proto::agent::PollRequest {
        proto: cadang_proto::PROTO_VERSION,
        policy_version: version.into(),
        running: vec![],
        wait_seconds: wait,
    };
    agent.post(cadang_proto::paths::POLL, &req).await.unwrap()
}
