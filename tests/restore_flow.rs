//! Custodian-approved restores end to end with real processes (issue 8):
//! a controller, an enrolled agent backing up every minute, an operator,
//! the PD's Wali Data and the Wali Data of another PD.
//!
//! - without an approval nothing runs; rejected, cancelled and expired
//!   requests cannot be approved;
//! - a custodian of another PD (and an operator) gets 403 on the approval
//!   material; an approval body holding an AGE-SECRET-KEY is refused;
//! - `cadang restore approve` restores and verifies every file;
//! - an envelope sealed for request A and posted for request E is refused
//!   by the agent (the replay of one envelope is the agent's unit test
//!   `restore_job::tests::an_approved_envelope_restores_and_verifies_once`);
//! - the controller's state file, its log and its process memory never hold
//!   the identity (text or raw bytes); the audit log has every step and its
//!   chain verifies;
//! - with the on-site S3 server stopped, an approved restore comes from the
//!   DR store and the report says so.

mod cluster;

use std::process::Command;
use std::time::Duration;

use cadang_agent::daemon::envelope;
use cadang_controller::audit::AuditLog;
use cadang_controller::proto::restore::{ApprovalMaterial, EnvelopePayload, ENVELOPE_FORMAT};
use cadang_core::keys::DataIdentity;
use cadang_testkit::S3Server;
use cluster::{cadang, ok, secrets, Cluster, HostSpec};
use serde_json::{json, Value};

const PD: &str = "DUKCAPIL";
const HOST: &str = "srv-dukcapil";
const WALI_NIP: &str = "198111072008042001";
const OTHER_NIP: &str = "197905152006041002";
const OPERATOR_NIP: &str = "199001012015031003";

fn start(files: &std::path::Path) -> Cluster {
    Cluster::start(&[HostSpec {
        pd: PD,
        host: HOST,
        sources: format!(
            "[[hosts.sources]]\nname = \"berkas\"\npaths = [\"{}\"]\n",
            files.display()
        ),
    }])
}

fn source_files() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("akta.txt"), "akta kelahiran\n".repeat(300)).unwrap();
    std::fs::create_dir_all(d.path().join("arsip")).unwrap();
    std::fs::write(d.path().join("arsip/kk.csv"), "nik,nama\n".repeat(2000)).unwrap();
    d
}

/// `curl` with a bearer token; (HTTP status, body).
fn call(c: &Cluster, token: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    c.call(token, method, path, body)
}

fn create_user(c: &Cluster, body: Value) -> String {
    let (status, v) = call(c, &c.token, "POST", "/api/v1/users", Some(&body));
    assert_eq!(status, 200, "creating {body}: {v}");
    v["token"].as_str().unwrap().to_string()
}

/// A `cadang` command against the controller as the holder of `token`.
fn as_user(c: &Cluster, token: &str, args: &[&str]) -> Command {
    let mut cmd = c.api(args);
    cmd.env("CADANG_TOKEN", token);
    cmd
}

fn file_request(c: &Cluster, operator: &str, target: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "restore",
        "request",
        "--pd",
        PD,
        "--agent",
        HOST,
        "--target",
        target,
        "--reason",
        "server rusak, pulihkan berkas",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = ok(as_user(c, operator, &args));
    serde_json::from_str(&out).unwrap()
}

fn show(c: &Cluster, token: &str, id: &str) -> Value {
    serde_json::from_str(&ok(as_user(c, token, &["restore", "show", id, "--json"]))).unwrap()
}

fn approve(c: &Cluster, token: &str, id: &str) -> std::process::Output {
    as_user(c, token, &["restore", "approve", id, "--yes", "--json"])
        .output()
        .unwrap()
}

fn wait_state(c: &Cluster, token: &str, id: &str, states: &[&str]) -> Value {
    c.wait(
        Duration::from_secs(120),
        &format!("request {id} to end"),
        |c| {
            let r = show(c, token, id);
            states
                .contains(&r["state"].as_str().unwrap_or(""))
                .then_some(r)
        },
    )
}

