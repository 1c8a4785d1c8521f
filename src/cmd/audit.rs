//! `cadang audit verify`: checks a copy of the audit log offline — the
//! segment files from a store, or a copy of the controller's state file —
//! and names the first entry that is not as it was written.

use std::path::PathBuf;

use anyhow::{bail, Result};
use cadang_controller::audit::{self, AuditLog, ChainReport, RedbAuditLog};
use cadang_controller::report;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain and signed checkpoints: exit 0 intact, 1 not.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// A directory of segment files (`audit/` of a store, copied or mounted).
    #[arg(long, value_name = "DIR", conflicts_with = "state")]
    segments: Option<PathBuf>,
    /// A copy of the controller's state file (never the live one: it is locked).
    #[arg(long, value_name = "STATE_REDB")]
    state: Option<PathBuf>,
    /// The controller's public report key (64 hex digits).
    #[arg(long, value_name = "PUBKEY_HEX")]
    key: String,
}

pub async fn run(c: AuditCommand) -> Result<u8> {
    match c {
        AuditCommand::Verify(a) => verify(a),
    }
}

fn verify(a: VerifyArgs) -> Result<u8> {
    let key = report::parse_public_key(&a.key)?;
    let (what, result) = match (&a.segments, &a.state) {
        (Some(dir), None) => (dir.clone(), audit::segment::verify_dir(dir, &key)),
        (None, Some(path)) => (path.clone(), verify_state(path, &key)),
        _ => bail!("give --segments DIR or --state FILE"),
    };
    match result {
        Ok(r) => {
            print_intact(&what, &r);
            Ok(0)
        }
        Err(e) => {
            eprintln!("INVALID: {}: {e}", what.display());
            Ok(1)
        }
    }
}

fn verify_state(path: &std::path::Path, key: &report::PublicKey) -> audit::Result<ChainReport> {
    let state = cadang_controller::state::State::open(path)?;
    let log = RedbAuditLog::open(state)?;
    let entries = log.entries(1, u64::MAX)?;
    Ok(audit::verify_chain(&entries, &log.checkpoints()?, key)?)
}

fn print_intact(what: &std::path::Path, r: &ChainReport) {
    println!(
        "intact: {}: {} entries (last {} hash {}), {} signed checkpoints (last at {})",
        what.display(),
        r.entries,
        r.last_seq,
        r.last_hash,
        r.checkpoints,
        r.last_checkpoint
            .map_or("none".to_string(), |s| s.to_string())
    );
    if r.unanchored > 0 {
        println!(
            "NOTE: the last {} entries come after the last checkpoint: an edit would show, \
             but their removal would not until the next checkpoint",
            r.unanchored
        );
    }
}
