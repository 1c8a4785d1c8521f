//! `cadang agent enroll` and `cadang agent run`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use cadang_agent::daemon::{
    self, AgentConfig, DaemonError, EnrollOptions, EnrollmentToken, SystemClock,
};
use clap::{Args, Subcommand};

use crate::ui;

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Enroll this server with a controller (one-time token from `cadang controller enroll-token`).
    Enroll(EnrollArgs),
    /// Run the agent: long-poll the controller, back up on schedule, deliver reports.
    Run(RunArgs),
}

#[derive(Args)]
pub struct EnrollArgs {
    /// The controller, e.g. https://cadang.example.go.id:8443
    #[arg(long, value_name = "URL")]
    controller: String,
    /// A file holding the enrollment token (or set CADANG_ENROLL_TOKEN); never the token itself on the command line.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Where the agent keeps its keys, policy, spool and ledger (created, mode 0700).
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// The host name to enroll as (default: this host's name); must match the token's.
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
}

#[derive(Args)]
pub struct RunArgs {
    /// The agent.toml written by `cadang agent enroll`.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// The daemon's progress (started, job received, job ended) is logged at
/// info; other commands stay quiet unless CADANG_LOG says otherwise. Call
/// before logging is set up, while the process has one thread.
pub fn prefer_info_logs(c: &AgentCommand) {
    if matches!(c, AgentCommand::Run(_)) && std::env::var_os("CADANG_LOG").is_none() {
        std::env::set_var("CADANG_LOG", "info");
    }
}

pub async fn run(c: AgentCommand) -> Result<u8> {
    match c {
        AgentCommand::Enroll(a) => enroll(a).await,
        AgentCommand::Run(a) => run_daemon(a).await,
    }
}

fn read_token(file: Option<&PathBuf>) -> Result<EnrollmentToken> {
    let text = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the token file {}", f.display()))?,
        None => std::env::var("CADANG_ENROLL_TOKEN").map_err(|_| {
            anyhow::anyhow!(
                "no enrollment token: give --token-file FILE or set CADANG_ENROLL_TOKEN"
            )
        })?,
    };
    Ok(text.trim().parse::<EnrollmentToken>()?)
}

async fn enroll(a: EnrollArgs) -> Result<u8> {
    let token = read_token(a.token_file.as_ref())?;
    let config = daemon::enroll(EnrollOptions {
        controller: a.controller,
        token,
        state_dir: a.state_dir,
        host: a.host.unwrap_or_else(cadang_core::lock::hostname),
    })
    .await?;
    println!(
        "enrolled {} (agent {}, PD {}) with {}\nstart it with: cadang agent run --config {}",
        config.host,
        config.agent_id,
        config.pd,
        config.controller,
        config.paths().config().display()
    );
    Ok(ui::EXIT_OK)
}

async fn run_daemon(a: RunArgs) -> Result<u8> {
    let config = AgentConfig::load(&a.config)?;
    let shutdown = daemon::shutdown_on_signals()?;
    match daemon::run(config, Arc::new(SystemClock), shutdown).await {
        Ok(()) => Ok(ui::EXIT_OK),
        Err(e @ DaemonError::Revoked { .. }) => {
            eprintln!("error: {e}");
            Ok(daemon::EXIT_REVOKED)
        }
        Err(e) => Err(e.into()),
    }
}