fn wait_snapshot(c: &Cluster) {
    c.wait(
        Duration::from_secs(150),
        "a snapshot in the catalogue",
        |c| {
            let out = c.api(&["snapshots", "--pd", PD, "--json"]).output().ok()?;
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            (!v["snapshots"].as_array()?.is_empty()).then_some(())
        },
    );
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The PD's identity, unwrapped the way the Wali Data's CLI does.
fn identity_of(material: &ApprovalMaterial) -> DataIdentity {
    secrets::unwrap_identity(&material.wrapped_identity)
}

fn controller_key(c: &Cluster) -> String {
    let secret = std::fs::read_to_string(c.dir().join("ctl/signing.key")).unwrap();
    cadang_core::keys::AgentKey::from_hex(secret.trim())
        .unwrap()
        .public()
        .to_hex()
}

#[test]
fn restores_run_only_with_the_custodians_envelope_and_every_step_is_audited() {
    let files = source_files();
    let mut c = start(files.path());
    let operator = create_user(
        &c,
        json!({"name": "op", "nip": OPERATOR_NIP, "role": "operator"}),
    );
    let wali = create_user(
        &c,
        json!({"name": "wali-dukcapil", "nip": WALI_NIP, "role": "custodian", "pds": [PD]}),
    );
    let other = create_user(
        &c,
        json!({"name": "wali-bappeda", "nip": OTHER_NIP, "role": "custodian", "pds": ["BAPPEDA"]}),
    );
    wait_snapshot(&c);
    let target = |n: &str| c.dir().join(format!("restore-{n}")).display().to_string();

    // Filed, not approved: nothing reaches the agent.
    let a = file_request(&c, &operator, &target("a"), &[]);
    let a_id = a["id"].as_str().unwrap().to_string();
    assert_eq!(a["state"], "pending");
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        !std::path::Path::new(&target("a")).exists(),
        "restored without approval"
    );
    assert!(c.jobs().iter().all(|j| j["kind"] != "restore"));

    // Only the PD's Wali Data may approve.
    let refused = approve(&c, &other, &a_id);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("403"), "{}", stderr(&refused));
    let (status, _) = call(
        &c,
        &operator,
        "GET",
        &format!("/api/v1/restores/{a_id}/approval-material"),
        None,
    );
    assert_eq!(status, 403);
    let (status, _) = call(&c, &other, "GET", &format!("/api/v1/restores/{a_id}"), None);
    assert_eq!(status, 403, "another PD's custodian may not even see it");

    // Rejected, cancelled and expired requests cannot be approved.
    let b = file_request(&c, &operator, &target("b"), &[]);
    let b_id = b["id"].as_str().unwrap();
    ok(as_user(
        &c,
        &wali,
        &[
            "restore",
            "reject",
            b_id,
            "--reason",
            "tidak perlu",
            "--json",
        ],
    ));
    let refused = approve(&c, &wali, b_id);
    assert!(
        !refused.status.success() && stderr(&refused).contains("rejected"),
        "{}",
        stderr(&refused)
    );
    let cc = file_request(&c, &operator, &target("c"), &[]);
    let c_id = cc["id"].as_str().unwrap();
    ok(as_user(
        &c,
        &operator,
        &["restore", "cancel", c_id, "--json"],
    ));
    let refused = approve(&c, &wali, c_id);
    assert!(
        !refused.status.success() && stderr(&refused).contains("cancelled"),
        "{}",
        stderr(&refused)
    );
    let d = file_request(&c, &operator, &target("d"), &["--expires", "1s"]);
    let d_id = d["id"].as_str().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(show(&c, &operator, d_id)["state"], "expired");
    let refused = approve(&c, &wali, d_id);
    assert!(
        !refused.status.success() && stderr(&refused).contains("expired"),
        "{}",
        stderr(&refused)
    );

    // An identity in the clear is refused and not stored.
    let e = file_request(&c, &operator, &target("e"), &[]);
    let e_id = e["id"].as_str().unwrap().to_string();
    let (_, m) = call(
        &c,
        &wali,
        "GET",
        &format!("/api/v1/restores/{e_id}/approval-material"),
        None,
    );
    let material: ApprovalMaterial = serde_json::from_value(m).unwrap();
    let identity = identity_of(&material);
    let secret_text = identity.encode();
    // A stand-in key: the real one must never reach the controller.
    let fake = format!("AGE-SECRET-KEY-1{}", "Q".repeat(58));
    let leak = json!({"envelope": format!("-----BEGIN AGE ENCRYPTED FILE-----\n{fake}\n")});
    let (status, v) = call(
        &c,
        &wali,
        "POST",
        &format!("/api/v1/restores/{e_id}/approve"),
        Some(&leak),
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("AGE-SECRET-KEY"));

    // The Wali Data approves A: restored and every file verified.
    let approved = approve(&c, &wali, &a_id);
    assert!(approved.status.success(), "{}", stderr(&approved));
    let done = wait_state(&c, &operator, &a_id, &["done", "failed"]);
    assert_eq!(done["state"], "done", "{done}\n{}", c.logs());
    assert_eq!(done["report"]["site"], "onsite");
    assert_eq!(done["report"]["verified_files"], 2);
    let rel = files.path().strip_prefix("/").unwrap();
    assert_eq!(
        std::fs::read(
            std::path::Path::new(&target("a"))
                .join(rel)
                .join("akta.txt")
        )
        .unwrap(),
        std::fs::read(files.path().join("akta.txt")).unwrap()
    );

    // An envelope sealed for A, posted as E's approval: the agent refuses it.
    let payload = EnvelopePayload {
        format: ENVELOPE_FORMAT.into(),
        version: 1,
        request_id: a_id.clone(),
        pd: PD.into(),
        agent_id: material.request.agent_id.clone(),
        snapshot: material.request.snapshot.clone(),
        what: material.request.what.clone(),
        target: target("e"),
        in_place: false,
        expires: material.request.expires,
        trust_keys: vec![material.controller_key.clone()],
        identity: secret_text.clone(),
    };
    let sealed = envelope::seal(&material.agent_recipient, &payload).unwrap();
    let (status, v) = call(
        &c,
        &wali,
        "POST",
        &format!("/api/v1/restores/{e_id}/approve"),
        Some(&json!({"envelope": sealed})),
    );
    assert_eq!(status, 200, "{v}");
    let refused = wait_state(&c, &operator, &e_id, &["done", "failed"]);
    assert_eq!(refused["state"], "failed");
    assert!(
        refused["message"].as_str().unwrap().contains(&a_id),
        "{refused}"
    );
    assert!(!std::path::Path::new(&target("e")).exists());

    // The identity is nowhere in the controller: memory, log, state.
    secrets::assert_controller_never_held(&mut c, &secret_text);

    // Every step is in the audit log, and its chain verifies.
    let copy = c.dir().join("state-copy.redb");
    std::fs::copy(c.dir().join("ctl/state.redb"), &copy).unwrap();
    ok(cadang(&[
        "audit",
        "verify",
        "--state",
        &copy.display().to_string(),
        "--key",
        &controller_key(&c),
    ]));
    let st = cadang_controller::state::State::open(&copy).unwrap();
    let entries = cadang_controller::audit::RedbAuditLog::open(st)
        .unwrap()
        .entries(1, u64::MAX)
        .unwrap();
    let actions: Vec<(String, String)> = entries
        .iter()
        .map(|e| (e.action.clone(), e.subject.clone()))
        .collect();
    for (action, subject) in [
        ("restore.request", a_id.as_str()),
        ("restore.material", a_id.as_str()),
        ("restore.approve", a_id.as_str()),
        ("envelope.deliver", a_id.as_str()),
        ("restore.done", a_id.as_str()),
        ("envelope.use", a_id.as_str()),
        ("restore.reject", b_id),
        ("restore.cancel", c_id),
        ("restore.expire", d_id),
        ("restore.failed", e_id.as_str()),
    ] {
        assert!(
            actions.iter().any(|(a, s)| a == action && s == subject),
            "no {action} for {subject} in the audit log: {actions:?}"
        );
    }
    let approve_entry = entries
        .iter()
        .find(|e| e.action == "restore.approve")
        .unwrap();
    assert_eq!(approve_entry.actor, WALI_NIP);
}

