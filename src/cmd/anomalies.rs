//! `cadang anomalies`: the ransomware early warning as the controller sees
//! it — flagged backups with their reasons (English and Bahasa Indonesia),
//! retention holds, and the last clean snapshot of every source; and
//! `cadang anomalies clear`, one person's half of clearing a hold.

use anyhow::Result;
use cadang_controller::api::anomalies::{AnomalyList, ClearHold, ClearHoldResponse, HoldView};
use clap::{Args, Subcommand};

use super::fleet::ConnArgs;
use crate::ui;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AnomaliesArgs {
    #[command(subcommand)]
    command: Option<AnomaliesCommand>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Subcommand)]
enum AnomaliesCommand {
    /// Agree to clear a retention hold. It ends once an operator and the
    /// PD's Wali Data have both agreed (two different people, either order).
    Clear(ClearArgs),
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Only this PD's sources.
    #[arg(long, value_name = "CODE")]
    pd: Option<String>,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ClearArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[arg(long, value_name = "CODE")]
    pd: String,
    #[arg(long, value_name = "HOST")]
    host: String,
    #[arg(long, value_name = "SOURCE")]
    source: String,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(a: AnomaliesArgs) -> Result<u8> {
    match a.command {
        Some(AnomaliesCommand::Clear(c)) => clear(c).await,
        None => list(a.list).await,
    }
}

async fn list(a: ListArgs) -> Result<u8> {
    let path = match &a.pd {
        Some(pd) => format!("/api/v1/anomalies?pd={pd}"),
        None => "/api/v1/anomalies".to_string(),
    };
    let list: AnomalyList = a.conn.client()?.get(&path).await?;
    if a.json {
        ui::print_json(&list)?;
        return Ok(ui::EXIT_OK);
    }
    if list.sources.is_empty() {
        println!("no measured backups yet / belum ada pencadangan yang diukur");
        return Ok(ui::EXIT_OK);
    }
    for s in &list.sources {
        print_source(s);
    }
    Ok(ui::EXIT_OK)
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn print_source(s: &cadang_controller::api::anomalies::SourceAnomalies) {
    let state = match (&s.hold, s.last_flagged) {
        (Some(h), _) if h.active => "RANSOMWARE SUSPECTED / dugaan serangan ransomware",
        (_, true) => "flagged / ditandai",
        _ => "ok",
    };
    println!("{} {}/{}: {state}", s.pd, s.host, s.source);
    println!(
        "  last clean snapshot / cadangan bersih terakhir: {}",
        s.last_clean.as_deref().unwrap_or("-")
    );
    for f in &s.flags {
        println!(
            "  flagged / ditandai: snapshot {} ({})",
            short(&f.snapshot),
            f.time.format("%Y-%m-%d %H:%M UTC")
        );
        for r in &f.reasons {
            println!("    - {}", r.english);
            println!("      {}", r.indonesian);
        }
    }
    if let Some(h) = &s.hold {
        print_hold(h);
    }
}

fn print_hold(h: &HoldView) {
    let agreed = |who: &Option<String>| who.clone().unwrap_or_else(|| "-".into());
    if h.active {
        println!(
            "  retention hold / penahanan retensi: every snapshot before {} kept at both sites, and {} flagged; clear: operator {}, Wali Data {}",
            h.since.format("%Y-%m-%d %H:%M UTC"),
            h.flagged_snapshots.len(),
            agreed(&h.operator_agreed),
            agreed(&h.custodian_agreed)
        );
    } else if let Some(t) = h.cleared {
        println!(
            "  retention hold cleared / penahanan retensi dicabut {} (operator {}, Wali Data {})",
            t.format("%Y-%m-%d %H:%M UTC"),
            agreed(&h.operator_agreed),
            agreed(&h.custodian_agreed)
        );
    }
}

async fn clear(a: ClearArgs) -> Result<u8> {
    let body = ClearHold {
        pd: a.pd,
        host: a.host,
        source: a.source,
    };
    let r: ClearHoldResponse = a
        .conn
        .client()?
        .post("/api/v1/anomalies/clear", &body)
        .await?;
    if a.json {
        ui::print_json(&r)?;
    } else {
        println!("{}", r.message);
    }
    Ok(ui::EXIT_OK)
}
