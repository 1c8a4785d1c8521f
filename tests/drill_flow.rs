//! Restore drills end to end with real processes (issue 8): a real
//! PostgreSQL holds a `penduduk` table; the PD's agent backs it up with
//! `pg_dump -Fc` every minute; the controller replicates to a DR **S3**
//! store (cadang-test-s3); the Wali Data grants drills to a drill runner
//! enrolled at the DR site; the scheduled drill (every minute, the real
//! clock, as the fleet tests run) restores from the DR store into a
//! sandbox, verifies every file, restores the dump into a throwaway
//! PostgreSQL cluster and counts the rows. Then:
//! - a drill before the grant is reported failed ("no drill grant");
//! - the signed report (JSON and PDF) passes `cadang report verify` with the
//!   controller's key, and one changed byte in either makes it fail;
//! - with an RTO of zero (too small for any drill) the drill is reported
//!   failed "over the objective";
//! - with the DR copy's packs damaged the drill is reported failed with
//!   "the DR copy is damaged".
//!
//! Needs Debian's `postgresql` package (initdb, pg_ctl, pg_dump, psql);
//! fails, saying so, when it is missing. Takes several minutes.

mod cluster;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cadang_agent::daemon::sandbox::{pg_bin, PgCluster, Sandbox};
use cadang_testkit::S3Server;
use cluster::{cadang, ok, secrets, Cluster, HostSpec};
use serde_json::{json, Value};

const PD: &str = "DUKCAPIL";
const HOST: &str = "siak-db";
const RUNNER: &str = "drc-runner";
const WALI_NIP: &str = "198111072008042001";
const ROWS: i64 = 1500;

/// The source database: a throwaway cluster with `penduduk` (ROWS rows).
fn source_database() -> (Sandbox, PgCluster) {
    pg_bin().expect(
        "PostgreSQL is not installed: install Debian's `postgresql` package (.ci/run does) to run the drill tests",
    );
    let sandbox = Sandbox::create(&std::env::temp_dir(), "source").unwrap();
    let db = PgCluster::start(sandbox.root()).expect("the source PostgreSQL starts");
    db.query(&format!(
        "CREATE TABLE penduduk (nik text PRIMARY KEY, nama text); \
         INSERT INTO penduduk SELECT lpad(g::text, 16, '0'), 'Warga ' || g FROM generate_series(1, {ROWS}) g"
    ))
    .unwrap();
    assert_eq!(
        db.query("SELECT count(*) FROM penduduk").unwrap(),
        ROWS.to_string()
    );
    (sandbox, db)
}

fn policy_body(sandbox: &Path) -> String {
    let pg_dump = pg_bin().unwrap().join("pg_dump");
    format!(
        r#"[[hosts.sources]]
name = "siak"
stream = "siak.dump"
command = "{} -Fc -h {} -U cadang drill"

[drill]
schedule = "* * * * *"
rto = "1h"
pick = "latest"
runner = "{RUNNER}"
check = {{ postgres = {{ stream = "siak.dump", query = "SELECT count(*) FROM penduduk", min = {ROWS} }} }}
"#,
        pg_dump.display(),
        sandbox.join("pg/run").display()
    )
}

/// Points the controller's DR store at the S3 server and restarts it.
fn dr_on_s3(c: &mut Cluster, s3: &S3Server) {
    let path = c.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let old = format!("[stores.drc]\nurl = \"{}\"\n", c.dir().join("dr").display());
    assert!(
        text.contains(&old),
        "controller.toml has no [stores.drc]: {text}"
    );
    let new = format!(
        "[stores.drc]\nurl = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        s3.url("drc", "stores"),
        cadang_testkit::ACCESS_KEY,
        cadang_testkit::SECRET_KEY
    );
    std::fs::write(&path, text.replace(&old, &new)).unwrap();
    c.kill_controller();
    c.start_controller();
}

/// Enrolls the drill runner (`--role drill-runner`) and starts it.
fn enroll_runner(c: &mut Cluster) {
    let out = ok(c.api(&[
        "controller",
        "enroll-token",
        "--config",
        &c.config_path().display().to_string(),
        "--host",
        RUNNER,
        "--pd",
        PD,
        "--role",
        "drill-runner",
        "--ttl",
        "1h",
    ]));
    let token = out
        .split_whitespace()
        .find(|w| w.starts_with("cadang-enroll-1."))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .to_string();
    let token_file = c.dir().join("runner.token");
    std::fs::write(&token_file, token).unwrap();
    ok(cadang(&[
        "agent",
        "enroll",
        "--controller",
        &c.url,
        "--token-file",
        &token_file.display().to_string(),
        "--state-dir",
        &c.agent_state(RUNNER).display().to_string(),
        "--host",
        RUNNER,
    ]));
    c.start_agent(RUNNER);
}

