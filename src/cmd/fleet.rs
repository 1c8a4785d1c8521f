//! The operator CLI over the controller's API: `fleet status`, `jobs`,
//! `backup-now`, `snapshots --pd`. The token comes from CADANG_TOKEN only,
//! never from the command line.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cadang_controller::client::ApiClient;
use cadang_controller::proto::api::{
    BackupNowRequest, BackupNowResponse, FleetStatus, JobList, SnapshotList,
};
use clap::{Args, Subcommand};

use crate::ui;

/// Where the controller is and how to trust it.
#[derive(Args, Clone)]
pub struct ConnArgs {
    /// The controller, e.g. https://cadang.example.go.id:8443
    #[arg(long, value_name = "URL", env = "CADANG_CONTROLLER")]
    pub controller: Option<String>,
    /// The controller's CA certificate (ca.pem from `controller init`).
    #[arg(long, value_name = "FILE", env = "CADANG_CA")]
    pub ca: Option<PathBuf>,
}

impl ConnArgs {
    pub fn client(&self) -> Result<ApiClient> {
        let url = self
            .controller
            .as_deref()
            .context("no controller: pass --controller URL or set CADANG_CONTROLLER")?;
        let ca_path = self
            .ca
            .as_deref()
            .context("no CA: pass --ca FILE or set CADANG_CA (the controller's ca.pem)")?;
        let ca = std::fs::read_to_string(ca_path)
            .with_context(|| format!("reading {}", ca_path.display()))?;
        let token = std::env::var("CADANG_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .context("set CADANG_TOKEN to your API token (it never goes on the command line)")?;
        Ok(ApiClient::new(url, &ca, None, Some(token))?)
    }
}

#[derive(Subcommand)]
pub enum FleetCommand {
    /// Per PD and agent: last backup per source, RPO status, replication lag, last contact.
    Status(StatusArgs),
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct JobsArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Only jobs that did not succeed.
    #[arg(long)]
    failed: bool,
    /// Only this PD's jobs.
    #[arg(long, value_name = "CODE")]
    pd: Option<String>,
    /// Only this kind: backup, replicate, verify, retention, repair, restore.
    #[arg(long)]
    kind: Option<String>,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct BackupNowArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The PD server.
    host: String,
    /// One source of it (default: every source).
    source: Option<String>,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn fleet(c: FleetCommand) -> Result<u8> {
    let FleetCommand::Status(a) = c;
    let status: FleetStatus = a.conn.client()?.get("/api/v1/fleet").await?;
    if a.json {
        ui::print_json(&status)?;
        return Ok(ui::EXIT_OK);
    }
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "never".into())
    };
    let lag = |s: Option<i64>| {
        s.map(|s| format!("{}h{:02}m", s / 3600, (s % 3600) / 60))
            .unwrap_or_else(|| "-".into())
    };
    for pd in &status.pds {
        let sites: Vec<String> = pd
            .sites
            .iter()
            .map(|s| {
                format!(
                    "{} {} (lag {})",
                    s.site,
                    if s.rpo_ok { "RPO ok" } else { "RPO MISSED" },
                    lag(s.lag_seconds)
                )
            })
            .collect();
        println!(
            "{}{}  {}",
            pd.pd,
            if pd.registered {
                ""
            } else {
                " (not registered)"
            },
            sites.join(", ")
        );
        println!(
            "  {:<24} {:<9} {:<20} {:<14} {:<20} {:<10} RPO",
            "HOST", "STATE", "LAST SEEN", "SOURCE", "LAST SUCCESS", "OUTCOME"
        );
        for a in &pd.agents {
            let state = if a.revoked {
                "revoked"
            } else if a.connected {
                "connected"
            } else {
                "away"
            };
            if a.sources.is_empty() {
                println!("  {:<24} {:<9} {:<20}", a.host, state, when(a.last_seen));
            }
            for s in &a.sources {
                println!(
                    "  {:<24} {:<9} {:<20} {:<14} {:<20} {:<10} {}",
                    a.host,
                    state,
                    when(a.last_seen),
                    s.source,
                    when(s.last_success),
                    s.last_outcome.as_deref().unwrap_or("-"),
                    if s.rpo_ok { "ok" } else { "MISSED" }
                );
            }
        }
    }
    Ok(ui::EXIT_OK)
}

pub async fn jobs(a: JobsArgs) -> Result<u8> {
    let mut query = vec![format!("failed={}", a.failed)];
    if let Some(pd) = &a.pd {
        query.push(format!("pd={pd}"));
    }
    if let Some(k) = &a.kind {
        query.push(format!("kind={k}"));
    }
    let list: JobList = a
        .conn
        .client()?
        .get(&format!("/api/v1/jobs?{}", query.join("&")))
        .await?;
    if a.json {
        ui::print_json(&list)?;
        return Ok(ui::EXIT_OK);
    }
    println!(
        "{:<14} {:<10} {:<12} {:<28} {:<10} {:<12} {:<17} MESSAGE",
        "ID", "KIND", "PD", "HOST/SOURCE OR SITE", "STATE", "OUTCOME", "FINISHED (UTC)"
    );
    for j in &list.jobs {
        let what = match (&j.host, &j.source, &j.site) {
            (Some(h), Some(s), _) => format!("{h}/{s}"),
            (_, _, Some(site)) => site.clone(),
            _ => "-".into(),
        };
        println!(
            "{:<14} {:<10} {:<12} {:<28} {:<10} {:<12} {:<17} {}",
            j.id,
            j.kind,
            j.pd,
            what,
            j.state,
            j.outcome.as_deref().unwrap_or("-"),
            j.finished
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "-".into()),
            j.message
        );
    }
    Ok(ui::EXIT_OK)
}

pub async fn backup_now(a: BackupNowArgs) -> Result<u8> {
    let r: BackupNowResponse = a
        .conn
        .client()?
        .post(
            &format!("/api/v1/hosts/{}/backup-now", a.host),
            &BackupNowRequest {
                source: a.source.clone(),
            },
        )
        .await?;
    if a.json {
        ui::print_json(&r)?;
        return Ok(ui::EXIT_OK);
    }
    for j in &r.jobs {
        println!("queued job {j} on {}", a.host);
    }
    for s in &r.busy {
        println!(
            "{}/{s}: a backup is already queued or running; not queued twice",
            a.host
        );
    }
    Ok(ui::EXIT_OK)
}

/// `cadang snapshots --pd CODE`: the controller's catalogue.
pub async fn snapshots_for_pd(conn: &ConnArgs, pd: &str, json: bool) -> Result<u8> {
    let list: SnapshotList = conn
        .client()?
        .get(&format!("/api/v1/pds/{pd}/snapshots"))
        .await?;
    if json {
        ui::print_json(&list)?;
        return Ok(ui::EXIT_OK);
    }
    println!(
        "{:<12} {:<25} {:<24} {:<14} {:>8} {:>12}",
        "ID", "TIME (UTC)", "HOST", "SOURCE", "FILES", "ADDED"
    );
    for s in &list.snapshots {
        println!(
            "{:<12} {:<25} {:<24} {:<14} {:>8} {:>12}",
            s.id.chars().take(10).collect::<String>(),
            s.time.format("%Y-%m-%d %H:%M:%S"),
            s.host,
            s.source,
            s.files,
            ui::human_bytes(s.bytes_added)
        );
    }
    Ok(ui::EXIT_OK)
}
