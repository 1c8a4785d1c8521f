//! `cadang restore request|list|show|approve|reject|cancel`: restore
//! requests through the controller. `approve` runs on the Wali Data's own
//! machine: the passphrase and the unwrapped identity never leave it; only
//! an envelope sealed to the restoring agent is sent.
//!
//! `cadang restore SNAPSHOT --target DIR` (a direct restore with the
//! custodian key, no controller) stays as it was (`read.rs`).

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use base64::Engine;
use cadang_agent::daemon::envelope;
use cadang_controller::proto::restore::{
    paths, ApprovalMaterial, ApproveRestore, EnvelopePayload, FileRestore, RejectRestore,
    RestoreList, RestoreRequest, RestoreWhat, ENVELOPE_FORMAT,
};
use cadang_core::keys::DataIdentity;
use clap::{Args, Subcommand};
use zeroize::{Zeroize, Zeroizing};

use crate::cmd::fleet::ConnArgs;
use crate::ui;

/// `cadang restore`: a subcommand, or the direct restore's arguments.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RestoreCli {
    #[command(subcommand)]
    command: Option<RequestCommand>,
    #[command(flatten)]
    direct: Option<DirectRestore>,
}

/// The direct restore's arguments, present when its snapshot or target is
/// given. (clap's `Option` of a flattened struct that itself flattens
/// others is always `None`, so the group is named here by hand.)
pub struct DirectRestore(crate::cmd::read::RestoreArgs);

const DIRECT_GROUP: &str = "direct-restore";

fn direct_group() -> clap::ArgGroup {
    clap::ArgGroup::new(DIRECT_GROUP)
        .args(["snapshot", "target"])
        .multiple(true)
}

impl clap::FromArgMatches for DirectRestore {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        crate::cmd::read::RestoreArgs::from_arg_matches(m).map(DirectRestore)
    }
    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(m)
    }
}

impl Args for DirectRestore {
    fn group_id() -> Option<clap::Id> {
        Some(clap::Id::from(DIRECT_GROUP))
    }
    fn augment_args(c: clap::Command) -> clap::Command {
        crate::cmd::read::RestoreArgs::augment_args(c).group(direct_group())
    }
    fn augment_args_for_update(c: clap::Command) -> clap::Command {
        crate::cmd::read::RestoreArgs::augment_args_for_update(c).group(direct_group())
    }
}

#[derive(Subcommand)]
enum RequestCommand {
    /// File a restore request (operator); the PD's Wali Data approves it.
    Request(RequestArgs),
    /// Restore requests you may see, newest first.
    List(ListArgs),
    /// One request with its approvals and the agent's report.
    Show(IdArgs),
    /// Approve a request on your own machine (Wali Data): unwraps the identity
    /// locally and sends only an envelope sealed to the restoring agent.
    Approve(ApproveArgs),
    /// Reject a request, with a reason (Wali Data).
    Reject(RejectArgs),
    /// Withdraw a request the agent has not received (operator).
    Cancel(IdArgs),
}

#[derive(Args)]
struct RequestArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The PD (Perangkat Daerah) code.
    #[arg(long, value_name = "CODE")]
    pd: String,
    /// A snapshot id from `cadang snapshots --pd`, or `latest`.
    #[arg(long, default_value = "latest")]
    snapshot: String,
    /// For `latest`: the newest snapshot of this host (default: the restoring agent's).
    #[arg(long, value_name = "HOST")]
    source_host: Option<String>,
    /// Restore only this absolute path (repeatable); default: the whole snapshot.
    #[arg(long = "path", value_name = "PATH", conflicts_with = "dump")]
    paths: Vec<String>,
    /// Restore a database dump stream (the source's stream name).
    #[arg(long, value_name = "STREAM")]
    dump: Option<String>,
    /// Pipe the dump into this command on the agent, e.g. 'pg_restore -d siak'.
    #[arg(long, value_name = "COMMAND", requires = "dump")]
    pipe: Option<String>,
    /// The host of the enrolled agent that restores.
    #[arg(long, value_name = "HOST")]
    agent: String,
    /// An absolute directory on the agent's host.
    #[arg(long, value_name = "DIR")]
    target: String,
    /// Restore over existing files; they are moved aside first, never lost.
    #[arg(long)]
    in_place: bool,
    /// Why: the Wali Data decides on it, and it is in the audit log.
    #[arg(long)]
    reason: String,
    /// How long the request (and its approval) stays valid: 30m, 24h, 3d.
    #[arg(long, default_value = "24h")]
    expires: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct IdArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The request id (rr-...).
    id: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ApproveArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The request id (rr-...).
    id: String,
    /// Approve without asking (needed when not on a terminal).
    #[arg(long)]
    yes: bool,
    /// Also trust this public key (hex) to certify the snapshot's signer, besides
    /// the controller's key the material names and your own custodian key.
    #[arg(long = "trust-key", value_name = "HEX")]
    trust_keys: Vec<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RejectArgs {
    #[command(flatten)]
    conn: ConnArgs,
    id: String,
    /// Why the request is rejected (the operator reads it).
    #[arg(long)]
    reason: String,
    #[arg(long)]
    json: bool,
}

