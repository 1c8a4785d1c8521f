//! `fleet-bench`: thousands of light agents against one controller.
//!
//! Every simulated agent enrolls for real (its own keys, a one-time token,
//! a client certificate), then long-polls over mTLS and answers each backup
//! job with a report. The bench measures what issue 7 targets: delivery of
//! due jobs against their due time, API latency for fleet status and job
//! listing under that load, the controller's RSS, and after a controller
//! restart how long until every agent is back, with the peak request rate.
//! `bench/fleet.sh` sets up the controller and policies and runs this.

mod probe;
mod sim;
mod stats;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cadang_controller::client::ApiClient;
use cadang_proto::agent::AgentRole;
use cadang_proto::api::{EnrollTokenRequest, EnrollTokenResponse};
use clap::Parser;

use crate::sim::{Shared, SimAgent};

#[derive(Parser)]
struct Args {
    /// https://HOST:PORT of the controller.
    #[arg(long)]
    controller: String,
    /// The controller CA certificate (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// Simulated agents; agent i is host `h{i}` of PD `{pd_prefix}{i % pds}`.
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    #[arg(long, default_value_t = 10)]
    pds: usize,
    #[arg(long, default_value = "BENCH")]
    pd_prefix: String,
    /// Where the agents' state directories go.
    #[arg(long)]
    state: PathBuf,
    /// Enrollments in flight at once.
    #[arg(long, default_value_t = 32)]
    enroll_concurrency: usize,
    /// Seconds of steady long-polling before the restart.
    #[arg(long, default_value_t = 150)]
    steady_seconds: u64,
    /// Shell command that restarts the controller (kill, start, wait for its port).
    #[arg(long)]
    restart_cmd: Option<String>,
    /// Seconds to keep running after the restart command returned.
    #[arg(long, default_value_t = 90)]
    after_restart_seconds: u64,
    /// File holding the controller's PID (re-read, so it follows a restart).
    #[arg(long)]
    pid_file: PathBuf,
    #[arg(long, default_value_t = 25)]
    poll_wait_seconds: u32,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let token =
        std::env::var("CADANG_TOKEN").context("CADANG_TOKEN (an admin API token) is not set")?;
    let ca = std::fs::read_to_string(&args.ca).with_context(|| args.ca.display().to_string())?;
    let api = ApiClient::new(&args.controller, &ca, None, Some(token))?;

    let t0 = Instant::now();
    let agents = enroll_all(&args, &api).await?;
    let enroll_time = t0.elapsed();
    eprintln!(
        "enrolled {} agents in {:.1} s",
        agents.len(),
        enroll_time.as_secs_f64()
    );

    let shared = Arc::new(Shared {
        started: Instant::now(),
        delivery: Default::default(),
        delivery_startup: Default::default(),
        first_polls: Default::default(),
        ready_at_ms: Default::default(),
        agents: args.agents as u64,
        requests: Default::default(),
        jobs: Default::default(),
        failures: Default::default(),
        restart_ms: Default::default(),
        reconnected: Default::default(),
        last_reconnect_ms: Default::default(),
        poll_wait_seconds: args.poll_wait_seconds,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let rss = probe::RssSampler::start(args.pid_file.clone(), stop_rx.clone());
    let api_probe = probe::ApiProbe::start(api.clone(), stop_rx.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for agent in agents {
        tasks.spawn(agent.run(shared.clone(), stop_rx.clone()));
    }

    tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
    let steady_delivery = shared.delivery.summary();
    let startup_delivery = shared.delivery_startup.summary();
    let steady_api = api_probe.summaries();
    let steady_rss = rss.peak_kib();
    let mut restart = None;
    if let Some(cmd) = &args.restart_cmd {
        restart = Some(restart_and_wait(cmd, &args, &shared).await?);
    }
    stop_tx.send(true).ok();
    tasks.abort_all();

    let report = serde_json::json!({
        "agents": args.agents,
        "enroll_seconds": enroll_time.as_secs_f64(),
        "jobs_delivered": shared.jobs.load(Ordering::Relaxed),
        "delivery_ms": summary_json(steady_delivery),
        "delivery_during_startup_ms": summary_json(startup_delivery),
        "api_fleet_ms": summary_json(steady_api.0),
        "api_jobs_ms": summary_json(steady_api.1),
        "controller_peak_rss_mib": steady_rss as f64 / 1024.0,
        "controller_peak_rss_mib_whole_run": rss.peak_kib() as f64 / 1024.0,
        "failed_requests": shared.failures.load(Ordering::Relaxed),
        "restart": restart,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

fn summary_json(s: stats::Summary) -> serde_json::Value {
    serde_json::json!({"n": s.count, "p50": stats::ms(s.p50), "p99": stats::ms(s.p99), "max": stats::ms(s.max)})
}

/// Tokens through the admin API, then the agents' own enrollment, a bounded
/// number at a time.
async fn enroll_all(args: &Args, api: &ApiClient) -> Result<Vec<SimAgent>> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(args.enroll_concurrency));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..args.agents {
        let permit = semaphore.clone().acquire_owned().await?;
        let api = api.clone();
        let host = format!("h{i}");
        let pd = format!("{}{:02}", args.pd_prefix, i % args.pds);
        let controller = args.controller.clone();
        let dir = args.state.join(&host);
        set.spawn(async move {
            let _permit = permit;
            let request = EnrollTokenRequest {
                host: host.clone(),
                pd,
                role: AgentRole::Backup,
                ttl_seconds: 3600,
            };
            let token: EnrollTokenResponse = api.post("/api/v1/enroll-tokens", &request).await?;
            SimAgent::enroll(&controller, &token.token, &host, &dir).await
        });
    }
    let mut agents = Vec::with_capacity(args.agents);
    while let Some(done) = set.join_next().await {
        agents.push(done??);
    }
    Ok(agents)
}

/// Runs the restart command, then waits until every agent has polled
/// successfully again (or the time runs out).
async fn restart_and_wait(cmd: &str, args: &Args, shared: &Shared) -> Result<serde_json::Value> {
    let from_ms = shared.now_ms().max(1);
    shared.restart_ms.store(from_ms, Ordering::Relaxed);
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .await?;
    anyhow::ensure!(status.success(), "restart command failed: {status}");
    let back_ms = shared.now_ms();
    let deadline = Instant::now() + Duration::from_secs(args.after_restart_seconds);
    while shared.reconnected.load(Ordering::Relaxed) < args.agents as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reconnected = shared.reconnected.load(Ordering::Relaxed);
    let all_back_ms = shared.last_reconnect_ms.load(Ordering::Relaxed);
    let (peak_second, peak_requests) = shared
        .requests
        .peak(from_ms / 1000, shared.now_ms() / 1000 + 1);
    Ok(serde_json::json!({
        "controller_back_after_s": (back_ms - from_ms) as f64 / 1000.0,
        "reconnected": reconnected,
        "all_reconnected_after_restart_s": if reconnected == args.agents as u64 {
            Some((all_back_ms.saturating_sub(back_ms)) as f64 / 1000.0) } else { None },
        "peak_requests_per_second": peak_requests,
        "peak_second_after_restart": peak_second as f64 - (from_ms / 1000) as f64,
    }))
}
