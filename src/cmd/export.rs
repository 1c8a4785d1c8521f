//! Portable media: `export` to a mounted disk, `import` (or `--verify-only`) from it.

use std::path::PathBuf;

use anyhow::{bail, Result};
use cadang_core::export::{self, ExportOptions};
use clap::Args;

use crate::ui;
use crate::RepoArg;

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// The mounted disk (a directory): the export goes to DIR/cadang-export-<ID>/.
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Only what export ID did not carry (ID is looked up on DIR, then in the
    /// state directory), or give that export's manifest.json as a path.
    #[arg(long, value_name = "ID|MANIFEST")]
    since: Option<String>,
    /// Where copies of export manifests are kept for later --since
    /// (default ~/.cache/cadang/<repository id>/exports).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn export(a: ExportArgs) -> Result<u8> {
    let repo = ui::open_repo(&a.repo.repo).await?;
    let state_dir = a.state_dir.or_else(|| {
        ui::default_cache_dir().map(|d| d.join(repo.config.id.to_hex()).join("exports"))
    });
    let opts = ExportOptions {
        to: a.to,
        since: a.since,
        state_dir,
    };
    let r = export::export(&repo, &opts).await?;
    if a.json {
        ui::print_json(&r)?;
    } else {
        println!(
            "export {} written to {}: {} files ({}), {} packs, {} snapshots{}",
            r.export_id,
            r.dir,
            r.files,
            ui::human_bytes(r.bytes),
            r.packs,
            r.snapshots,
            r.since
                .as_ref()
                .map(|s| format!(", incremental since export {s}"))
                .unwrap_or_default()
        );
        if r.snapshots_deferred > 0 {
            println!(
                "{} snapshot(s) were left for the next export: a backup was writing their data while this export ran",
                r.snapshots_deferred
            );
        }
        if let Some(e) = &r.state_copy_error {
            println!("warning: the copy of the manifest for later --since could not be kept ({e}); keep {}/manifest.json yourself", r.dir);
        }
        println!(
            "next time: cadang export --repo ... --to DIR --since {}",
            r.export_id
        );
    }
    Ok(ui::EXIT_OK)
}

#[derive(Args)]
pub struct ImportArgs {
    /// The export directory (DIR/cadang-export-<ID>).
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The store to load it into (created if it holds no repository yet).
    #[arg(long, value_name = "STORE", required_unless_present = "verify_only")]
    to: Option<String>,
    /// Only check the export against its manifest (offline, keyless); write nothing.
    #[arg(long, conflicts_with = "to")]
    verify_only: bool,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn import(a: ImportArgs) -> Result<u8> {
    if a.verify_only {
        let (_, r) = export::verify(&a.from).await?;
        if a.json {
            ui::print_json(&r)?;
        } else {
            println!(
                "export {} of PD {} (repository {}) is intact: {} files ({}), {} snapshots{}",
                r.export_id,
                r.pd,
                &r.repo_id[..16.min(r.repo_id.len())],
                r.files,
                ui::human_bytes(r.bytes),
                r.snapshots,
                r.since
                    .as_ref()
                    .map(|s| format!("; it needs export {s} imported first"))
                    .unwrap_or_default()
            );
        }
        return Ok(ui::EXIT_OK);
    }
    let Some(to) = a.to else {
        bail!("--to STORE is required (or --verify-only)");
    };
    let target = crate::store::open_store(&to)?;
    let r = export::import(&a.from, target).await?;
    if a.json {
        ui::print_json(&r)?;
    } else {
        println!(
            "imported export {} into {to}: {} files copied ({}), {} already there, {} snapshots{}",
            r.export_id,
            r.copied,
            ui::human_bytes(r.copied_bytes),
            r.already_present,
            r.snapshots,
            if r.created_repository {
                " (new repository)"
            } else {
                ""
            }
        );
    }
    Ok(ui::EXIT_OK)
}
