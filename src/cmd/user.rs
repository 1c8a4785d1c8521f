//! `cadang user add|list|disable|enable|reset|roles`: people and their
//! roles, for the first admin and for scripts.
//!
//! These work on the controller's state file directly, so they need the
//! controller **stopped** (redb lets one process hold the file). While it
//! runs, an administrator does the same on the console's Users page. Every
//! change is written to the audit log in the same commit, signed with the
//! controller's key, as the console writes it.
//!
//! Passwords come from `CADANG_USER_PASSWORD` (scripts, tests) or a prompt
//! typed twice; they are never arguments (argument lists are visible to
//! every user of the machine).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cadang_controller::audit::{Auditor, NewEntry, RedbAuditLog};
use cadang_controller::config::Config;
use cadang_controller::console::{password, users as roles};
use cadang_controller::proto::api::Role;
use cadang_controller::state::users::{self, UserRecord};
use cadang_controller::state::{sessions, State};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::ui;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user (password from CADANG_USER_PASSWORD or a prompt).
    Add(AddArgs),
    /// List users, their roles and whether they can sign in.
    List(ListArgs),
    /// Disable a user: their sessions end, their password and tokens stop working.
    Disable(NameArgs),
    /// Enable a disabled user again (and clear a lockout).
    Enable(NameArgs),
    /// Set a new console password (clears a lockout; ends the user's sessions).
    Reset(NameArgs),
    /// Replace a user's roles (ends the user's sessions).
    Roles(RolesArgs),
}

#[derive(Args)]
pub struct ConfigArg {
    /// controller.toml (from `cadang controller init`); the controller must be stopped.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Args)]
pub struct AddArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The user name people sign in with.
    #[arg(long)]
    name: String,
    /// The civil servant's NIP (18 digits); operators and custodians must have one.
    #[arg(long, value_name = "NIP")]
    nip: Option<String>,
    /// admin, operator, auditor, or custodian:PD[,PD...] (repeat for several).
    #[arg(long = "role", value_name = "ROLE", required = true)]
    roles: Vec<String>,
    /// Also print an API token for this user (shown once).
    #[arg(long)]
    token: bool,
    /// No console password (API token or single sign-on only).
    #[arg(long)]
    no_password: bool,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// JSON instead of a table (no password hashes either way).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct NameArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The user name.
    name: String,
}

#[derive(Args)]
pub struct RolesArgs {
    #[command(flatten)]
    config: ConfigArg,
    name: String,
    /// The new roles (repeat); see `user add --role`.
    #[arg(long = "role", value_name = "ROLE", required = true)]
    roles: Vec<String>,
}

pub async fn run(c: UserCommand) -> Result<u8> {
    match c {
        UserCommand::Add(a) => add(a),
        UserCommand::List(a) => list(a),
        UserCommand::Disable(a) => change(&a.config, &a.name, "disable", None, None),
        UserCommand::Enable(a) => change(&a.config, &a.name, "enable", None, None),
        UserCommand::Reset(a) => {
            let hash = new_password(&a.name)?;
            change(&a.config, &a.name, "password", Some(hash), None)
        }
        UserCommand::Roles(a) => {
            let r = parse_roles(&a.roles)?;
            change(&a.config, &a.name, "roles", None, Some(r))
        }
    }
}

/// The state and an auditor on it, for a stopped controller.
struct Offline {
    state: Arc<State>,
    auditor: Auditor<Arc<RedbAuditLog>>,
}

fn open(config: &ConfigArg) -> Result<Offline> {
    let config = Config::load(&config.config)?;
    let state = State::open(&config.resolve(&config.state)).map_err(|e| match e {
        cadang_controller::Error::StateBusy { path } => anyhow::anyhow!(
            "the controller state {} is open in a running controller; stop it (systemctl stop cadang-controller) or make this change on the console's Users page",
            path.display()
        ),
        e => e.into(),
    })?;
    let secret = cadang_controller::daemon::read_signing_key(&config)?;
    let key = cadang_controller::report::SigningKey::from_hex(&hex::encode(secret))
        .map_err(|e| anyhow::anyhow!("the controller's signing key: {e}"))?;
    let log = RedbAuditLog::open(state.clone())
        .map_err(|e| anyhow::anyhow!("the audit log cannot be opened: {e}"))?;
    Ok(Offline {
        state,
        auditor: Auditor::new(
            Arc::new(log),
            key,
            cadang_controller::daemon::AUDIT_CHECKPOINT_EVERY,
        ),
    })
}

/// Who the audit log names for a command line change: the OS account.
pub(crate) fn actor() -> String {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{who}")
}