pub async fn run(cli: RestoreCli) -> Result<u8> {
    match (cli.command, cli.direct) {
        (Some(RequestCommand::Request(a)), _) => request(a).await,
        (Some(RequestCommand::List(a)), _) => list(a).await,
        (Some(RequestCommand::Show(a)), _) => show(a).await,
        (Some(RequestCommand::Approve(a)), _) => approve(a).await,
        (Some(RequestCommand::Reject(a)), _) => reject(a).await,
        (Some(RequestCommand::Cancel(a)), _) => cancel(a).await,
        (None, Some(DirectRestore(direct))) => crate::cmd::read::restore(direct).await,
        (None, None) => bail!(
            "give a snapshot and --target for a direct restore, or a subcommand (request, list, show, approve, reject, cancel); see `cadang restore --help`"
        ),
    }
}

/// `30m`, `24h`, `3d`, `90s` → seconds.
fn parse_duration(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a duration like 30m, 24h or 3d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" | "" => 3600,
        "d" => 86_400,
        _ => bail!("{s:?}: the unit must be s, m, h or d"),
    };
    Ok(n * mult)
}

fn what_of(a: &RequestArgs) -> RestoreWhat {
    match (&a.dump, a.paths.is_empty()) {
        (Some(stream), _) => RestoreWhat::Dump {
            stream: stream.clone(),
            pipe: a.pipe.clone(),
        },
        (None, true) => RestoreWhat::Whole,
        (None, false) => RestoreWhat::Paths {
            paths: a.paths.clone(),
        },
    }
}

fn describe_what(w: &RestoreWhat) -> String {
    match w {
        RestoreWhat::Whole => "the whole snapshot".into(),
        RestoreWhat::Paths { paths } => format!("paths {}", paths.join(", ")),
        RestoreWhat::Dump { stream, pipe: None } => format!("dump stream {stream} as a file"),
        RestoreWhat::Dump {
            stream,
            pipe: Some(p),
        } => format!("dump stream {stream} piped into `{p}` on the agent"),
    }
}

fn print_request(r: &RestoreRequest) {
    println!("request   {}  ({})", r.id, r.state.name());
    println!("PD        {}", r.pd);
    println!(
        "snapshot  {}{}",
        r.snapshot,
        match (&r.snapshot_host, &r.snapshot_time) {
            (Some(h), Some(t)) => format!("  (host {h}, {})", t.format("%Y-%m-%d %H:%M UTC")),
            _ => String::new(),
        }
    );
    println!("what      {}", describe_what(&r.what));
    println!(
        "agent     {} → {}{}",
        r.agent_host,
        r.target,
        if r.in_place {
            "  (IN PLACE: existing files moved aside)"
        } else {
            ""
        }
    );
    println!("reason    {}", r.reason);
    println!(
        "filed     by {} ({}) at {}",
        r.filed.name, r.filed.actor, r.filed.at
    );
    println!("expires   {}", r.expires);
    if let Some(s) = &r.approved {
        println!("approved  by {} ({}) at {}", s.name, s.actor, s.at);
    }
    if let Some(s) = &r.rejected {
        println!(
            "rejected  by {} ({}) at {}: {}",
            s.name,
            s.actor,
            s.at,
            r.reject_reason.as_deref().unwrap_or("")
        );
    }
    if let Some(s) = &r.cancelled {
        println!("cancelled by {} at {}", s.name, s.at);
    }
    if let Some(rep) = &r.report {
        println!(
            "report    {} files, {} from the {} store in {:.1}s; {} verified, {} differ",
            rep.files,
            ui::human_bytes(rep.bytes),
            rep.site.map_or("?", |s| s.name()),
            rep.seconds,
            rep.verified_files,
            rep.verify_failures.len()
        );
        if let Some(e) = &rep.onsite_error {
            println!("          on-site store not used: {e}");
        }
        if let Some(a) = &rep.moved_aside {
            println!(
                "          {} entries moved aside to {a}",
                rep.moved_aside_count
            );
        }
    }
    if !r.message.is_empty() {
        println!("status    {}", r.message);
    }
}

fn output(r: &RestoreRequest, json: bool) -> Result<u8> {
    if json {
        ui::print_json(r)?;
    } else {
        print_request(r);
    }
    Ok(ui::EXIT_OK)
}

async fn request(a: RequestArgs) -> Result<u8> {
    let body = FileRestore {
        pd: a.pd.clone(),
        snapshot: a.snapshot.clone(),
        source_host: a.source_host.clone(),
        what: what_of(&a),
        agent: a.agent.clone(),
        target: a.target.clone(),
        in_place: a.in_place,
        reason: a.reason.clone(),
        expires_seconds: Some(parse_duration(&a.expires)?),
    };
    let r: RestoreRequest = a.conn.client()?.post(paths::RESTORES, &body).await?;
    if !a.json {
        eprintln!(
            "filed {}; the Wali Data of {} approves it with `cadang restore approve {}`",
            r.id, r.pd, r.id
        );
    }
    output(&r, a.json)
}

