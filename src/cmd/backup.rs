//! `cadang backup`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use cadang_agent::{BackupOptions, Progress, Source};
use clap::Args;

use crate::cmd::interrupt::{self, Ended};
use crate::ui;
use crate::RepoArg;

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// The agent credential file written by `repo init`.
    #[arg(long, value_name = "FILE")]
    credentials: PathBuf,
    /// Where the file cache lives (default ~/.cache/cadang).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Read every file, ignoring the cache.
    #[arg(long)]
    no_cache: bool,
    /// Host name recorded in the snapshot (default: this host).
    #[arg(long)]
    host: Option<String>,
    /// A tag for the snapshot (repeatable).
    #[arg(long = "tag", value_name = "T")]
    tags: Vec<String>,
    /// Skip matching paths: a pattern with '/' matches whole paths, one without matches names (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
    /// Back up a command's output as a file with this name (use with --stdin-from).
    #[arg(long, value_name = "NAME", requires = "stdin_from")]
    stdin_name: Option<String>,
    /// The command whose output to back up, e.g. 'pg_dump -Fc db'. A non-zero exit fails the backup.
    #[arg(
        long,
        value_name = "COMMAND",
        requires = "stdin_name",
        conflicts_with = "paths"
    )]
    stdin_from: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Paths to back up.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub async fn run(a: BackupArgs) -> Result<u8> {
    let creds = ui::credentials(&a.credentials)?;
    // Ctrl-C stops the backup at a safe point through this guard (see interrupt.rs).
    let store = interrupt::guard(crate::store::open_store(&a.repo.repo)?);
    let repo = Arc::new(cadang_core::Repository::open(store.clone()).await?);
    let json = a.json;
    let (source, opts) = source_and_options(a, &creds.agent_name)?;
    let progress = Arc::new(Progress::default());
    let ticker = ui::stderr_is_terminal().then(|| start_ticker(&source, progress.clone()));
    let job = async { Ok(cadang_agent::backup(repo, creds, source, opts, progress).await?) };
    let result = interrupt::until_signal("backup", std::slice::from_ref(&store), job).await;
    if let Some(t) = ticker {
        t.abort();
        eprint!("\r\x1b[K");
    }
    match result? {
        Ended::Finished(summary) => print_summary(&summary, json),
        Ended::Interrupted(code) => Ok(code),
    }
}

/// What to back up (paths, or a command's output) and how.
fn source_and_options(a: BackupArgs, agent: &str) -> Result<(Source, BackupOptions)> {
    let source = match (a.stdin_name, a.stdin_from) {
        (Some(name), Some(command)) => Source::Command { name, command },
        _ if a.paths.is_empty() => {
            anyhow::bail!("nothing to back up: give paths, or --stdin-name with --stdin-from")
        }
        _ => Source::Paths(a.paths.clone()),
    };
    let opts = BackupOptions {
        host: a.host.unwrap_or_else(cadang_core::lock::hostname),
        agent: agent.to_string(),
        tags: a.tags,
        excludes: a.excludes,
        cache_dir: if a.no_cache {
            None
        } else {
            a.cache_dir.or_else(ui::default_cache_dir)
        },
        workers: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    };
    Ok((source, opts))
}

/// Shows files, bytes, rate and (once the sources are summed beside the
/// backup) an ETA on the terminal every half second, until aborted.
fn start_ticker(source: &Source, progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    if let Source::Paths(p) = source {
        let (paths, total) = (p.clone(), total.clone());
        std::thread::spawn(move || scan_total(&paths, &total));
    }
    tokio::spawn(async move {
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let done = progress.bytes.load(Ordering::Relaxed);
            let secs = start.elapsed().as_secs_f64().max(0.001);
            let rate = done as f64 / secs;
            let t = total.load(Ordering::Relaxed);
            let eta = if t > done && rate > 0.0 {
                format!(", ETA {}s", ((t - done) as f64 / rate) as u64)
            } else {
                String::new()
            };
            eprint!(
                "\r\x1b[K{} files, {} ({}/s){eta}",
                progress.files.load(Ordering::Relaxed),
                ui::human_bytes(done),
                ui::human_bytes(rate as u64)
            );
        }
    })
}

/// Prints the summary; the exit code says whether every item was read.
fn print_summary(summary: &cadang_agent::BackupSummary, json: bool) -> Result<u8> {
    if json {
        ui::print_json(&serde_json::json!({
            "snapshot": summary.snapshot.to_hex(),
            "files": summary.stats.files,
            "dirs": summary.stats.dirs,
            "bytes": summary.stats.bytes,
            "added_bytes": summary.stats.added_bytes,
            "new_chunks": summary.stats.new_chunks,
            "duration_ms": summary.stats.duration_ms,
            "recovered_packs": summary.recovered_packs,
            "problems": summary.problems,
        }))?;
    } else {
        println!(
            "snapshot {} saved: {} files, {} dirs, {} processed, {} added to the repository in {:.1}s",
            summary.snapshot.short(),
            summary.stats.files,
            summary.stats.dirs,
            ui::human_bytes(summary.stats.bytes),
            ui::human_bytes(summary.stats.added_bytes),
            summary.stats.duration_ms as f64 / 1000.0
        );
        for p in &summary.problems {
            eprintln!("warning: not backed up: {p}");
        }
    }
    if summary.problems.is_empty() {
        Ok(ui::EXIT_OK)
    } else {
        eprintln!(
            "warning: {} item(s) could not be read; the snapshot does not contain them (exit code 3)",
            summary.problems.len()
        );
        Ok(ui::EXIT_INCOMPLETE)
    }
}

/// Sums the sizes of the sources for the ETA; runs beside the backup.
fn scan_total(paths: &[PathBuf], total: &std::sync::atomic::AtomicU64) {
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if m.is_file() {
            total.fetch_add(m.len(), Ordering::Relaxed);
        }
    }
}
