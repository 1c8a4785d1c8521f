//! `controller.toml`: where the controller listens, keeps its state and reads
//! its policies, and the stores' URLs and credentials. Credentials live here
//! and only here: policies name stores, they never hold keys.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::{PoolConfig, StoreTarget};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// `host:port` of the HTTPS listener.
    pub listen: String,
    /// The redb state file.
    pub state: PathBuf,
    /// The directory with the regency file and one file per PD.
    pub policy_dir: PathBuf,
    pub tls: TlsFiles,
    /// The ed25519 key reports and drill results are signed with (hex).
    pub signing_key: PathBuf,
    #[serde(default)]
    pub pool: PoolSettings,
    /// By the store names the regency policy uses.
    #[serde(default)]
    pub stores: BTreeMap<String, StoreSettings>,
    /// Single sign-on through an OpenID provider (optional: local accounts
    /// always work). See `console::oidc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoSettings>,
    #[serde(default)]
    pub fleet: FleetSettings,
    /// The directory relative paths are resolved against (the config's).
    #[serde(skip)]
    pub base: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

#[derive(Clone, Serialize, Deserialize, Default)]
pub struct StoreSettings {
    /// A directory or `s3://BUCKET/PREFIX?endpoint=...`; each PD's repository
    /// is `<url>/<PD>` inside it.
    pub url: String,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &self.url)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// `[sso]`: the regency's OpenID provider. People are matched to cadang
/// users by the NIP claim; roles are still granted in cadang.
#[derive(Clone, Serialize, Deserialize)]
pub struct SsoSettings {
    /// The provider's issuer URL; its discovery document is
    /// `<issuer>/.well-known/openid-configuration`. HTTPS (plain HTTP only
    /// for a provider on the loopback interface, as in tests).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// The ID-token claim holding the civil servant's NIP.
    #[serde(default = "default_nip_claim")]
    pub nip_claim: String,
    /// Where the provider sends the browser back: the console's
    /// `/console/sso/callback` as people reach it
    /// (`https://cadang.example.go.id/console/sso/callback`). Register the
    /// same URL at the provider.
    pub redirect_url: String,
    /// Scopes asked for; the NIP claim usually needs its own scope.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// PEM file of the CAs trusted for the provider's HTTPS (default: the
    /// system bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The label of the console's SSO button (the provider's name).
    #[serde(default = "default_sso_label")]
    pub label: String,
}

fn default_nip_claim() -> String {
    "nip".into()
}
fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}
fn default_sso_label() -> String {
    "SSO".into()
}

impl std::fmt::Debug for SsoSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("nip_claim", &self.nip_claim)
            .field("redirect_url", &self.redirect_url)
            .finish_non_exhaustive()
    }
}

/// How fleet status is served.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FleetSettings {
    /// Rebuild the fleet status document this often (milliseconds) and
    /// serve the newest one instead of building one per call; 0 builds
    /// per call. `controller init` writes 1000 (see `fleet::document`).
    pub status_refresh_ms: u64,
}

impl FleetSettings {
    pub fn status_refresh(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.status_refresh_ms)
    }
}

/// Limits of the site-job pool (replicate, verify, prune).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolSettings {
    pub workers: usize,
    pub per_store: usize,
    pub timeout_minutes: u64,
    pub max_attempts: u32,
    pub backoff_base_seconds: u64,
    pub backoff_cap_seconds: u64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            workers: 4,
            per_store: 2,
            timeout_minutes: 6 * 60,
            max_attempts: 3,
            backoff_base_seconds: 60,
            backoff_cap_seconds: 3600,
        }
    }
}

impl PoolSettings {
    pub fn to_pool_config(&self) -> PoolConfig {
        use std::time::Duration;
        PoolConfig {
            workers: self.workers.max(1),
            per_store: self.per_store.max(1),
            timeout: Duration::from_secs(self.timeout_minutes.max(1) * 60),
            max_attempts: self.max_attempts.max(1),
            backoff_base: Duration::from_secs(self.backoff_base_seconds),
            backoff_cap: Duration::from_secs(self.backoff_cap_seconds),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// `p` as given, or relative to the config's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// The store called `name` (credentials included), if configured.
    pub fn store_target(&self, name: &str) -> Option<StoreTarget> {
        let s = self.stores.get(name)?;
        Some(StoreTarget {
            name: name.to_string(),
            url: s.url.clone(),
            credentials: match (&s.access_key_id, &s.secret_access_key) {
                (Some(k), Some(v)) => Some(cadang_s3::StaticCredentials {
                    access_key_id: k.clone(),
                    secret_access_key: v.clone(),
                    session_token: None,
                }),
                _ => None,
            },
        })
    }

    pub fn read_file(&self, p: &Path) -> Result<String> {
        let path = self.resolve(p);
        std::fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
    }
}

/// Creates `path` with mode 0600; refuses to overwrite.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                Error::Write {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })
}