async fn list(a: ListArgs) -> Result<u8> {
    let l: RestoreList = a.conn.client()?.get(paths::RESTORES).await?;
    if a.json {
        ui::print_json(&l)?;
        return Ok(ui::EXIT_OK);
    }
    println!(
        "{:<16} {:<10} {:<12} {:<16} {:<20} REASON",
        "ID", "STATE", "PD", "AGENT", "EXPIRES (UTC)"
    );
    for r in &l.requests {
        println!(
            "{:<16} {:<10} {:<12} {:<16} {:<20} {}",
            r.id,
            r.state.name(),
            r.pd,
            r.agent_host,
            r.expires.format("%Y-%m-%d %H:%M"),
            r.reason
        );
    }
    Ok(ui::EXIT_OK)
}

async fn show(a: IdArgs) -> Result<u8> {
    let r: RestoreRequest = a
        .conn
        .client()?
        .get(&paths::with_id(paths::RESTORE, &a.id))
        .await?;
    output(&r, a.json)
}

async fn reject(a: RejectArgs) -> Result<u8> {
    let r: RestoreRequest = a
        .conn
        .client()?
        .post(
            &paths::with_id(paths::REJECT, &a.id),
            &RejectRestore {
                reason: a.reason.clone(),
            },
        )
        .await?;
    output(&r, a.json)
}

async fn cancel(a: IdArgs) -> Result<u8> {
    let r: RestoreRequest = a
        .conn
        .client()?
        .post(
            &paths::with_id(paths::CANCEL, &a.id),
            &serde_json::json!({}),
        )
        .await?;
    output(&r, a.json)
}

/// Shows what is being approved and asks (on a terminal) or needs --yes.
fn confirm(m: &ApprovalMaterial, yes: bool) -> Result<()> {
    eprintln!("You are approving, as Wali Data, this restore of your PD's data:\n");
    print_request(&m.request);
    eprintln!(
        "\nThe PD's data identity will be unlocked here and sealed for agent {} only.",
        m.request.agent_host
    );
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("not on a terminal: add --yes to approve without being asked");
    }
    eprint!("Approve? [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if !matches!(line.trim(), "y" | "Y" | "yes" | "ya") {
        bail!("not approved; nothing was sent");
    }
    Ok(())
}

/// Unwraps the identity with the passphrase (scrypt, off the async
/// threads) and checks it is the PD's.
async fn unlock(m: &ApprovalMaterial) -> Result<DataIdentity> {
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(&m.wrapped_identity)
        .context("the approval material's wrapped identity is not base64")?;
    let passphrase = Zeroizing::new(ui::passphrase(false)?);
    let identity = tokio::task::spawn_blocking(move || DataIdentity::unwrap(&wrapped, &passphrase))
        .await
        .context("unlocking stopped")??;
    if identity.recipient().encode() != m.data_recipient {
        bail!(
            "the unlocked identity is not the one PD {} registered (its recipient differs): refusing to approve; check the PD's repository",
            m.request.pd
        );
    }
    Ok(identity)
}

async fn approve(a: ApproveArgs) -> Result<u8> {
    let client = a.conn.client()?;
    let m: ApprovalMaterial = client.get(&paths::with_id(paths::MATERIAL, &a.id)).await?;
    confirm(&m, a.yes)?;
    let identity = unlock(&m).await?;
    let r = &m.request;
    let mut trust_keys = vec![m.controller_key.clone()];
    trust_keys.extend(a.trust_keys.iter().cloned());
    let mut payload = EnvelopePayload {
        format: ENVELOPE_FORMAT.into(),
        version: 1,
        request_id: r.id.clone(),
        pd: r.pd.clone(),
        agent_id: r.agent_id.clone(),
        snapshot: r.snapshot.clone(),
        what: r.what.clone(),
        target: r.target.clone(),
        in_place: r.in_place,
        expires: r.expires,
        trust_keys,
        identity: identity.encode(),
    };
    drop(identity);
    let sealed = envelope::seal(&m.agent_recipient, &payload);
    // The plaintext identity is wiped before anything goes on the wire.
    payload.identity.zeroize();
    let sealed = sealed?;
    let done: RestoreRequest = client
        .post(
            &paths::with_id(paths::APPROVE, &a.id),
            &ApproveRestore { envelope: sealed },
        )
        .await?;
    if !a.json {
        eprintln!(
            "approved {}: the envelope is queued for agent {}",
            done.id, done.agent_host
        );
    }
    output(&done, a.json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("24h").unwrap(), 86_400);
        assert_eq!(parse_duration("30m").unwrap(), 1800);
        assert_eq!(parse_duration("3d").unwrap(), 259_200);
        assert_eq!(parse_duration("2").unwrap(), 7200);
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
