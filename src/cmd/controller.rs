//! `cadang controller ...` (init, run, enroll-token, revoke, rebuild) and
//! `cadang pd register`.
//!
//! enroll-token and revoke write the controller's state directly when the
//! controller is stopped; while it runs (the state file is locked) they go
//! through its API with the admin or operator token in CADANG_TOKEN.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cadang_controller::client::ApiClient;
use cadang_controller::config::Config;
use cadang_controller::proto::agent::AgentRole;
use cadang_controller::proto::api::{
    EnrollTokenRequest, EnrollTokenResponse, RegisterPd, RegisterPdResponse, RevokeResponse,
};
use cadang_controller::state::{agents, State};
use cadang_controller::Error as CtlError;
use clap::{Args, Subcommand, ValueEnum};

use crate::ui;

#[derive(Subcommand)]
pub enum ControllerCommand {
    /// Create the controller's CA, certificates, signing key, admin token and controller.toml.
    Init(InitArgs),
    /// Run the controller daemon (HTTPS API, scheduler, site jobs).
    Run(ConfigArg),
    /// Print a one-time enrollment token for a PD server.
    EnrollToken(EnrollTokenArgs),
    /// Revoke every enrollment of a host: its next request is refused.
    Revoke(RevokeArgs),
    /// Re-create the snapshot catalogue from the PD repositories in the stores (controller stopped).
    Rebuild(ConfigArg),
}

#[derive(Subcommand)]
pub enum PdCommand {
    /// Register a PD's repository with the controller (the custodian runs this; the identity never leaves).
    Register(RegisterArgs),
}

#[derive(Args)]
pub struct ConfigArg {
    /// controller.toml (from `cadang controller init`).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Args)]
pub struct InitArgs {
    /// Directory to create the controller's files in (mode 0700; files 0600).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// A DNS name or IP address for the server certificate (repeat; default: localhost, 127.0.0.1, this host's name).
    #[arg(long = "name", value_name = "HOST")]
    names: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    listen: String,
    /// The administrator the printed API token belongs to.
    #[arg(long, default_value = "admin")]
    admin_name: String,
    /// The administrator's NIP (18 digits).
    #[arg(long, value_name = "NIP")]
    admin_nip: Option<String>,
    /// The regency's name (in the CA's name).
    #[arg(long, default_value = "cadang")]
    regency: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Backup,
    DrillRunner,
}

#[derive(Args)]
pub struct EnrollTokenArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The PD server's host name (the agent must enroll with this name).
    #[arg(long)]
    host: String,
    /// The PD (agency) code.
    #[arg(long, value_name = "CODE")]
    pd: String,
    #[arg(long, value_enum, default_value = "backup")]
    role: RoleArg,
    /// How long the token stays valid: 30m, 24h, 7d.
    #[arg(long, default_value = "24h")]
    ttl: String,
}

#[derive(Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The host whose agent is refused from now on.
    host: String,
}

#[derive(Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    conn: crate::cmd::fleet::ConnArgs,
    /// The credential file `cadang repo init` wrote.
    #[arg(long, value_name = "FILE")]
    credentials: PathBuf,
}

pub async fn run(c: ControllerCommand) -> Result<u8> {
    match c {
        ControllerCommand::Init(a) => init(a),
        ControllerCommand::Run(a) => serve(&a.config).await,
        ControllerCommand::EnrollToken(a) => enroll_token(a).await,
        ControllerCommand::Revoke(a) => revoke(a).await,
        ControllerCommand::Rebuild(a) => rebuild(&a.config).await,
    }
}

pub async fn pd(c: PdCommand) -> Result<u8> {
    match c {
        PdCommand::Register(a) => register(a).await,
    }
}

fn init(a: InitArgs) -> Result<u8> {
    let a_admin_name = shell_word(&a.admin_name);
    let out = cadang_controller::init::init(&cadang_controller::init::InitOptions {
        dir: a.dir,
        names: a.names,
        listen: a.listen,
        admin_name: a.admin_name,
        admin_nip: a.admin_nip,
        regency: a.regency,
    })?;
    println!("controller config: {}", out.config_path.display());
    println!("CA fingerprint (SHA-256): {}", out.ca_fingerprint);
    println!("add the stores and their credentials to the config, and policies to its policies/ directory");
    println!("admin API token (shown once; keep it as CADANG_TOKEN):");
    println!("{}", out.admin_token);
    println!("to sign in to the console (https://HOST:PORT/console/), give the admin a password now, before the first start:");
    println!(
        "  cadang user reset --config {} {}",
        out.config_path.display(),
        a_admin_name
    );
    Ok(ui::EXIT_OK)
}

async fn serve(config: &Path) -> Result<u8> {
    let config = Config::load(config)?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let options = cadang_controller::daemon::Options {
        sighup: true,
        ..Default::default()
    };
    let clock = Arc::new(cadang_controller::engine::SystemClock);
    cadang_controller::daemon::run_with(listener, config, clock, stop_signal(), options).await?;
    Ok(ui::EXIT_OK)
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// `name` quoted for a shell when it needs it (`'Admin Diskominfo'`).
fn shell_word(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        name.to_string()
    } else {
        format!("'{}'", name.replace('\'', "'\\''"))
    }
}

