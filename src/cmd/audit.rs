//! `cadang audit verify`: checks a copy of the audit log offline — the
//! segments in a store (keyless read), a directory of segment files, or a
//! copy of the controller's state file — and names the first entry that is
//! not as it was written.
//!
//! The controller's public key comes from `--key`; for `--store` without
//! it, from the key file the controller published beside the segments,
//! which proves only that the store's copy is consistent with itself (a
//! store that can rewrite the segments can rewrite that file too).

use std::path::PathBuf;

use anyhow::{bail, Result};
use cadang_controller::audit::{self, AuditLog, ChainReport, RedbAuditLog};
use cadang_controller::report;
use cadang_core::backend::FileKind;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain and signed checkpoints: exit 0 intact, 1 not.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// A store (a directory, or s3://BUCKET/PREFIX?endpoint=...): the segments in its `cadang-audit/`.
    #[arg(long, value_name = "STORE", conflicts_with_all = ["state", "segments"])]
    store: Option<String>,
    /// A directory of segment files (`cadang-audit/` of a store, copied or mounted).
    #[arg(long, value_name = "DIR", conflicts_with = "state")]
    segments: Option<PathBuf>,
    /// A copy of the controller's state file (never the live one: it is locked).
    #[arg(long, value_name = "STATE_REDB")]
    state: Option<PathBuf>,
    /// The controller's public report key (64 hex digits). Needed for --state
    /// and --segments; for --store the store's published key is used without it.
    #[arg(long, value_name = "PUBKEY_HEX")]
    key: Option<String>,
}

pub async fn run(c: AuditCommand) -> Result<u8> {
    match c {
        AuditCommand::Verify(a) => verify(a).await,
    }
}

async fn verify(a: VerifyArgs) -> Result<u8> {
    if let Some(store) = &a.store {
        return verify_store(store, a.key.as_deref()).await;
    }
    let Some(key) = &a.key else {
        bail!("--key PUBKEY_HEX is needed with --segments and --state (the controller's public report key)");
    };
    let key = report::parse_public_key(key)?;
    let (what, result) = match (&a.segments, &a.state) {
        (Some(dir), None) => (dir.clone(), audit::segment::verify_dir(dir, &key)),
        (None, Some(path)) => (path.clone(), verify_state(path, &key)),
        _ => bail!("give --store STORE, --segments DIR or --state FILE"),
    };
    finish(&what, result)
}

fn finish(what: &std::path::Path, result: audit::Result<ChainReport>) -> Result<u8> {
    match result {
        Ok(r) => {
            print_intact(what, &r);
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

/// Reads `cadang-audit/` of a store (no credentials beyond read access)
/// and verifies it with `--key` or the store's published key.
async fn verify_store(store: &str, key: Option<&str>) -> Result<u8> {
    let backend = crate::store::open_store(store)?;
    let kind = FileKind::Documents(cadang_controller::publish::AUDIT_DIR);
    let mut files = Vec::new();
    for f in backend.list(kind).await? {
        let bytes = backend.read(kind, &f.name).await?;
        files.push((f.name, bytes));
    }
    let trusted = key.is_some();
    let key_hex = match key {
        Some(k) => k.to_string(),
        None => match files.iter().find(|(n, _)| n == audit::ship::KEY_FILE) {
            Some((_, b)) => String::from_utf8_lossy(b).trim().to_string(),
            None => bail!(
                "{store} holds no {}/{} and no --key was given: pass the controller's public report key",
                cadang_controller::publish::AUDIT_DIR,
                audit::ship::KEY_FILE
            ),
        },
    };
    let key = report::parse_public_key(&key_hex)?;
    let result = audit::segment::parse_all(files)
        .and_then(|segments| audit::segment::verify_segments(&segments, &key));
    let code = finish(std::path::Path::new(store), result)?;
    if !trusted {
        println!(
            "NOTE: no --key given: checked against the key the store itself holds ({key_hex}); \
             compare it with the controller's public report key, or pass --key"
        );
    }
    Ok(code)
}
