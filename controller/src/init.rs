//! `cadang controller init`: a CA, a server certificate, the report-signing
//! key, an admin API token and `controller.toml`, all files mode 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cadang_proto::api::Role;

use crate::ca::{create_ca, Ca};
use crate::config::{write_private, Config, FleetSettings, PoolSettings, TlsFiles};
use crate::error::{Error, Result};
use crate::state::users::{self, UserRecord};
use crate::state::State;

pub struct InitOptions {
    pub dir: PathBuf,
    /// DNS names and IP addresses of the server certificate.
    pub names: Vec<String>,
    pub listen: String,
    pub admin_name: String,
    pub admin_nip: Option<String>,
    pub regency: String,
}

pub struct InitOutcome {
    pub config_path: PathBuf,
    /// Shown once; only its hash is stored.
    pub admin_token: String,
    pub ca_fingerprint: String,
}

/// The names a certificate gets when none are given.
pub fn default_names() -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let host = cadang_core::lock::hostname();
    if !names.contains(&host) && host != "unknown" {
        names.push(host);
    }
    names
}

pub fn init(o: &InitOptions) -> Result<InitOutcome> {
    users::check_user(&o.admin_name, o.admin_nip.as_deref(), &[Role::Admin])?;
    let config_path = o.dir.join("controller.toml");
    if config_path.exists() {
        return Err(Error::Exists { path: config_path });
    }
    create_dir(&o.dir)?;
    create_dir(&o.dir.join("policies"))?;
    // Stage 1: keys and certificates.
    let ca_files = create_ca(&o.regency)?;
    let ca = Ca::load(&ca_files.cert_pem, &ca_files.key_pem)?;
    let names = if o.names.is_empty() {
        default_names()
    } else {
        o.names.clone()
    };
    let server = ca.server_cert(&names)?;
    let signing = cadang_core::keys::AgentKey::generate();
    let file = |name: &str| o.dir.join(name);
    write_private(&file("ca.pem"), ca_files.cert_pem.as_bytes())?;
    write_private(&file("ca.key"), ca_files.key_pem.as_bytes())?;
    write_private(&file("server.pem"), server.cert_pem.as_bytes())?;
    write_private(&file("server.key"), server.key_pem.as_bytes())?;
    write_private(
        &file("signing.key"),
        format!("{}\n", signing.to_hex()).as_bytes(),
    )?;
    // Stage 2: the config (relative paths: the directory can move).
    let config = Config {
        listen: o.listen.clone(),
        state: "state.redb".into(),
        policy_dir: "policies".into(),
        tls: TlsFiles {
            ca_cert: "ca.pem".into(),
            ca_key: "ca.key".into(),
            server_cert: "server.pem".into(),
            server_key: "server.key".into(),
        },
        signing_key: "signing.key".into(),
        pool: PoolSettings::default(),
        stores: Default::default(),
        sso: None,
        fleet: FleetSettings {
            status_refresh_ms: 1000,
        },
        base: o.dir.clone(),
    };
    let text = format!("{}\n{STORES_HELP}", config.to_toml());
    // Stage 3: the state, with the admin user.
    let state = State::open(&o.dir.join("state.redb"))?;
    let admin = UserRecord::new(
        &o.admin_name,
        o.admin_nip.clone(),
        vec![Role::Admin],
        chrono::Utc::now(),
    );
    let admin_token = state.write(|txn| users::create(txn, &admin))?;
    drop(state);
    std::fs::set_permissions(
        o.dir.join("state.redb"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|source| Error::Write {
        path: o.dir.join("state.redb"),
        source,
    })?;
    // The config last: its presence means init completed.
    write_private(&config_path, text.as_bytes())?;
    Ok(InitOutcome {
        config_path,
        admin_token,
        ca_fingerprint: hex::encode(ca.fingerprint),
    })
}

const STORES_HELP: &str = "\
# Stores the policies name, with their credentials (they live here, never in a policy):
# [stores.pusat-data]
# url = \"/srv/cadang/onsite\"            # or s3://bucket/prefix?endpoint=https://minio:9000
# [stores.drc]
# url = \"s3://cadang-dr/regency?endpoint=https://drc.example:9000\"
# access_key_id = \"...\"
# secret_access_key = \"...\"
";

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| {
        Error::Write {
            path: dir.to_path_buf(),
            source,
        }
    })
}
