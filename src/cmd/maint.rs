//! Maintenance commands: check, forget, prune.

use std::path::PathBuf;

use anyhow::Result;
use cadang_core::certify::TrustAnchors;
use cadang_core::check::{self, ReadData};
use cadang_core::prune;
use cadang_policies::retention::{self, Candidate, KeepPolicy};
use clap::Args;

use crate::cmd::interrupt::{self, Ended};
use crate::ui;
use crate::{KeyArgs, RepoArg};

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Re-hash every pack against its name (keyless).
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Re-hash this share of the packs, continuing where the last run stopped, e.g. 5 or 5%.
    #[arg(long, value_name = "PCT")]
    read_data_subset: Option<String>,
    /// Decrypt and re-hash every chunk and walk every snapshot (custodian key needed).
    #[arg(long)]
    deep: bool,
    #[command(flatten)]
    key: KeyArgs,
    /// Trust this public key (64 hex digits: the custodian's or the controller's) to certify
    /// agent keys; repeatable. Without any, a keyless check can tell uncertified signers but
    /// cannot verify who certified the others.
    #[arg(long = "trust-key", value_name = "HEX")]
    trust_keys: Vec<String>,
    /// Take the custodian's public key from this agent credential file as a trust anchor.
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Where the rolling --read-data-subset position is kept (default ~/.cache/cadang).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn check(a: CheckArgs) -> Result<u8> {
    let repo = ui::open_repo(&a.repo.repo).await?;
    let state = a
        .cache_dir
        .or_else(ui::default_cache_dir)
        .map(|d| d.join(repo.config.id.to_hex()).join("check-position"));
    let read = if let Some(p) = &a.read_data_subset {
        let pct: f64 = p
            .trim_end_matches('%')
            .parse()
            .ok()
            .filter(|v: &f64| *v > 0.0 && *v <= 100.0)
            .ok_or_else(|| {
                anyhow::anyhow!("--read-data-subset takes a percentage between 0 and 100, e.g. 5%")
            })?;
        let after = state
            .as_ref()
            .and_then(|s| std::fs::read_to_string(s).ok())
            .map(|s| s.trim().to_string());
        ReadData::Subset {
            percent: pct,
            after,
        }
    } else if a.read_data || a.deep {
        ReadData::All
    } else {
        ReadData::None
    };
    let identity = if a.deep {
        Some(ui::identity(&repo, a.key.identity.as_deref()).await?)
    } else {
        None
    };
    let trust = trust_anchors(
        &repo,
        &a.trust_keys,
        a.credentials.as_deref(),
        identity.as_ref(),
    )?;
    let report = check::check_with(
        &repo,
        check::CheckOptions {
            read,
            deep: identity.as_ref(),
            trust,
        },
    )
    .await?;
    if let (Some(s), Some(last), Some(_)) = (&state, &report.last_read, &a.read_data_subset) {
        if let Some(dir) = s.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(s, last);
    }
    if a.json {
        ui::print_json(&report)?;
    } else {
        println!(
            "checked {} snapshots, {} index files, {} packs ({} read, {} blobs decrypted); {} packs unreferenced",
            report.snapshots,
            report.index_files,
            report.packs,
            report.packs_read,
            report.blobs_verified,
            report.unreferenced_packs
        );
        for w in &report.warnings {
            println!("warning: {w}");
        }
        for e in &report.errors {
            println!("error: {e}");
        }
        if report.ok() {
            println!("no errors were found");
        } else {
            println!(
                "{} error(s) found: the repository is damaged; see docs/troubleshooting.md",
                report.errors.len()
            );
        }
    }
    Ok(if report.ok() {
        ui::EXIT_OK
    } else {
        ui::EXIT_INCOMPLETE
    })
}

/// The keys trusted to certify signers, all from outside the store: given
/// on the command line, from a credential file, derived from the identity.
pub fn trust_anchors(
    repo: &cadang_core::Repository,
    keys: &[String],
    credentials: Option<&std::path::Path>,
    identity: Option<&cadang_core::keys::DataIdentity>,
) -> Result<TrustAnchors> {
    let mut trust = TrustAnchors::default();
    for k in keys {
        trust.add_hex(k)?;
    }
    if let Some(p) = credentials {
        let c = ui::credentials(p)?;
        repo.check_credentials(&c)?;
        match &c.custodian_key {
            Some(k) => trust.add_hex(k)?,
            None => anyhow::bail!(
                "{} was written before certified signers and holds no custodian key; give the key with --trust-key instead (shown by `cadang repo add-agent`)",
                p.display()
            ),
        }
    }
    if let Some(i) = identity {
        trust.add_custodian(i);
    }
    Ok(trust)
}

