//! Reading commands: snapshots, ls, dump, restore.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use cadang_agent::{browse, restore as restorer};
use cadang_core::repository::BlobReader;
use clap::Args;

use crate::ui;
use crate::{KeyArgs, RepoArg};

#[derive(Args)]
pub struct SnapshotsArgs {
    /// The store: a directory path, or s3://BUCKET/PREFIX?endpoint=...&region=...
    #[arg(long = "repo", value_name = "STORE", required_unless_present = "pd")]
    repo: Option<String>,
    /// List a PD's snapshots from the controller's catalogue instead (CADANG_TOKEN).
    #[arg(long, value_name = "CODE", conflicts_with = "repo")]
    pd: Option<String>,
    #[command(flatten)]
    conn: crate::cmd::fleet::ConnArgs,
    /// Agent credentials, to show host names and tags.
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Also show backed-up paths (asks for the custodian key).
    #[arg(long)]
    paths: bool,
    #[command(flatten)]
    key: KeyArgs,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn snapshots(a: SnapshotsArgs) -> Result<u8> {
    if let Some(pd) = &a.pd {
        return crate::cmd::fleet::snapshots_for_pd(&a.conn, pd, a.json).await;
    }
    let repo = ui::open_repo(a.repo.as_deref().unwrap_or_default()).await?;
    let secret = match &a.credentials {
        Some(p) => {
            let c = ui::credentials(p)?;
            repo.check_credentials(&c)?;
            Some(c.repo_secret)
        }
        None => None,
    };
    let identity = if a.paths || a.key.identity.is_some() {
        Some(ui::identity(&repo, a.key.identity.as_deref()).await?)
    } else {
        None
    };
    let (list, bad) = repo.snapshots().await?;
    let mut rows = Vec::new();
    for s in &list {
        let meta = secret.as_ref().and_then(|k| s.meta(k).ok());
        let body = identity.as_ref().and_then(|i| s.body(i).ok());
        rows.push(serde_json::json!({
            "id": s.id.to_hex(),
            "time": s.payload.time.to_rfc3339(),
            "files": s.payload.stats.files,
            "bytes": s.payload.stats.bytes,
            "added_bytes": s.payload.stats.added_bytes,
            "packs": s.payload.packs.len(),
            "group": s.payload.group,
            "host": meta.as_ref().map(|m| m.host.clone()),
            "tags": meta.as_ref().map(|m| m.tags.clone()),
            "paths": body.as_ref().map(|b| b.paths.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
        }));
    }
    if a.json {
        ui::print_json(&rows)?;
    } else {
        println!(
            "{:<10} {:<25} {:>8} {:>12}  HOST / TAGS / PATHS",
            "ID", "TIME", "FILES", "SIZE"
        );
        for (s, r) in list.iter().zip(&rows) {
            let mut extra = Vec::new();
            if let Some(h) = r["host"].as_str() {
                extra.push(h.to_string());
            }
            if let Some(t) = r["tags"].as_array().filter(|t| !t.is_empty()) {
                extra.push(format!(
                    "[{}]",
                    t.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
            if let Some(p) = r["paths"].as_array() {
                extra.push(
                    p.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
            println!(
                "{:<10} {:<25} {:>8} {:>12}  {}",
                s.id.short(),
                s.payload.time.format("%Y-%m-%d %H:%M:%S %:z"),
                s.payload.stats.files,
                ui::human_bytes(s.payload.stats.bytes),
                extra.join("  ")
            );
        }
        println!("{} snapshot(s)", list.len());
    }
    for (name, e) in &bad {
        eprintln!("warning: snapshot {name} is damaged: {e}");
    }
    Ok(if bad.is_empty() {
        ui::EXIT_OK
    } else {
        ui::EXIT_INCOMPLETE
    })
}

#[derive(Args)]
pub struct LsArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Snapshot id (or a unique prefix), or `latest`.
    snapshot: String,
    #[command(flatten)]
    key: KeyArgs,
    /// Also trust this public key (hex; e.g. the controller's) to certify the snapshot's signer;
    /// the custodian key derived from the identity is always trusted.
    #[arg(long = "trust-key", value_name = "HEX")]
    trust_keys: Vec<String>,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn ls(a: LsArgs) -> Result<u8> {
    let repo = ui::open_repo(&a.repo.repo).await?;
    let snap = repo.find_snapshot(&a.snapshot).await?;
    let identity = ui::identity(&repo, a.key.identity.as_deref()).await?;
    let trust = super::maint::trust_anchors(&repo, &a.trust_keys, None, Some(&identity))?;
    repo.verify_signer(&snap, &trust).await?;
    let reader = BlobReader::new(&repo, &identity).await?;
    let entries = browse::list(&reader, &snap).await?;
    if a.json {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "path": String::from_utf8_lossy(&e.path),
                    "type": e.node.kind,
                    "mode": format!("{:o}", e.node.mode),
                    "size": e.node.size,
                    "mtime_ns": e.node.mtime_ns,
                })
            })
            .collect();
        ui::print_json(&rows)?;
    } else {
        for e in &entries {
            println!("{}", String::from_utf8_lossy(&e.path));
        }
    }
    Ok(ui::EXIT_OK)
}

#[derive(Args)]
pub struct DumpArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Snapshot id (or a unique prefix), or `latest`.
    snapshot: String,
    /// The file's path in the snapshot, e.g. /srv/db.dump or the --stdin-name.
    path: PathBuf,
    #[command(flatten)]
    key: KeyArgs,
    /// Also trust this public key (hex; e.g. the controller's) to certify the snapshot's signer;
    /// the custodian key derived from the identity is always trusted.
    #[arg(long = "trust-key", value_name = "HEX")]
    trust_keys: Vec<String>,
}

pub async fn dump(a: DumpArgs) -> Result<u8> {
    let repo = ui::open_repo(&a.repo.repo).await?;
    let snap = repo.find_snapshot(&a.snapshot).await?;
    let identity = ui::identity(&repo, a.key.identity.as_deref()).await?;
    let trust = super::maint::trust_anchors(&repo, &a.trust_keys, None, Some(&identity))?;
    repo.verify_signer(&snap, &trust).await?;
    let reader = BlobReader::new(&repo, &identity).await?;
    let mut out = std::io::stdout();
    let path = a.path.as_os_str().as_bytes().to_vec();
    browse::dump(&reader, &snap, &path, &mut out).await?;
    Ok(ui::EXIT_OK)
}

#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Snapshot id (or a unique prefix), or `latest`.
    snapshot: String,
    /// Directory to restore into; each source path is recreated under it.
    #[arg(long, value_name = "DIR")]
    target: PathBuf,
    /// Restore only this absolute path from the snapshot (repeatable).
    #[arg(long = "include", value_name = "PATH")]
    includes: Vec<PathBuf>,
    #[command(flatten)]
    key: KeyArgs,
    /// Also trust this public key (hex; e.g. the controller's) to certify the snapshot's signer;
    /// the custodian key derived from the identity is always trusted.
    #[arg(long = "trust-key", value_name = "HEX")]
    trust_keys: Vec<String>,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn restore(a: RestoreArgs) -> Result<u8> {
    let repo = ui::open_repo(&a.repo.repo).await?;
    let snap = repo.find_snapshot(&a.snapshot).await?;
    let identity = ui::identity(&repo, a.key.identity.as_deref()).await?;
    let trust = super::maint::trust_anchors(&repo, &a.trust_keys, None, Some(&identity))?;
    repo.verify_signer(&snap, &trust).await?;
    let reader = BlobReader::new(&repo, &identity).await?;
    std::fs::create_dir_all(&a.target)
        .with_context(|| format!("creating target {}", a.target.display()))?;
    let opts = restorer::RestoreOptions {
        target: a.target.clone(),
        include: a
            .includes
            .iter()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .collect(),
        progress: None,
    };
    let started = std::time::Instant::now();
    let summary = restorer::restore(&reader, &snap, &opts).await?;
    if a.json {
        ui::print_json(&serde_json::json!({
            "snapshot": snap.id.to_hex(),
            "files": summary.files,
            "dirs": summary.dirs,
            "bytes": summary.bytes,
            "errors": summary.errors,
            "seconds": started.elapsed().as_secs_f64(),
        }))?;
    } else {
        println!(
            "restored snapshot {} into {}: {} files, {} dirs, {} in {:.1}s",
            snap.id.short(),
            a.target.display(),
            summary.files,
            summary.dirs,
            ui::human_bytes(summary.bytes),
            started.elapsed().as_secs_f64()
        );
        for e in &summary.errors {
            eprintln!("warning: {e}");
        }
    }
    Ok(if summary.errors.is_empty() {
        ui::EXIT_OK
    } else {
        ui::EXIT_INCOMPLETE
    })
}
