//! The whole cycle with real processes: a controller and two enrolled
//! agents for two PDs run scheduled backups (a path source and a dump
//! stream), replication and verification; then the controller and an agent
//! are killed with SIGKILL mid-cycle and the fleet recovers without losing
//! or doubling anything.
//!
//! Schedules are every minute (the real clock: these are separate
//! processes), so this file takes a few minutes.

mod cluster;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cluster::{Cluster, HostSpec};
use serde_json::Value;

fn hosts(files: &std::path::Path) -> Vec<HostSpec> {
    vec![
        HostSpec {
            pd: "DINKES",
            host: "fs-dinkes",
            sources: format!(
                "[[hosts.sources]]\nname = \"berkas\"\npaths = [\"{}\"]\nexclude = [\"*.tmp\"]\n",
                files.display()
            ),
        },
        HostSpec {
            pd: "DISDUKCAPIL",
            host: "siak-db-01",
            // A dump stream that takes a few seconds, so an agent can be
            // killed while it runs.
            sources: "[[hosts.sources]]\nname = \"siak\"\nstream = \"siak.dump\"\ncommand = \"sh -c 'head -c 2000000 /dev/urandom; sleep 6'\"\n".into(),
        },
    ]
}

fn kind<'a>(jobs: &'a [Value], k: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    jobs.iter().filter(move |j| j["kind"] == k)
}

fn succeeded(j: &Value) -> bool {
    j["state"] == "finished" && j["outcome"] == "succeeded"
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()?.parse().ok()
}

/// Succeeded backups per (host, source, slot): each must be there once.
fn backups_by_slot(jobs: &[Value]) -> BTreeMap<(String, String, i64), usize> {
    let mut m = BTreeMap::new();
    for j in kind(jobs, "backup").filter(|j| succeeded(j)) {
        let key = (
            j["host"].as_str().unwrap_or_default().to_string(),
            j["source"].as_str().unwrap_or_default().to_string(),
            j["slot"].as_i64().unwrap_or(-1),
        );
        *m.entry(key).or_default() += 1;
    }
    m
}

fn assert_no_doubles(c: &Cluster, jobs: &[Value]) {
    for (key, n) in backups_by_slot(jobs) {
        assert_eq!(n, 1, "slot {key:?} was backed up {n} times\n{}", c.logs());
    }
    for pd in ["DINKES", "DISDUKCAPIL"] {
        let snapshots = c.snapshots_in(&c.onsite(pd)).len();
        let reported = kind(jobs, "backup")
            .filter(|j| j["pd"] == pd && succeeded(j) && !j["snapshot"].is_null())
            .count();
        assert_eq!(
            snapshots,
            reported,
            "{pd}: {snapshots} snapshots in the store but {reported} backup reports\n{}",
            c.logs()
        );
    }
}