fn parse_roles(texts: &[String]) -> Result<Vec<Role>> {
    texts
        .iter()
        .map(|t| roles::parse_role(t).map_err(anyhow::Error::msg))
        .collect()
}

fn new_password(name: &str) -> Result<String> {
    let pw = match std::env::var("CADANG_USER_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            let p = rpassword::prompt_password(format!("New console password for {name}: "))
                .context(
                    "reading the password (set CADANG_USER_PASSWORD when there is no terminal)",
                )?;
            let again = rpassword::prompt_password("Repeat it: ")?;
            if p != again {
                bail!("the two passwords differ; nothing changed");
            }
            p
        }
    };
    Ok(password::hash(&pw)?)
}

fn add(a: AddArgs) -> Result<u8> {
    let roles = parse_roles(&a.roles)?;
    users::check_user(&a.name, a.nip.as_deref(), &roles)?;
    let mut user = UserRecord::new(&a.name, a.nip.clone(), roles, chrono::Utc::now());
    if !a.no_password {
        user.password = Some(new_password(&a.name)?);
    }
    let o = open(&a.config)?;
    let actor = actor();
    let token = o.state.write(|txn| {
        let token = users::create(txn, &user)?;
        o.auditor.record_in(
            txn,
            NewEntry::new(&actor, "user.add", &format!("user:{}", user.name), "ok")
                .detail(json!({ "nip": user.nip, "roles": user.roles, "api_token": a.token })),
            chrono::Utc::now(),
        )?;
        Ok(token)
    })?;
    println!("user {} added ({})", user.name, user.kinds());
    if a.token {
        println!("API token (shown once; keep it as CADANG_TOKEN):");
        println!("{token}");
    }
    Ok(ui::EXIT_OK)
}

fn list(a: ListArgs) -> Result<u8> {
    let o = open(&a.config)?;
    let now = chrono::Utc::now();
    let all = o.state.read(users::all)?;
    if a.json {
        let rows: Vec<_> = all
            .iter()
            .map(|u| {
                json!({
                    "name": u.name, "nip": u.nip, "roles": u.roles, "disabled": u.disabled,
                    "locked_until": u.locked_at(now), "password": u.password.is_some(),
                })
            })
            .collect();
        ui::print_json(&rows)?;
        return Ok(ui::EXIT_OK);
    }
    println!("{:<24} {:<18} {:<36} STATUS", "NAME", "NIP", "ROLES");
    for u in all {
        let roles: Vec<String> = u
            .roles
            .iter()
            .map(|r| match r {
                Role::Custodian { pds } => format!("custodian:{}", pds.join(",")),
                r => r.kind().to_string(),
            })
            .collect();
        let status = if u.disabled {
            "disabled".to_string()
        } else if let Some(t) = u.locked_at(now) {
            format!("locked until {}", t.format("%Y-%m-%d %H:%M UTC"))
        } else if u.password.is_none() {
            "no console password".to_string()
        } else {
            "active".to_string()
        };
        println!(
            "{:<24} {:<18} {:<36} {status}",
            u.name,
            u.nip.as_deref().unwrap_or("-"),
            roles.join(" ")
        );
    }
    Ok(ui::EXIT_OK)
}

fn change(
    config: &ConfigArg,
    name: &str,
    action: &str,
    hash: Option<String>,
    new_roles: Option<Vec<Role>>,
) -> Result<u8> {
    let o = open(config)?;
    let actor = actor();
    let ended = o.state.write(|txn| {
        let updated = users::update(txn, name, |u| match action {
            "disable" => u.disabled = true,
            "enable" | "password" => {
                if action == "enable" {
                    u.disabled = false;
                } else {
                    u.password = hash.clone();
                }
                u.failed_logins = 0;
                u.locked_until = None;
            }
            _ => {
                if let Some(r) = &new_roles {
                    u.roles = r.clone();
                }
            }
        })?;
        let ended = if action == "enable" {
            0
        } else {
            sessions::remove_user(txn, name)?
        };
        o.auditor.record_in(
            txn,
            NewEntry::new(
                &actor,
                &format!("user.{action}"),
                &format!("user:{name}"),
                "ok",
            )
            .detail(json!({ "roles": updated.roles, "sessions_ended": ended })),
            chrono::Utc::now(),
        )?;
        Ok(ended)
    })?;
    let done = match action {
        "disable" => "disabled",
        "enable" => "enabled",
        "password" => "has a new password",
        _ => "has new roles",
    };
    println!("{name} {done}; {ended} open console session(s) ended");
    Ok(ui::EXIT_OK)
}