/// The cluster's on-site store moved to an S3 server: the repository is
/// copied there, the controller and the agent are pointed at it.
fn onsite_on_s3(c: &mut Cluster, s3: &S3Server) {
    c.kill_agent(HOST);
    let base = s3.url("onsite", "stores");
    let repo = s3.url("onsite", &format!("stores/{PD}"));
    let mut copy = cadang(&[
        "replicate",
        "--from",
        &c.onsite(PD).display().to_string(),
        "--to",
        &repo,
    ]);
    for (k, v) in s3.env() {
        copy.env(k, v);
    }
    ok(copy);
    let path = c.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let old = format!(
        "[stores.pusat-data]\nurl = \"{}\"\n",
        c.dir().join("onsite").display()
    );
    assert!(text.contains(&old), "{text}");
    let new = format!(
        "[stores.pusat-data]\nurl = \"{base}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        cadang_testkit::ACCESS_KEY,
        cadang_testkit::SECRET_KEY
    );
    std::fs::write(&path, text.replace(&old, &new)).unwrap();
    let store = json!({"url": repo, "access_key_id": cadang_testkit::ACCESS_KEY, "secret_access_key": cadang_testkit::SECRET_KEY});
    std::fs::write(c.agent_state(HOST).join("store.json"), store.to_string()).unwrap();
    c.kill_controller();
    c.start_controller();
    c.start_agent(HOST);
}