/// `30m`, `24h`, `7d`, `90s`.
pub fn parse_ttl(s: &str) -> Result<chrono::Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .with_context(|| format!("--ttl {s:?}: expected a number and a unit (30m, 24h, 7d)"))?;
    Ok(match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" | "" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        _ => bail!("--ttl {s:?}: the unit must be s, m, h or d"),
    })
}

/// A client for the running controller named by `config` (listen address,
/// its CA), with CADANG_TOKEN.
fn local_client(config: &Config) -> Result<ApiClient> {
    let token = std::env::var("CADANG_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .context("the controller is running (its state is locked): set CADANG_TOKEN to an admin or operator token to do this through its API")?;
    let port = config.listen.rsplit(':').next().unwrap_or("8443");
    let ca = config.read_file(&config.tls.ca_cert)?;
    Ok(ApiClient::new(
        &format!("https://127.0.0.1:{port}"),
        &ca,
        None,
        Some(token),
    )?)
}

async fn enroll_token(a: EnrollTokenArgs) -> Result<u8> {
    let config = Config::load(&a.config.config)?;
    let ttl = parse_ttl(&a.ttl)?;
    let role = match a.role {
        RoleArg::Backup => AgentRole::Backup,
        RoleArg::DrillRunner => AgentRole::DrillRunner,
    };
    let (token, expires) = match State::open(&config.resolve(&config.state)) {
        Ok(state) => {
            let ca = cadang_controller::ca::Ca::load(
                &config.read_file(&config.tls.ca_cert)?,
                &config.read_file(&config.tls.ca_key)?,
            )?;
            let (t, e) = cadang_controller::enroll::issue_token(
                &state,
                ca.fingerprint,
                &a.host,
                &a.pd,
                role,
                ttl,
                chrono::Utc::now(),
            )?;
            (t.to_string(), e)
        }
        Err(CtlError::StateBusy { .. }) => {
            let r: EnrollTokenResponse = local_client(&config)?
                .post(
                    "/api/v1/enroll-tokens",
                    &EnrollTokenRequest {
                        host: a.host.clone(),
                        pd: a.pd.clone(),
                        role,
                        ttl_seconds: ttl.num_seconds().max(0) as u64,
                    },
                )
                .await?;
            (r.token, r.expires)
        }
        Err(e) => return Err(e.into()),
    };
    eprintln!(
        "one-time token for host {} (PD {}), valid until {expires}:",
        a.host, a.pd
    );
    println!("{token}");
    Ok(ui::EXIT_OK)
}

async fn revoke(a: RevokeArgs) -> Result<u8> {
    let config = Config::load(&a.config.config)?;
    let revoked = match State::open(&config.resolve(&config.state)) {
        Ok(state) => state.write(|txn| {
            let revoked = agents::revoke_host(txn, &a.host, chrono::Utc::now())?;
            if !revoked.is_empty() {
                // The same entry the API's revocation writes, in the same
                // transaction: a revocation the log lacks never happened.
                let entry = cadang_controller::audit::NewEntry::new(
                    &super::user::actor(),
                    "agent.revoke",
                    &a.host,
                    "ok",
                )
                .detail(serde_json::json!({ "host": a.host, "agents": revoked }));
                cadang_controller::audit::store::append_in(txn, entry, chrono::Utc::now())?;
            }
            Ok(revoked)
        })?,
        Err(CtlError::StateBusy { .. }) => {
            let r: RevokeResponse = local_client(&config)?
                .post(&format!("/api/v1/hosts/{}/revoke", a.host), &())
                .await?;
            r.agents
        }
        Err(e) => return Err(e.into()),
    };
    if revoked.is_empty() {
        bail!(
            "no agent of host {} is enrolled (or it is revoked already)",
            a.host
        );
    }
    println!(
        "revoked {} ({}); its next request is refused",
        a.host,
        revoked.join(", ")
    );
    Ok(ui::EXIT_OK)
}

async fn rebuild(config: &Path) -> Result<u8> {
    let config = Config::load(config)?;
    let state = State::open(&config.resolve(&config.state))?;
    let report = cadang_controller::rebuild::rebuild(&config, &state).await?;
    for (pd, store, n) in &report.found {
        println!("{pd} in {store}: {n} snapshots");
    }
    for p in &report.problems {
        eprintln!("problem: {p}");
    }
    Ok(if report.problems.is_empty() {
        ui::EXIT_OK
    } else {
        1
    })
}

async fn register(a: RegisterArgs) -> Result<u8> {
    let creds = ui::credentials(&a.credentials)?;
    // Only these three travel; the file holds no identity, and its signing
    // key stays here too.
    let req = RegisterPd {
        pd: creds.pd.clone(),
        repo_id: creds.repo_id.to_string(),
        data_recipient: creds.data_recipient.clone(),
        repo_secret_json: String::from_utf8(creds.repo_secret.to_json())
            .context("repository secret")?,
    };
    let r: RegisterPdResponse = a.conn.client()?.post("/api/v1/pds", &req).await?;
    println!(
        "PD {} registered with repository {}{}",
        r.pd,
        r.repo_id,
        if r.new {
            ""
        } else {
            " (it was registered already)"
        }
    );
    Ok(ui::EXIT_OK)
}
