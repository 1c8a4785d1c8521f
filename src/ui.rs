//! Terminal and output helpers: secrets, progress, formatting, errors.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use cadang_core::keys::{Credentials, DataIdentity};
use cadang_core::Repository;

pub const EXIT_OK: u8 = 0;
/// The command ran but found damage, or could not include everything.
pub const EXIT_INCOMPLETE: u8 = 3;

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CADANG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    if std::io::stderr().is_terminal() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .init();
    } else {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
}

/// One line, the whole cause chain, for the operator.
pub fn describe(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

pub async fn open_repo(store: &str) -> Result<Arc<Repository>> {
    let backend = crate::store::open_store(store)?;
    Ok(Arc::new(Repository::open(backend).await?))
}

pub fn passphrase(confirm: bool) -> Result<String> {
    if let Ok(p) = std::env::var("CADANG_PASSPHRASE") {
        if p.is_empty() {
            bail!("CADANG_PASSPHRASE is set but empty");
        }
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set CADANG_PASSPHRASE or run the command on a terminal to be asked for it");
    }
    let p = rpassword::prompt_password("Custodian passphrase (Wali Data): ")
        .context("reading the passphrase")?;
    if confirm {
        let again = rpassword::prompt_password("Repeat the passphrase: ")
            .context("reading the passphrase")?;
        if again != p {
            bail!("the passphrases do not match; nothing was created");
        }
        if p.chars().count() < 12 {
            bail!("the passphrase is too short: use at least 12 characters");
        }
    }
    Ok(p)
}

/// The custodian's identity: from --identity, else unwrapped with the passphrase.
pub async fn identity(repo: &Repository, file: Option<&Path>) -> Result<DataIdentity> {
    match file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading identity file {}", f.display()))?;
            let id = DataIdentity::parse(&text)
                .with_context(|| format!("identity file {}", f.display()))?;
            repo.check_identity(&id).map_err(|_| {
                anyhow!(
                    "identity file {} does not belong to this repository",
                    f.display()
                )
            })?;
            Ok(id)
        }
        None => Ok(repo.unlock(&passphrase(false)?).await?),
    }
}

pub fn credentials(path: &Path) -> Result<Credentials> {
    let data = std::fs::read(path)
        .with_context(|| format!("reading credential file {}", path.display()))?;
    Credentials::from_json(&data).with_context(|| format!("credential file {}", path.display()))
}

/// Writes a secret file readable only by its owner; never replaces one.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn default_cache_dir() -> Option<std::path::PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(Path::new(&x).join("cadang"));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache").join("cadang"))
}

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}
