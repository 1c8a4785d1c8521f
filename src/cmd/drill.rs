//! `cadang drill`: restore drills. `grant` runs on the Wali Data's own
//! machine: it fetches the PD's passphrase-wrapped identity and the drill
//! runner's age recipient, unwraps the identity here, seals a drill grant
//! to the runner and posts only the sealed envelope. `grants`, `revoke`,
//! `list`, `show` and `report` read and manage what the controller holds.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cadang_controller::proto::drill::{
    decode_envelope, DrillList, DrillView, GrantList, GrantMaterial, GrantPayload, GrantUpload,
    GrantView, DRILL_SCOPE, MAX_GRANT_DAYS,
};
use cadang_core::keys::DataIdentity;
use clap::{Args, Subcommand, ValueEnum};

use super::fleet::ConnArgs;
use crate::ui;

#[derive(Subcommand)]
pub enum DrillCommand {
    /// Grant restore drills of a PD to one drill runner (the Wali Data, on their own machine).
    Grant(GrantArgs),
    /// List drill grants.
    Grants(ListArgs),
    /// Revoke a drill grant: no drill uses it from now on.
    Revoke(IdArgs),
    /// List drills and their results.
    List(ListArgs),
    /// Show one drill.
    Show(IdArgs),
    /// Fetch a drill's signed report (JSON), or its PDF or HTML rendering.
    Report(ReportArgs),
}