#[test]
fn with_the_onsite_s3_server_stopped_an_approved_restore_comes_from_the_dr_store() {
    let files = source_files();
    let mut c = start(files.path());
    let s3 = S3Server::start();
    s3.create_bucket("onsite");
    onsite_on_s3(&mut c, &s3);
    let operator = create_user(
        &c,
        json!({"name": "op", "nip": OPERATOR_NIP, "role": "operator"}),
    );
    let wali = create_user(
        &c,
        json!({"name": "wali-dukcapil", "nip": WALI_NIP, "role": "custodian", "pds": [PD]}),
    );
    // A backup to the S3 store, replicated to the DR directory.
    let snapshot = c.wait(
        Duration::from_secs(240),
        "a snapshot made on S3 at the DR site",
        |c| {
            if s3.count("PUT", "snapshots/") == 0 {
                return None;
            }
            let mut dr = c.snapshots_in(&c.dr(PD));
            dr.sort_by_key(|s| s["time"].as_str().unwrap_or("").to_string());
            dr.last().and_then(|s| s["id"].as_str().map(str::to_string))
        },
    );
    drop(s3);

    let target = c.dir().join("restore-dr").display().to_string();
    let r = file_request(&c, &operator, &target, &["--snapshot", &snapshot]);
    let id = r["id"].as_str().unwrap();
    let approved = approve(&c, &wali, id);
    assert!(approved.status.success(), "{}", stderr(&approved));
    let done = wait_state(&c, &operator, id, &["done", "failed"]);
    assert_eq!(done["state"], "done", "{done}\n{}", c.logs());
    assert_eq!(done["report"]["site"], "dr", "{done}");
    assert!(done["report"]["onsite_error"].is_string(), "{done}");
    assert_eq!(done["report"]["verified_files"], 2);
    let rel = files.path().strip_prefix("/").unwrap();
    assert_eq!(
        std::fs::read(std::path::Path::new(&target).join(rel).join("arsip/kk.csv")).unwrap(),
        std::fs::read(files.path().join("arsip/kk.csv")).unwrap()
    );
}