#[test]
fn scheduled_cycle_survives_killed_controller_and_agent() {
    let files = tempfile::tempdir().unwrap();
    for i in 0..20 {
        std::fs::write(
            files.path().join(format!("laporan-{i}.txt")),
            format!("laporan {i}\n").repeat(500),
        )
        .unwrap();
    }
    std::fs::write(files.path().join("skip.tmp"), "excluded").unwrap();
    let mut c = Cluster::start(&hosts(files.path()));

    // 1. The scheduled cycle: backups of both sources, replication to the DR
    //    store and verification, for both PDs.
    c.wait(
        Duration::from_secs(240),
        "backups, replication and verification of both PDs",
        |c| {
            let jobs = c.jobs();
            let done = |k: &str, pd: &str| kind(&jobs, k).any(|j| j["pd"] == pd && succeeded(j));
            ["DINKES", "DISDUKCAPIL"]
                .iter()
                .all(|pd| done("backup", pd) && done("replicate", pd) && done("verify", pd))
                .then_some(())
        },
    );
    for pd in ["DINKES", "DISDUKCAPIL"] {
        assert!(
            !c.snapshots_in(&c.dr(pd)).is_empty(),
            "{pd}: no snapshot at the DR site"
        );
    }
    let metrics = c.metrics();
    for name in [
        "cadang_backup_last_success_timestamp_seconds",
        "cadang_site_lag_seconds",
        "cadang_job_outcomes",
        "cadang_connected_agents",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
    let table = cluster::ok(c.api(&["jobs", "--pd", "DINKES"]));
    assert!(
        table.contains("backup") && table.contains("replicate"),
        "cadang jobs:\n{table}"
    );

    // 2. kill -9 the controller: the agents go on backing up on their cached
    //    schedule; when it returns, the spooled reports arrive once each and
    //    the missed replication runs once.
    let before = c.snapshots_in(&c.onsite("DINKES")).len();
    c.kill_controller();
    c.wait(
        Duration::from_secs(150),
        "a backup made while the controller was down",
        |c| (c.snapshots_in(&c.onsite("DINKES")).len() > before).then_some(()),
    );
    let down_snapshots = c.snapshots_in(&c.onsite("DINKES")).len();
    let restarted = Utc::now();
    c.start_controller();
    c.wait(
        Duration::from_secs(90),
        "the spooled reports to arrive",
        |c| {
            let jobs = c.jobs();
            let reported = kind(&jobs, "backup")
                .filter(|j| j["pd"] == "DINKES" && succeeded(j) && !j["snapshot"].is_null())
                .count();
            (reported >= down_snapshots).then_some(())
        },
    );
    let jobs = c.wait(
        Duration::from_secs(90),
        "replication after the restart",
        |c| {
            let jobs = c.jobs();
            let replicated = kind(&jobs, "replicate").any(|j| {
                j["pd"] == "DINKES" && time(&j["created"]).is_some_and(|t| t >= restarted)
            });
            replicated.then_some(jobs)
        },
    );
    let first_after = kind(&jobs, "replicate")
        .filter(|j| j["pd"] == "DINKES")
        .filter_map(|j| time(&j["created"]))
        .filter(|t| *t >= restarted)
        .min()
        .unwrap();
    let burst = kind(&jobs, "replicate")
        .filter(|j| j["pd"] == "DINKES")
        .filter(|j| {
            time(&j["created"])
                .is_some_and(|t| t >= first_after && t < first_after + chrono::Duration::seconds(5))
        })
        .count();
    assert_eq!(
        burst,
        1,
        "the missed replication ran {burst} times at start\n{}",
        c.logs()
    );
    assert_no_doubles(&c, &jobs);

    // 3. kill -9 an agent in the middle of its dump: the job is run again
    //    and completes, and its slot has one snapshot.
    let victim = c.wait(
        Duration::from_secs(150),
        "a running backup of the dump source",
        |c| {
            c.jobs().into_iter().find(|j| {
                j["kind"] == "backup"
                    && j["host"] == "siak-db-01"
                    && (j["state"] == "running" || j["state"] == "delivered")
            })
        },
    );
    // The dump streams for about six seconds; kill inside it.
    std::thread::sleep(Duration::from_secs(2));
    c.kill_agent("siak-db-01");
    c.start_agent("siak-db-01");
    let id = victim["id"].as_str().unwrap().to_string();
    let jobs = c.wait(
        Duration::from_secs(150),
        "the interrupted backup to complete",
        |c| {
            let jobs = c.jobs();
            jobs.iter()
                .any(|j| j["id"] == id.as_str() && succeeded(j))
                .then_some(jobs)
        },
    );
    // Let retention and verification run over the result too.
    let jobs = c.wait(Duration::from_secs(120), "retention at both sites", |c| {
        let _ = &jobs;
        let jobs = c.jobs();
        let sites: Vec<&Value> = kind(&jobs, "retention")
            .filter(|j| succeeded(j))
            .map(|j| &j["site"])
            .collect();
        (sites.iter().any(|s| *s == "onsite") && sites.iter().any(|s| *s == "dr")).then_some(jobs)
    });
    assert_no_doubles(&c, &jobs);
}

/// SIGHUP with a broken policy set is refused and the running set stays;
/// SIGTERM stops the controller cleanly; `controller rebuild` re-creates the
/// snapshot catalogue from the stores.
#[test]
fn sighup_refuses_a_broken_set_sigterm_stops_and_rebuild_reads_the_stores() {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("a.txt"), "isi berkas").unwrap();
    let mut hosts = hosts(files.path());
    hosts.truncate(1);
    let mut c = Cluster::start(&hosts);
    let queued = cluster::ok(c.api(&["backup-now", "fs-dinkes", "--json"]));
    assert!(queued.contains("jobs"), "{queued}");
    c.wait(Duration::from_secs(90), "the backup-now job", |c| {
        kind(&c.jobs(), "backup").any(succeeded).then_some(())
    });

    let policy = c.policy_file("DINKES");
    let good = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, format!("{good}\nretensi = 3\n")).unwrap();
    c.signal_controller(libc::SIGHUP);
    c.wait(Duration::from_secs(20), "the reload to be refused", |c| {
        c.controller_log()
            .contains("policy reload refused")
            .then_some(())
    });
    let fleet = cluster::ok(c.api(&["fleet", "status", "--json"]));
    assert!(
        fleet.contains("fs-dinkes"),
        "the running set was dropped:\n{fleet}"
    );
    std::fs::write(&policy, good).unwrap();

    c.signal_controller(libc::SIGTERM);
    let status = c
        .wait_controller_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the controller did not stop on SIGTERM\n{}", c.logs()));
    assert!(status.success(), "SIGTERM exit {status:?}\n{}", c.logs());

    let out = cluster::ok(cluster::cadang(&[
        "controller",
        "rebuild",
        "--config",
        &c.config_path().display().to_string(),
    ]));
    let found = out
        .lines()
        .find_map(|l| l.strip_prefix("DINKES in pusat-data: "))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<usize>().ok());
    assert!(found.is_some_and(|n| n >= 1), "rebuild said:\n{out}");
}
