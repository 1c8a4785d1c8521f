//! Between sites: replicate to the DR store, repair from the other site.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use cadang_core::backend::Backend;
use cadang_core::ratelimit::{parse_rate, RateLimiter};
use cadang_core::repair;
use cadang_core::replicate::{self, ReplicateOptions};
use chrono::{Local, NaiveTime, Timelike};
use clap::Args;

use crate::cmd::interrupt::{self, Ended};
use crate::store::{open_store, open_store_paced};
use crate::ui;

#[derive(Args)]
pub struct ReplicateArgs {
    /// The store to copy from (the on-site store).
    #[arg(long, value_name = "STORE")]
    from: String,
    /// The store to copy to (the DR site); created if empty.
    #[arg(long, value_name = "STORE")]
    to: String,
    /// Refuse unless the source repository belongs to this PD.
    #[arg(long, value_name = "CODE")]
    pd: Option<String>,
    /// Bandwidth limit, e.g. 20MiB/s (S3 targets: paced in 64 KiB slices).
    #[arg(long, value_name = "RATE")]
    bwlimit: Option<String>,
    /// Only copy inside this daily window (local time), e.g. 22:00-05:00.
    #[arg(long, value_name = "HH:MM-HH:MM")]
    window: Option<String>,
    /// Write with S3 Object Lock retention for this many days.
    #[arg(long, value_name = "N")]
    lock_days: Option<u32>,
    /// Files in flight at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Seconds from now until the window ends, or `None` when outside it.
fn window_left(window: &str, now: NaiveTime) -> Result<Option<Duration>> {
    let parse = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M");
    let Some((a, b)) = window.split_once('-') else {
        bail!("--window takes HH:MM-HH:MM, e.g. 22:00-05:00");
    };
    let (Ok(start), Ok(end)) = (parse(a), parse(b)) else {
        bail!("--window takes HH:MM-HH:MM, e.g. 22:00-05:00 (got {window:?})");
    };
    let secs = |t: NaiveTime| t.num_seconds_from_midnight() as i64;
    let (s, e, n) = (secs(start), secs(end), secs(now));
    let left = if s <= e {
        (s <= n && n < e).then(|| e - n)
    } else if n >= s {
        Some(86_400 - n + e)
    } else {
        (n < e).then(|| e - n)
    };
    Ok(left.map(|l| Duration::from_secs(l as u64)))
}

pub async fn replicate(a: ReplicateArgs) -> Result<u8> {
    let limiter = limiter(&a)?;
    let deadline = match window_deadline(&a)? {
        Window::Open(deadline) => deadline,
        Window::Closed(w) => return print_outside_window(&a, &w),
    };
    let (from, to) = open_stores(&a, limiter)?;
    let opts = ReplicateOptions {
        pd: a.pd.clone(),
        parallel: a.parallel,
        limiter: None,
        retain_until: retain_until(&a, &*to).await?,
        deadline,
    };
    let started = std::time::Instant::now();
    // Ctrl-C stops the copy at its next store operation (replication takes
    // no lock; a cut leaves files the next run completes).
    let guards = [interrupt::guard(from), interrupt::guard(to)];
    let (from, to): (Arc<dyn Backend>, Arc<dyn Backend>) = (guards[0].clone(), guards[1].clone());
    let job = async { Ok(replicate::replicate(from, to, &opts).await?) };
    let r = match interrupt::until_signal("replication", &guards, job).await? {
        Ended::Finished(r) => r,
        Ended::Interrupted(code) => return Ok(code),
    };
    print_report(&r, started.elapsed().as_secs_f64(), a.json)?;
    Ok(if r.corrupt_at_source.is_empty() {
        ui::EXIT_OK
    } else {
        ui::EXIT_INCOMPLETE
    })
}

fn limiter(a: &ReplicateArgs) -> Result<Option<Arc<RateLimiter>>> {
    let Some(r) = &a.bwlimit else {
        return Ok(None);
    };
    let rate = parse_rate(r).ok_or_else(|| {
        anyhow::anyhow!("--bwlimit {r:?} is not a rate; write e.g. 20MiB/s or 500KiB/s")
    })?;
    Ok(Some(Arc::new(RateLimiter::new(rate))))
}

/// Whether this run may copy now, and until when.
enum Window {
    /// Copy, starting no new file after the deadline (if any).
    Open(Option<tokio::time::Instant>),
    /// Outside the window named: copy nothing.
    Closed(String),
}

fn window_deadline(a: &ReplicateArgs) -> Result<Window> {
    let Some(w) = &a.window else {
        return Ok(Window::Open(None));
    };
    Ok(match window_left(w, Local::now().time())? {
        Some(left) => Window::Open(Some(tokio::time::Instant::now() + left)),
        None => Window::Closed(w.clone()),
    })
}

fn print_outside_window(a: &ReplicateArgs, w: &str) -> Result<u8> {
    if a.json {
        ui::print_json(&serde_json::json!({
            "outside_window": true, "window": w, "copied": 0
        }))?;
    } else {
        println!("outside the replication window {w} (local time): nothing copied");
    }
    Ok(ui::EXIT_OK)
}

/// The source, and the target paced by the limiter: the target store paces
/// its own writes (an S3 target in 64 KiB slices, a directory file by
/// file), so replicate itself does not.
fn open_stores(
    a: &ReplicateArgs,
    limiter: Option<Arc<RateLimiter>>,
) -> Result<(Arc<dyn Backend>, Arc<dyn Backend>)> {
    let from = open_store(&a.from)?;
    let to = match limiter {
        Some(l) => open_store_paced(&a.to, l)?,
        None => open_store(&a.to)?,
    };
    Ok((from, to))
}

/// `--lock-days` as a date, refused before anything is copied when the
/// target cannot enforce it.
async fn retain_until(a: &ReplicateArgs, to: &dyn Backend) -> Result<Option<SystemTime>> {
    let retain_until = a
        .lock_days
        .map(|d| SystemTime::now() + Duration::from_secs(u64::from(d) * 86_400));
    if retain_until.is_some() {
        if let Err(e) = to.check_retention().await {
            bail!(
                "--lock-days needs an S3 bucket with Object Lock at --to: {e} (nothing was copied)"
            );
        }
    }
    Ok(retain_until)
}

fn print_report(r: &replicate::ReplicationReport, secs: f64, json: bool) -> Result<()> {
    let bytes = r.packs.bytes + r.index.bytes + r.snapshots.bytes + r.keys.bytes;
    if json {
        let mut v = serde_json::to_value(r)?;
        v["seconds"] = serde_json::json!(secs);
        v["bytes_per_sec"] = serde_json::json!(bytes as f64 / secs.max(1e-9));
        return ui::print_json(&v);
    }
    println!(
        "replicated repository {} (PD {}) in {secs:.1}s: {} packs ({}), {} index files, {} snapshots; {} files were already there",
        r.repository,
        r.pd,
        r.packs.files,
        ui::human_bytes(r.packs.bytes),
        r.index.files,
        r.snapshots.files,
        r.already_present
    );
    match &r.newest_missing {
        Some(t) => println!(
            "replication lag before this run: {} (newest snapshot missing at the target: {t})",
            human_duration(r.lag_seconds)
        ),
        None => println!("replication lag before this run: none, the target was up to date"),
    }
    if r.stopped_at_window_end {
        println!(
            "stopped at the end of the replication window; {} files left for the next run",
            r.left
        );
    } else if r.left > 0 {
        println!("{} files are still missing at the target", r.left);
    }
    for f in &r.held_back {
        println!("held back (a pack it needs is not at the target): {f}");
    }
    for f in &r.corrupt_at_source {
        eprintln!("damaged at the source, not copied: {f} (run `cadang check --read-data` there and `cadang repair --from` the other site)");
    }
    Ok(())
}

fn human_duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

#[derive(Args)]
pub struct RepairArgs {
    /// The store to repair.
    #[arg(long, value_name = "STORE")]
    repo: String,
    /// The other site's store, holding the same repository.
    #[arg(long, value_name = "STORE")]
    from: String,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn repair(a: RepairArgs) -> Result<u8> {
    let (store, other) = (open_store(&a.repo)?, open_store(&a.from)?);
    let r = repair::repair(store, other).await?;
    if a.json {
        ui::print_json(&r)?;
    } else {
        println!("checked {} packs", r.packs_checked);
        for i in &r.replaced {
            println!(
                "replaced {} ({}) with the copy from {}",
                i.file, i.problem, a.from
            );
        }
        for i in &r.unrepaired {
            eprintln!(
                "NOT repaired: {} ({}); the other site has no whole copy either",
                i.file, i.problem
            );
        }
        if r.replaced.is_empty() && r.unrepaired.is_empty() {
            println!("nothing to repair: every pack and index file is whole");
        }
    }
    Ok(if r.unrepaired.is_empty() {
        ui::EXIT_OK
    } else {
        ui::EXIT_INCOMPLETE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_across_midnight() {
        let t = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").unwrap();
        let left = |w: &str, n: &str| window_left(w, t(n)).unwrap().map(|d| d.as_secs() / 60);
        assert_eq!(left("22:00-05:00", "23:00"), Some(360));
        assert_eq!(left("22:00-05:00", "04:00"), Some(60));
        assert_eq!(left("22:00-05:00", "12:00"), None);
        assert_eq!(left("01:00-03:00", "02:30"), Some(30));
        assert_eq!(left("01:00-03:00", "03:00"), None);
        assert!(window_left("nightly", t("01:00")).is_err());
    }
}