#[derive(Args)]
pub struct GrantArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[arg(long, value_name = "CODE")]
    pd: String,
    /// The drill runner's host name (enrolled with `--role drill-runner`).
    #[arg(long, value_name = "HOST")]
    runner: String,
    /// How long the grant lasts: 90d, 365d (at most a year).
    #[arg(long, default_value = "365d")]
    valid: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct IdArgs {
    #[command(flatten)]
    conn: ConnArgs,
    id: String,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    Pdf,
    Html,
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The drill id (`cadang drill list`).
    id: String,
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// `id` (Bahasa Indonesia) or `en`, for PDF and HTML.
    #[arg(long, default_value = "id")]
    lang: String,
    /// Where to write it (default: standard output).
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub async fn run(c: DrillCommand) -> Result<u8> {
    match c {
        DrillCommand::Grant(a) => grant(a).await,
        DrillCommand::Grants(a) => grants(a).await,
        DrillCommand::Revoke(a) => revoke(a).await,
        DrillCommand::List(a) => list(a).await,
        DrillCommand::Show(a) => show(a).await,
        DrillCommand::Report(a) => report(a).await,
    }
}

/// Fetch the material → unwrap the identity here → seal → post the envelope.
async fn grant(a: GrantArgs) -> Result<u8> {
    let valid = cadang_policies::duration::parse_duration(&a.valid)
        .map_err(|e| anyhow::anyhow!("--valid {:?}: {e}", a.valid))?;
    let valid = chrono::Duration::from_std(valid).context("--valid is too long")?;
    if valid > chrono::Duration::days(MAX_GRANT_DAYS) {
        bail!(
            "--valid {}: a drill grant lasts at most {MAX_GRANT_DAYS} days",
            a.valid
        );
    }
    let client = a.conn.client()?;
    let material: GrantMaterial = client
        .get(&format!(
            "/api/v1/pds/{}/drill-grant-material?runner={}",
            a.pd, a.runner
        ))
        .await?;
    let not_after = chrono::Utc::now() + valid;
    if not_after > material.max_not_after {
        bail!(
            "--valid {}: the controller accepts grants until {} at most",
            a.valid,
            material.max_not_after
        );
    }
    eprintln!(
        "granting restore drills of PD {} to drill runner {} (agent {}) until {}",
        material.pd, material.runner, material.runner_agent_id, not_after
    );
    let wrapped = decode_envelope(&material.wrapped_identity)
        .map_err(|e| anyhow::anyhow!("the controller's wrapped identity: {e}"))?;
    let passphrase = ui::passphrase(false)?;
    let identity = tokio::task::spawn_blocking(move || DataIdentity::unwrap(&wrapped, &passphrase))
        .await
        .context("unwrapping the identity")??;
    let mut payload = GrantPayload {
        pd: material.pd.clone(),
        runner: material.runner.clone(),
        scope: DRILL_SCOPE.into(),
        not_after,
        identity: identity.encode(),
        trust_keys: [material.controller_key.clone()]
            .into_iter()
            .filter(|k| !k.is_empty())
            .collect(),
    };
    drop(identity);
    let sealed = cadang_agent::daemon::drill::seal_grant(&material.runner_recipient, &payload);
    cadang_agent::daemon::drill::wipe(&mut payload);
    let envelope = sealed.map_err(|e| anyhow::anyhow!("sealing the grant: {e}"))?;
    let view: GrantView = client
        .post(
            &format!("/api/v1/pds/{}/drill-grants", a.pd),
            &GrantUpload {
                runner: material.runner,
                not_after,
                envelope,
            },
        )
        .await?;
    if a.json {
        ui::print_json(&view)?;
    } else {
        println!(
            "drill grant {} for PD {} on runner {} until {}",
            view.id, view.pd, view.runner, view.not_after
        );
    }
    Ok(ui::EXIT_OK)
}

async fn grants(a: ListArgs) -> Result<u8> {
    let list: GrantList = a.conn.client()?.get("/api/v1/drill-grants").await?;
    if a.json {
        ui::print_json(&list)?;
        return Ok(ui::EXIT_OK);
    }
    for g in &list.grants {
        let state = match g.revoked {
            Some(t) => format!("revoked {t}"),
            None if g.not_after <= chrono::Utc::now() => "expired".into(),
            None => "active".into(),
        };
        println!(
            "{:<28} {:<14} {:<20} until {}  by {}  {state}",
            g.id, g.pd, g.runner, g.not_after, g.granted_by
        );
    }
    println!("{} grant(s)", list.grants.len());
    Ok(ui::EXIT_OK)
}

async fn revoke(a: IdArgs) -> Result<u8> {
    let g: GrantView = a
        .conn
        .client()?
        .post(
            &format!("/api/v1/drill-grants/{}/revoke", a.id),
            &serde_json::json!({}),
        )
        .await?;
    if a.json {
        ui::print_json(&g)?;
    } else {
        println!("drill grant {} of PD {} revoked", g.id, g.pd);
    }
    Ok(ui::EXIT_OK)
}

fn print_drill(d: &DrillView) {
    let time = d
        .restore_seconds
        .map(|s| format!("{s} s of {} s", d.rto_seconds))
        .unwrap_or_else(|| "-".into());
    println!(
        "{:<26} {:<14} {:<8} runner {:<18} snapshot {:<10} time {time}{}",
        d.id,
        d.pd,
        d.state,
        d.runner,
        d.snapshot
            .as_deref()
            .map(|s| &s[..s.len().min(10)])
            .unwrap_or("-"),
        if d.has_report {
            "  (signed report)"
        } else {
            ""
        }
    );
    for r in &d.reasons {
        println!("    {r}");
    }
}

async fn list(a: ListArgs) -> Result<u8> {
    let list: DrillList = a.conn.client()?.get("/api/v1/drills").await?;
    if a.json {
        ui::print_json(&list)?;
        return Ok(ui::EXIT_OK);
    }
    list.drills.iter().for_each(print_drill);
    println!("{} drill(s)", list.drills.len());
    Ok(ui::EXIT_OK)
}

async fn show(a: IdArgs) -> Result<u8> {
    let d: DrillView = a
        .conn
        .client()?
        .get(&format!("/api/v1/drills/{}", a.id))
        .await?;
    if a.json {
        ui::print_json(&d)?;
    } else {
        print_drill(&d);
    }
    Ok(if d.state == "failed" {
        ui::EXIT_INCOMPLETE
    } else {
        ui::EXIT_OK
    })
}

async fn report(a: ReportArgs) -> Result<u8> {
    let ext = match a.format {
        Format::Json => "json",
        Format::Pdf => "pdf",
        Format::Html => "html",
    };
    let path = format!("/api/v1/drills/{}/report.{ext}?lang={}", a.id, a.lang);
    let (status, bytes) = a.conn.client()?.raw("GET", &path, None).await?;
    if !(200..300).contains(&status) {
        let message = serde_json::from_slice::<cadang_controller::proto::api::ApiError>(&bytes)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
        bail!("the controller answered {status}: {message}");
    }
    match &a.out {
        Some(p) => std::fs::write(p, &bytes).with_context(|| format!("writing {}", p.display()))?,
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
        }
    }
    Ok(ui::EXIT_OK)
}