/// A custodian of PD (the Wali Data) with an API token.
fn wali_token(c: &Cluster) -> String {
    let body = json!({"name": "wali-dukcapil", "nip": WALI_NIP, "role": "custodian", "pds": [PD]});
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "--cacert",
            &c.ca().display().to_string(),
            "-H",
            &format!("Authorization: Bearer {}", c.token),
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
            &format!("{}/api/v1/users", c.url),
        ])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "creating the custodian: {text}");
    serde_json::from_str::<Value>(&text).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn drills(c: &Cluster) -> Vec<Value> {
    let out = c.api(&["drill", "list", "--json"]).output().unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v["drills"].as_array().cloned())
        .unwrap_or_default()
}

/// The newest drill created after `after` (an id) that is `state` and
/// whose reasons satisfy `reason`.
fn wait_drill(
    c: &Cluster,
    what: &str,
    after: Option<&str>,
    state: &str,
    reason: impl Fn(&str) -> bool,
) -> Value {
    c.wait(Duration::from_secs(420), what, |c| {
        drills(c).into_iter().find(|d| {
            d["state"] == state
                && after.is_none_or(|a| d["id"].as_str().unwrap_or("") > a)
                && (d["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| reason(r.as_str().unwrap()))
                    || (state == "passed" && d["reasons"].as_array().unwrap().is_empty()))
        })
    })
}

fn report_file(c: &Cluster, id: &str, format: &str) -> PathBuf {
    let out = c.dir().join(format!("{id}.{format}"));
    ok(c.api(&[
        "drill",
        "report",
        id,
        "--format",
        format,
        "--out",
        &out.display().to_string(),
    ]));
    out
}

fn verify(file: &Path, key: &str) -> std::process::Output {
    cadang(&[
        "report",
        "verify",
        &file.display().to_string(),
        "--key",
        key,
    ])
    .output()
    .unwrap()
}

/// The controller's public report key, from its signing key file.
fn controller_key(c: &Cluster) -> String {
    let secret = std::fs::read_to_string(c.dir().join("ctl/signing.key")).unwrap();
    cadang_core::keys::AgentKey::from_hex(secret.trim())
        .unwrap()
        .public()
        .to_hex()
}

/// Flips a byte in the middle of every pack of the DR copy.
fn damage_dr_packs(s3: &S3Server) -> usize {
    let mut damaged = 0;
    let mut stack = vec![s3.bucket_path("drc").join("stores").join(PD).join("packs")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.metadata().map(|m| m.len() > 64).unwrap_or(false) {
                let mut bytes = std::fs::read(&p).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x55;
                std::fs::write(&p, bytes).unwrap();
                damaged += 1;
            }
        }
    }
    damaged
}

