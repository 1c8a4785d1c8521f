//! `cadang policy check` and `cadang policy explain`: an operator checks a
//! policy directory before the controller loads it, and sees when each
//! job of a PD will next run, in local time and UTC.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cadang_policies::diagnostic::Diagnostic;
use cadang_policies::explain::{self, Explanation};
use cadang_policies::model::PolicySet;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check a policy directory (regency.toml + pd/*.toml): every error, located.
    Check(CheckArgs),
    /// Show the next runs of each job of one PD, in local time (WIB/WITA/WIT) and UTC.
    Explain(ExplainArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// The policy directory: regency.toml and pd/*.toml.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Print the diagnostics as a JSON array (empty when the set is valid).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// The policy directory: regency.toml and pd/*.toml.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The PD's code, e.g. DISDUKCAPIL.
    #[arg(value_name = "PD")]
    pd: String,
    /// How many next runs to show per job.
    #[arg(long, default_value_t = 5, value_name = "N")]
    count: usize,
    /// Print the jobs and their runs as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Compute from this instant (RFC 3339) instead of now: for tests.
    #[arg(long, hide = true, value_name = "RFC3339")]
    now: Option<String>,
}

pub async fn run(c: PolicyCommand) -> Result<u8> {
    match c {
        PolicyCommand::Check(a) => check(a),
        PolicyCommand::Explain(a) => explain(a),
    }
}

fn check(a: CheckArgs) -> Result<u8> {
    let result = cadang_policies::load_dir(&a.dir);
    if a.json {
        let diags = result.as_ref().err().map_or(&[][..], Vec::as_slice);
        println!("{}", serde_json::to_string_pretty(diags)?);
        return Ok(u8::from(result.is_err()));
    }
    match result {
        Ok(set) => {
            println!("{}", summary(&set));
            Ok(0)
        }
        Err(diags) => {
            print_diagnostics(&diags, &a.dir);
            Ok(1)
        }
    }
}

/// `4 PDs, 5 hosts, 7 sources: valid`.
fn summary(set: &PolicySet) -> String {
    let hosts: usize = set.pds.values().map(|p| p.hosts.len()).sum();
    let sources: usize = set
        .pds
        .values()
        .flat_map(|p| &p.hosts)
        .map(|h| h.sources.len())
        .sum();
    format!(
        "{} {}, {} {}, {} {}: valid",
        set.pds.len(),
        plural(set.pds.len(), "PD", "PDs"),
        hosts,
        plural(hosts, "host", "hosts"),
        sources,
        plural(sources, "source", "sources")
    )
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Every diagnostic on stdout (they are the command's answer), and the
/// count on stderr.
fn print_diagnostics(diags: &[Diagnostic], dir: &Path) {
    for d in diags {
        println!("{d}");
    }
    eprintln!(
        "{} {} in the policies of {}",
        diags.len(),
        plural(diags.len(), "error", "errors"),
        dir.display()
    );
}

fn explain(a: ExplainArgs) -> Result<u8> {
    let now = match &a.now {
        Some(t) => DateTime::parse_from_rfc3339(t)
            .with_context(|| {
                format!("--now `{t}` is not an RFC 3339 time such as 2026-12-03T10:00:00Z")
            })?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let set = match cadang_policies::load_dir(&a.dir) {
        Ok(set) => set,
        Err(diags) => {
            print_diagnostics(&diags, &a.dir);
            eprintln!("fix these first: explain needs a valid policy set");
            return Ok(1);
        }
    };
    let code = resolve_code(&set, &a.pd)?;
    let Some(e) = explain::explain(&set, &code, now, a.count) else {
        anyhow::bail!("PD `{code}` is not in the policy set");
    };
    print_explanation(&e, a.json)?;
    Ok(0)
}

/// The PD's code as written, or matched without regard to case
/// (`disdukcapil` for `DISDUKCAPIL`).
fn resolve_code(set: &PolicySet, wanted: &str) -> Result<String> {
    if set.pds.contains_key(wanted) {
        return Ok(wanted.to_string());
    }
    set.pds
        .keys()
        .find(|c| c.eq_ignore_ascii_case(wanted))
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = set.pds.keys().map(String::as_str).collect();
            anyhow::anyhow!(
                "no PD `{wanted}` in the policy set; its PDs are: {}",
                known.join(", ")
            )
        })
}

fn print_explanation(e: &Explanation, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(e)?);
    } else {
        print!("{e}");
    }
    Ok(())
}