#[derive(Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_last: u32,
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_hourly: u32,
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_daily: u32,
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_weekly: u32,
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_monthly: u32,
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_yearly: u32,
    /// Also delete the data no remaining snapshot needs.
    #[arg(long)]
    prune: bool,
    /// Show what would be removed, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn forget(a: ForgetArgs) -> Result<u8> {
    let policy = KeepPolicy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
    };
    if policy.is_empty() {
        anyhow::bail!("no --keep-* option given: that would remove every snapshot. Give at least one, e.g. --keep-daily 7");
    }
    // The prune that may follow stops at a safe point on Ctrl-C.
    let store = interrupt::guard(crate::store::open_store(&a.repo.repo)?);
    let repo = cadang_core::Repository::open(store.clone()).await?;
    let (list, bad) = repo.snapshots().await?;
    for (name, e) in &bad {
        eprintln!("warning: snapshot {name} is damaged and was left alone: {e}");
    }
    let candidates: Vec<_> = list
        .iter()
        .map(|s| Candidate {
            id: s.id,
            time: s.payload.time,
            group: s.payload.group.clone(),
        })
        .collect();
    let decisions = retention::apply(&policy, &candidates);
    let remove: Vec<_> = decisions.iter().filter(|d| !d.keep).map(|d| d.id).collect();
    let forget_report = if a.dry_run {
        prune::ForgetReport::default()
    } else {
        prune::forget(&repo, &remove).await?
    };
    let prune_report = if a.prune && !a.dry_run {
        let job = async { Ok(prune::prune(&repo).await?) };
        match interrupt::until_signal("prune", std::slice::from_ref(&store), job).await? {
            Ended::Finished(r) => Some(r),
            Ended::Interrupted(code) => return Ok(code),
        }
    } else {
        None
    };
    if a.json {
        ui::print_json(&serde_json::json!({
            "dry_run": a.dry_run,
            "snapshots": decisions.iter().map(|d| serde_json::json!({
                "id": d.id.to_hex(), "time": d.time.to_rfc3339(), "group": d.group,
                "keep": d.keep, "reasons": d.reasons,
            })).collect::<Vec<_>>(),
            "locked": forget_report.locked,
            "prune": prune_report,
        }))?;
    } else {
        for d in &decisions {
            println!(
                "{} {} {}  {}",
                if d.keep {
                    "keep  "
                } else if a.dry_run {
                    "would remove"
                } else {
                    "remove"
                },
                d.id.short(),
                d.time.format("%Y-%m-%d %H:%M:%S %:z"),
                d.reasons.join(", ")
            );
        }
        println!(
            "{} kept, {} removed",
            decisions.len() - remove.len(),
            remove.len() - forget_report.locked.len()
        );
        print_locked("forget", "snapshot", &forget_report.locked);
        if let Some(r) = &prune_report {
            print_prune(r);
        }
    }
    Ok(ui::EXIT_OK)
}

fn print_prune(r: &prune::PruneReport) {
    println!(
        "prune: {} packs deleted ({}), {} index files rewritten, {} packs newly marked unused",
        r.deleted_packs,
        ui::human_bytes(r.deleted_bytes),
        r.rewritten_index_files,
        r.newly_marked
    );
    if r.deferred_marks > 0 {
        println!(
            "prune: {} mark(s) kept until running backups finish ({}); run prune again later",
            r.deferred_marks,
            r.deferred_by.join("; ")
        );
    }
    print_locked("prune", "", &r.locked);
}

/// "N files are under Object Lock until DATE and were kept", with the
/// files themselves when there are few.
fn print_locked(cmd: &str, what: &str, locked: &[prune::LockedFile]) {
    let Some(until) = prune::latest_until(locked) else {
        return;
    };
    let what = if what.is_empty() {
        String::new()
    } else {
        format!("{what} ")
    };
    println!(
        "{cmd}: {} {what}file(s) are under Object Lock until {until} at the latest and were kept; \
         the store refuses to delete them before then (a later {cmd} removes them)",
        locked.len()
    );
    for l in locked.iter().take(10) {
        println!("  kept {}/{} (locked until {})", l.kind, l.name, l.until);
    }
    if locked.len() > 10 {
        println!("  ... and {} more (see --json)", locked.len() - 10);
    }
}

#[derive(Args)]
pub struct PruneArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn prune(a: PruneArgs) -> Result<u8> {
    // Ctrl-C stops prune at its next store operation and removes its lock.
    let store = interrupt::guard(crate::store::open_store(&a.repo.repo)?);
    let repo = cadang_core::Repository::open(store.clone()).await?;
    let job = async { Ok(prune::prune(&repo).await?) };
    let r = match interrupt::until_signal("prune", std::slice::from_ref(&store), job).await? {
        Ended::Finished(r) => r,
        Ended::Interrupted(code) => return Ok(code),
    };
    if a.json {
        ui::print_json(&r)?;
    } else {
        print_prune(&r);
    }
    Ok(ui::EXIT_OK)
}
