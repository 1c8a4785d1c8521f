//! `cadang repo ...`: create a repository, export the identity, enroll agents.

use std::path::PathBuf;

use crate::store::open_store;
use anyhow::{Context, Result};
use cadang_core::certify::Certifier;
use cadang_core::config::ChunkerParams;
use cadang_core::keys::{AgentKey, AgentPublicKey, Credentials};
use cadang_core::Repository;
use clap::Args;

use crate::ui;
use crate::{KeyArgs, RepoArg};

#[derive(Args)]
pub struct InitArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// The PD (agency) code this repository belongs to, e.g. DISDUKCAPIL.
    #[arg(long, value_name = "CODE")]
    pd: String,
    /// Where to write the agent credential file (recipient, chunk-id key, signing key; no identity).
    #[arg(long, value_name = "FILE")]
    agent_credentials: PathBuf,
    /// Name of the first agent (default: this host's name).
    #[arg(long)]
    agent_name: Option<String>,
    /// FastCDC minimum chunk size in bytes (even).
    #[arg(long, default_value_t = 512 * 1024)]
    chunk_min: u32,
    /// FastCDC average chunk size in bytes (even).
    #[arg(long, default_value_t = 1024 * 1024)]
    chunk_avg: u32,
    /// FastCDC maximum chunk size in bytes (even).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    chunk_max: u32,
}

pub async fn init(a: InitArgs) -> Result<u8> {
    let pd = a.pd.trim();
    if pd.is_empty()
        || !pd
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        anyhow::bail!(
            "--pd must be a code of letters, digits, '-' or '_' (got {:?})",
            a.pd
        );
    }
    if a.agent_credentials.exists() {
        anyhow::bail!(
            "{} already exists; refusing to overwrite a credential file",
            a.agent_credentials.display()
        );
    }
    let chunker = ChunkerParams {
        min_size: a.chunk_min,
        avg_size: a.chunk_avg,
        max_size: a.chunk_max,
        ..ChunkerParams::default()
    };
    chunker.validate()?;
    let passphrase = ui::passphrase(true)?;
    let backend = open_store(&a.repo.repo)?;
    let agent = a.agent_name.unwrap_or_else(cadang_core::lock::hostname);
    let out = Repository::init(backend, pd, &agent, &passphrase, chunker).await?;
    ui::write_private(&a.agent_credentials, &out.credentials.to_json())?;
    println!(
        "created repository {} for PD {pd} at {}",
        out.repo.config.id.short(),
        out.repo.location()
    );
    println!(
        "agent credential file: {} (keep it on the agent; it cannot read backups)",
        a.agent_credentials.display()
    );
    println!(
        "the data key is wrapped by the custodian's passphrase; without it nothing can be restored"
    );
    if let Some(k) = &out.credentials.custodian_key {
        println!("custodian public key (trust anchor for `check --trust-key`): {k}");
    }
    Ok(ui::EXIT_OK)
}

#[derive(Args)]
pub struct ExportIdentityArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// File to create (mode 0600) with the AGE-SECRET-KEY line.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub async fn export_identity(a: ExportIdentityArgs) -> Result<u8> {
    let repo = ui::open_repo(&a.repo.repo).await?;
    let identity = ui::identity(&repo, None).await?;
    let text = format!(
        "# cadang data identity for PD {} repository {}\n# whoever holds this file can read every backup of this PD\n{}\n",
        repo.config.pd,
        repo.config.id,
        identity.encode()
    );
    ui::write_private(&a.out, text.as_bytes())?;
    println!("wrote {}", a.out.display());
    Ok(ui::EXIT_OK)
}

#[derive(Args)]
pub struct AddAgentArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    key: KeyArgs,
    /// The new agent's name, e.g. its host name.
    #[arg(long)]
    agent_name: String,
    /// Where to write its credential file.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "public_key",
        conflicts_with = "public_key"
    )]
    agent_credentials: Option<PathBuf>,
    /// Instead of creating a new agent, certify this existing agent public key (64 hex digits,
    /// from `keys/agent-*.json`), e.g. one enrolled before signers were certified. Confirm the
    /// key with the agent's operator first: a key certified here may sign snapshots.
    #[arg(long, value_name = "HEX")]
    public_key: Option<String>,
}

pub async fn add_agent(a: AddAgentArgs) -> Result<u8> {
    let repo = ui::open_repo(&a.repo.repo).await?;
    let identity = ui::identity(&repo, a.key.identity.as_deref()).await?;
    let custodian = Certifier::custodian(&identity);
    let Some(credentials_path) = &a.agent_credentials else {
        let hex = a.public_key.as_deref().unwrap_or_default();
        let key = AgentPublicKey::from_hex(hex.trim())?;
        repo.register_agent_certified(&a.agent_name, &key, &custodian)
            .await?;
        println!(
            "certified agent key {} as {} with the custodian key {}",
            key.to_hex(),
            a.agent_name,
            custodian.public_hex()
        );
        return Ok(ui::EXIT_OK);
    };
    let secret = repo
        .secret(&identity)
        .await
        .context("recovering the repository secret")?;
    let key = AgentKey::generate();
    let creds = Credentials {
        format: Credentials::FORMAT.into(),
        version: 1,
        repo_id: repo.config.id,
        pd: repo.config.pd.clone(),
        agent_name: a.agent_name.clone(),
        data_recipient: repo.config.data_recipient.clone(),
        repo_secret: secret,
        agent_signing_key: key.to_hex(),
        custodian_key: Some(custodian.public_hex()),
    };
    ui::write_private(credentials_path, &creds.to_json())?;
    // Certified by the custodian key derived from the identity just
    // unlocked: only the Wali Data can add a signer.
    repo.register_agent_certified(&a.agent_name, &key.public(), &custodian)
        .await?;
    println!(
        "enrolled agent {} ({}), certified by the custodian key {}",
        a.agent_name,
        &key.public().to_hex()[..16],
        custodian.public_hex()
    );
    Ok(ui::EXIT_OK)
}
