//! `cadang`: the operator's front door.

mod cmd;
mod store;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// cadang — encrypted, deduplicated backups and disaster recovery for
/// regional government data centers.
///
/// Secrets never go on the command line: the custodian's passphrase comes
/// from CADANG_PASSPHRASE or a prompt on the terminal.
#[derive(Parser)]
#[command(name = "cadang", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a repository or manage its keys.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Back up paths, or the output of a command (database dumps).
    Backup(cmd::backup::BackupArgs),
    /// List snapshots (keyless; host and tags with --credentials, paths with the custodian key).
    Snapshots(cmd::read::SnapshotsArgs),
    /// List the files in a snapshot (custodian key needed).
    Ls(cmd::read::LsArgs),
    /// Write one file of a snapshot to standard output (custodian key needed).
    Dump(cmd::read::DumpArgs),
    /// Restore a snapshot into a directory (custodian key needed), or work with
    /// restore requests through the controller: request, list, show, approve, reject, cancel.
    Restore(Box<cmd::restore_request::RestoreCli>),
    /// Verify the repository (keyless; --deep decrypts with the custodian key).
    Check(cmd::maint::CheckArgs),
    /// Remove snapshots by a retention policy (keyless), optionally pruning data.
    Forget(cmd::maint::ForgetArgs),
    /// Delete packs no snapshot needs (keyless; safe beside running backups).
    Prune(cmd::maint::PruneArgs),
    /// Copy the repository (or what is new since an earlier export) to a mounted disk (keyless).
    Export(cmd::export::ExportArgs),
    /// Verify an export and load it into a store (--verify-only: check it offline).
    Import(cmd::export::ImportArgs),
    /// Copy what another store lacks, keylessly (on-site store to the DR site).
    Replicate(cmd::replicate::ReplicateArgs),
    /// Replace missing or damaged packs and index files from the other site (keyless).
    Repair(cmd::replicate::RepairArgs),
    /// Enroll this server with a controller, or run the agent daemon.
    #[command(subcommand)]
    Agent(cmd::agent::AgentCommand),
    /// Set up or run the controller; enrollment tokens, revocation, rebuild.
    #[command(subcommand)]
    Controller(cmd::controller::ControllerCommand),
    /// Register a PD's repository with the controller (the custodian's step).
    #[command(subcommand)]
    Pd(cmd::controller::PdCommand),
    /// The fleet as the controller sees it (CADANG_CONTROLLER, CADANG_CA, CADANG_TOKEN).
    #[command(subcommand)]
    Fleet(cmd::fleet::FleetCommand),
    /// Jobs and their history, from the controller.
    Jobs(cmd::fleet::JobsArgs),
    /// Queue a backup of a host (or one of its sources) now.
    BackupNow(cmd::fleet::BackupNowArgs),
    /// Ransomware early warning: flagged backups, retention holds, last clean snapshots; `clear` a hold.
    Anomalies(cmd::anomalies::AnomaliesArgs),
    /// Check policy files, or show when a PD's jobs next run.
    #[command(subcommand)]
    Policy(cmd::policy::PolicyCommand),
    /// Restore drills: grant them to a drill runner (Wali Data), list them, fetch their signed reports.
    #[command(subcommand)]
    Drill(cmd::drill::DrillCommand),
    /// Verify a signed drill report or compliance summary (JSON or PDF) offline, or render it.
    #[command(subcommand)]
    Report(cmd::report::ReportCommand),
    /// Verify the audit log offline (segment files from a store, or a state copy).
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// People and their roles: add, list, disable, enable, reset a password, set roles (controller stopped).
    #[command(subcommand)]
    User(cmd::user::UserCommand),
}

/// glibc gives each thread that allocates its own heap arena (up to 8 per
/// core), each arena keeps the pack-sized buffers it has freed, and its
/// dynamic mmap threshold soon sends 16 MiB buffers to those heaps too.
/// Backup and restore pass packs between many blocking threads, so the peak
/// memory grew with the thread count instead of the packs in flight. Two
/// arenas, and a fixed 4 MiB threshold above which buffers are mapped and
/// unmapped whole, keep it at what is in flight (bench: restore peak RSS
/// 235 MiB -> 60 MiB, same wall time).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; called before any other
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    }
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Create a repository and its keys, and write the agent's credential file.
    Init(cmd::repo::InitArgs),
    /// Write the data identity to a file (for --identity), after the passphrase.
    ExportIdentity(cmd::repo::ExportIdentityArgs),
    /// Enroll one more agent: write a new credential file (needs the custodian key).
    AddAgent(cmd::repo::AddAgentArgs),
}

/// The store a command works on.
#[derive(Args, Clone)]
pub struct RepoArg {
    /// The store: a directory path, or s3://BUCKET/PREFIX?endpoint=...&region=...
    #[arg(long = "repo", value_name = "STORE")]
    pub repo: String,
}

/// Where the custodian's key comes from.
#[derive(Args, Clone)]
pub struct KeyArgs {
    /// An age identity file (AGE-SECRET-KEY-...) instead of the passphrase.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    if let Command::Agent(c) = &cli.command {
        cmd::agent::prefer_info_logs(c);
    }
    ui::init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Repo(RepoCommand::Init(a)) => cmd::repo::init(a).await,
            Command::Repo(RepoCommand::ExportIdentity(a)) => cmd::repo::export_identity(a).await,
            Command::Repo(RepoCommand::AddAgent(a)) => cmd::repo::add_agent(a).await,
            Command::Backup(a) => cmd::backup::run(a).await,
            Command::Snapshots(a) => cmd::read::snapshots(a).await,
            Command::Ls(a) => cmd::read::ls(a).await,
            Command::Dump(a) => cmd::read::dump(a).await,
            Command::Restore(a) => cmd::restore_request::run(*a).await,
            Command::Check(a) => cmd::maint::check(a).await,
            Command::Forget(a) => cmd::maint::forget(a).await,
            Command::Prune(a) => cmd::maint::prune(a).await,
            Command::Export(a) => cmd::export::export(a).await,
            Command::Import(a) => cmd::export::import(a).await,
            Command::Replicate(a) => cmd::replicate::replicate(a).await,
            Command::Repair(a) => cmd::replicate::repair(a).await,
            Command::Agent(c) => cmd::agent::run(c).await,
            Command::Controller(c) => cmd::controller::run(c).await,
            Command::Pd(c) => cmd::controller::pd(c).await,
            Command::Fleet(c) => cmd::fleet::fleet(c).await,
            Command::Jobs(a) => cmd::fleet::jobs(a).await,
            Command::BackupNow(a) => cmd::fleet::backup_now(a).await,
            Command::Anomalies(a) => cmd::anomalies::run(a).await,
            Command::Policy(c) => cmd::policy::run(c).await,
            Command::Report(c) => cmd::report::run(c).await,
            Command::Drill(c) => cmd::drill::run(c).await,
            Command::Audit(c) => cmd::audit::run(c).await,
            Command::User(c) => cmd::user::run(c).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", ui::describe(&e));
            ExitCode::from(1)
        }
    }
}