#[test]
fn scheduled_drills_from_the_dr_s3_store_with_a_postgres_check_are_signed_and_judged() {
    let (src_sandbox, _source_db) = source_database();
    let s3 = S3Server::start();
    s3.create_bucket("drc");
    let mut c = Cluster::start(&[HostSpec {
        pd: PD,
        host: HOST,
        sources: policy_body(src_sandbox.root()),
    }]);
    dr_on_s3(&mut c, &s3);
    enroll_runner(&mut c);

    // Before any grant the drill falls due and fails, saying why.
    let no_grant = wait_drill(
        &c,
        "a drill refused for want of a grant",
        None,
        "failed",
        |r| r.contains("no drill grant"),
    );
    assert_eq!(no_grant["has_report"], false, "{no_grant}");

    // The Wali Data grants drills on their own machine.
    let wali = wali_token(&c);
    let out = c
        .api(&[
            "drill", "grant", "--pd", PD, "--runner", RUNNER, "--valid", "30d", "--json",
        ])
        .env("CADANG_TOKEN", &wali)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "drill grant: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let grant: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(grant["runner"], RUNNER);
    let too_long = c
        .api(&[
            "drill", "grant", "--pd", PD, "--runner", RUNNER, "--valid", "400d",
        ])
        .env("CADANG_TOKEN", &wali)
        .output()
        .unwrap();
    assert!(!too_long.status.success(), "a grant over a year is refused");
    let admin = c
        .api(&[
            "drill", "grant", "--pd", PD, "--runner", RUNNER, "--valid", "30d",
        ])
        .output()
        .unwrap();
    assert!(!admin.status.success(), "an admin is not the Wali Data");

    // A scheduled drill passes: restored from S3, verified, rows counted.
    let passed = wait_drill(&c, "a passed drill", None, "passed", |_| false);
    let id = passed["id"].as_str().unwrap().to_string();
    assert_eq!(passed["has_report"], true);
    assert_eq!(passed["runner"], RUNNER);

    let key = controller_key(&c);
    let json_file = report_file(&c, &id, "json");
    let pdf_file = report_file(&c, &id, "pdf");
    for f in [&json_file, &pdf_file] {
        let v = verify(f, &key);
        assert!(
            v.status.success(),
            "report verify {}: {}{}",
            f.display(),
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
    }
    let doc: Value = serde_json::from_slice(&std::fs::read(&json_file).unwrap()).unwrap();
    let body = &doc["body"];
    assert_eq!(body["verdict"]["passed"], true, "{body}");
    assert_eq!(body["site"], "drc");
    assert_eq!(body["source_host"], HOST);
    assert_eq!(body["check"]["kind"], "postgres-query");
    assert_eq!(body["check"]["got"], ROWS.to_string(), "{body}");
    assert!(body["verification"]["files_checked"].as_u64().unwrap() >= 1);
    assert_eq!(body["verification"]["mismatches"], json!([]));
    let actions: Vec<&str> = body["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"drill.grant"), "{actions:?}");

    // One changed byte in the JSON, or in the PDF, and verification fails.
    let text = std::fs::read_to_string(&json_file).unwrap();
    let changed = text.replacen("\"rto_seconds\":3600", "\"rto_seconds\":3601", 1);
    assert_ne!(changed, text);
    let bad_json = c.dir().join("changed.json");
    std::fs::write(&bad_json, changed).unwrap();
    assert!(
        !verify(&bad_json, &key).status.success(),
        "a changed JSON byte must fail"
    );
    let mut pdf = std::fs::read(&pdf_file).unwrap();
    let mid = pdf.len() / 2;
    pdf[mid] ^= 0x01;
    let bad_pdf = c.dir().join("changed.pdf");
    std::fs::write(&bad_pdf, pdf).unwrap();
    assert!(
        !verify(&bad_pdf, &key).status.success(),
        "a changed PDF byte must fail"
    );

    // The reports are in the PD's repository at both sites.
    let name = format!("{PD}-{id}.json");
    assert!(
        c.onsite(PD)
            .join("reports/drill-report")
            .join(&name)
            .exists(),
        "on-site copy of {name}"
    );
    let metrics = c.metrics();
    assert!(
        metrics.contains(&format!(
            "cadang_drill_last{{pd=\"{PD}\",result=\"passed\"}} 1"
        )),
        "{metrics}"
    );

    // An RTO too small for any drill (0 s; a drill counts at least 1 s):
    // reported failed over the objective.
    let policy = c.policy_file(PD);
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, text.replace("rto = \"1h\"", "rto = \"0s\"")).unwrap();
    c.signal_controller(libc::SIGHUP);
    let over = wait_drill(&c, "a drill over its RTO", Some(&id), "failed", |r| {
        r.contains("over the objective")
    });
    assert_eq!(over["has_report"], true);
    let over_id = over["id"].as_str().unwrap().to_string();
    assert!(
        metrics_failed(&c) >= 2,
        "cadang_drill_failed_total counts the failures"
    );

    // A damaged DR copy: reported failed with the reason. Backups stop
    // first (each new dump would bring fresh packs), and the DR copy gets
    // the newest snapshot before its packs are damaged.
    c.kill_agent(HOST);
    c.wait(
        Duration::from_secs(240),
        "the DR copy to hold the newest snapshot",
        |c| {
            let onsite: Vec<String> = c
                .snapshots_in(&c.onsite(PD))
                .iter()
                .filter_map(|s| s["id"].as_str().map(String::from))
                .collect();
            let dr = dr_snapshot_ids(&s3);
            onsite.iter().all(|id| dr.contains(id)).then_some(())
        },
    );
    assert!(damage_dr_packs(&s3) > 0, "the DR copy has packs to damage");
    let damaged = wait_drill(
        &c,
        "a drill against a damaged DR copy",
        Some(&over_id),
        "failed",
        |r| r.contains("DR copy is damaged"),
    );
    assert_eq!(damaged["has_report"], true, "{damaged}");

    // After the grant and the drills, the PD's identity is in neither the
    // controller's memory, nor its log, nor its state file.
    let (status, material) = c.call(
        &wali,
        "GET",
        &format!("/api/v1/pds/{PD}/drill-grant-material?runner={RUNNER}"),
        None,
    );
    assert_eq!(status, 200, "{material}");
    let identity = secrets::unwrap_identity(material["wrapped_identity"].as_str().unwrap());
    secrets::assert_controller_never_held(&mut c, &identity.encode());
}

/// Snapshot ids in the DR copy (keyless listing over S3).
fn dr_snapshot_ids(s3: &S3Server) -> Vec<String> {
    let mut cmd = cadang(&[
        "snapshots",
        "--repo",
        &s3.url("drc", &format!("stores/{PD}")),
        "--json",
    ]);
    cmd.envs(s3.env());
    let out = cmd.output().unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.as_array()
        .or_else(|| v["snapshots"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn metrics_failed(c: &Cluster) -> u64 {
    c.metrics()
        .lines()
        .filter(|l| l.starts_with(&format!("cadang_drill_failed_total{{pd=\"{PD}\"}}")))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}
