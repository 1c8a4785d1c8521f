//! The audit log and the compliance summary with real processes: a
//! controller and an agent that backs up on schedule; `cadang report
//! compliance` from its state verifies with `cadang report verify`; after a
//! SIGTERM the log is in every store (directories and the S3 test server)
//! and `cadang audit verify` accepts it there and in a copy of the state,
//! and names the first bad entry of an edited, removed, reordered or
//! cut-off copy.

mod cluster;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use cadang_controller::audit::{AuditLog, RedbAuditLog};
use cadang_testkit::S3Server;
use cluster::{cadang, ok, HostSpec};
use serde_json::Value;

const PD: &str = "DUKCAPIL";

fn run(mut c: std::process::Command) -> Output {
    c.output().expect("cadang runs")
}

/// `cadang audit verify ARGS`: the exit code and stdout + stderr.
fn verify(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut c = cadang(&[&["audit", "verify"], args].concat());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = run(c);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn assert_invalid(result: (i32, String), seq: u64, words: &str) {
    let (code, text) = result;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("at entry {seq}:")) && text.contains(words),
        "expected entry {seq} / {words:?}: {text}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The segment file holding `seq`, and its JSON.
fn segment_with(dir: &Path, seq: u64) -> (PathBuf, Value) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "json") {
            let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            if v["first_seq"].as_u64().unwrap() <= seq && seq <= v["last_seq"].as_u64().unwrap() {
                return (path, v);
            }
        }
    }
    panic!("no segment holds entry {seq} in {}", dir.display());
}

fn edit_segment(dir: &Path, seq: u64, change: impl Fn(&mut Vec<Value>)) {
    let (path, mut v) = segment_with(dir, seq);
    let mut entries = v["entries"].as_array().unwrap().clone();
    change(&mut entries);
    v["entries"] = Value::Array(entries);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn index_of(entries: &[Value], seq: u64) -> usize {
    entries
        .iter()
        .position(|e| e["seq"].as_u64() == Some(seq))
        .unwrap()
}

#[test]
fn compliance_summary_and_audit_log_verify_from_stores_and_state_copies() {
    let s3 = S3Server::start();
    s3.create_bucket("audit");
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("akta.txt"), b"akta kelahiran").unwrap();
    let mut cluster = cluster::Cluster::start(&[HostSpec {
        pd: PD,
        host: "srv-dukcapil",
        sources: format!(
            "[[hosts.sources]]\nname = \"berkas\"\npaths = [\"{}\"]\n",
            data.path().display()
        ),
    }]);
    // A scheduled backup (every minute) succeeds.
    cluster.wait(Duration::from_secs(150), "a successful backup", |c| {
        c.jobs()
            .iter()
            .any(|j| j["kind"] == "backup" && j["outcome"] == "succeeded")
            .then_some(())
    });

    // The compliance summary from the controller's state.
    let out_dir = cluster.dir().join("laporan");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let made = ok(cluster.api(&[
        "report",
        "compliance",
        "--pd",
        PD,
        "--from",
        &today,
        "--to",
        &today,
        "--out",
        &out_dir.display().to_string(),
    ]));
    assert!(
        made.contains("published to store pusat-data") && made.contains("published to store drc"),
        "{made}"
    );
    let json_file = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let doc: Value = serde_json::from_slice(&std::fs::read(&json_file).unwrap()).unwrap();
    let figures = &doc["body"]["pds"][0];
    let succeeded = cluster
        .jobs()
        .iter()
        .filter(|j| j["kind"] == "backup" && j["outcome"] == "succeeded")
        .count() as u64;
    let done = figures["backups_done"].as_u64().unwrap();
    assert!(
        done >= 1 && done <= succeeded,
        "{figures} vs {succeeded} succeeded jobs"
    );
    assert!(
        done <= figures["backups_scheduled"].as_u64().unwrap(),
        "{figures}"
    );
    assert_eq!(
        (figures["rpo_met"].as_u64(), figures["rpo_checks"].as_u64()),
        (Some(1), Some(1)),
        "{figures}"
    );
    assert_eq!(figures["restores_requested"], 0);

    // Stop; add the S3 store; one more run of the controller ships the whole log there too.
    cluster.signal_controller(libc::SIGTERM);
    assert!(cluster
        .wait_controller_exit(Duration::from_secs(60))
        .is_some_and(|s| s.success()));
    let s3_url = s3.url("audit", "cadang");
    let mut config = std::fs::read_to_string(cluster.config_path()).unwrap();
    config.push_str(&format!(
        "\n[stores.s3-kopi]\nurl = \"{s3_url}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        cadang_testkit::ACCESS_KEY,
        cadang_testkit::SECRET_KEY
    ));
    std::fs::write(cluster.config_path(), config).unwrap();
    cluster.start_controller();
    cluster.signal_controller(libc::SIGTERM);
    assert!(cluster
        .wait_controller_exit(Duration::from_secs(60))
        .is_some_and(|s| s.success()));

    let onsite = cluster.dir().join("onsite");
    let dr = cluster.dir().join("dr");
    let key = std::fs::read_to_string(onsite.join("cadang-audit/controller-key.hex"))
        .unwrap()
        .trim()
        .to_string();
    // The report verifies against the controller's key, JSON and PDF.
    for file in [json_file.clone(), json_file.with_extension("pdf")] {
        ok(cadang(&[
            "report",
            "verify",
            &file.display().to_string(),
            "--key",
            &key,
        ]));
    }
    let published = onsite
        .join(PD)
        .join("reports/compliance-summary")
        .join(json_file.file_name().unwrap());
    assert_eq!(
        std::fs::read(&published).unwrap(),
        std::fs::read(&json_file).unwrap()
    );

    // The state copy: the last entry is the stop, under a checkpoint.
    let state_copy = cluster.dir().join("state-copy.redb");
    std::fs::copy(cluster.dir().join("ctl/state.redb"), &state_copy).unwrap();
    let last = {
        let state = cadang_controller::state::State::open(&state_copy).unwrap();
        let log = RedbAuditLog::open(state).unwrap();
        log.last().unwrap().unwrap()
    };
    assert_eq!(last.action, "controller.stop");
    let intact = format!("(last {} hash {})", last.seq, last.hash);
    let s3_env = s3.env();
    for args in [
        vec!["--store", onsite.to_str().unwrap(), "--key", &key],
        vec!["--store", dr.to_str().unwrap()],
        vec!["--store", &s3_url, "--key", &key],
        vec!["--state", state_copy.to_str().unwrap(), "--key", &key],
    ] {
        let (code, text) = verify(&args, &s3_env);
        assert_eq!(code, 0, "{args:?}: {text}");
        assert!(
            text.contains("intact") && text.contains(&intact),
            "{args:?}: {text}"
        );
    }
    let (_, text) = verify(&["--store", dr.to_str().unwrap()], &[]);
    assert!(text.contains("NOTE: no --key given"), "{text}");

    // A directory store's copy: an entry edited.
    let store_copy = cluster.dir().join("store-copy");
    copy_dir(
        &onsite.join("cadang-audit"),
        &store_copy.join("cadang-audit"),
    );
    edit_segment(&store_copy.join("cadang-audit"), 2, |es| {
        let i = index_of(es, 2);
        es[i]["outcome"] = Value::from("tampered");
    });
    assert_invalid(
        verify(
            &["--store", store_copy.to_str().unwrap(), "--key", &key],
            &[],
        ),
        2,
        "edited",
    );

    // The S3 copy: an entry removed from the object (rewritten through S3,
    // as someone with write access to the bucket would).
    remove_from_s3_segment(&s3_url, 3);
    assert_invalid(
        verify(&["--store", &s3_url, "--key", &key], &s3_env),
        3,
        "removed",
    );

    // State copies: reordered, and cut off the end.
    let damage_state =
        |name: &str, change: &dyn Fn(&mut Vec<cadang_controller::audit::AuditEntry>)| {
            let path = cluster.dir().join(name);
            std::fs::copy(&state_copy, &path).unwrap();
            let state = cadang_controller::state::State::open(&path).unwrap();
            let log = RedbAuditLog::open(state.clone()).unwrap();
            let mut entries = log.entries(1, u64::MAX).unwrap();
            change(&mut entries);
            state
                .write(|txn| {
                    let mut t = txn.open_table(cadang_controller::audit::store::AUDIT_ENTRIES)?;
                    for seq in 1..=last.seq {
                        t.remove(seq)?;
                    }
                    // Stored under their position: a reordering keeps its seqs.
                    for (i, e) in entries.iter().enumerate() {
                        t.insert(i as u64 + 1, serde_json::to_vec(e).unwrap().as_slice())?;
                    }
                    Ok(())
                })
                .unwrap();
            path
        };
    let reordered = damage_state("reordered.redb", &|es| es.swap(3, 4));
    assert_invalid(
        verify(
            &["--state", reordered.to_str().unwrap(), "--key", &key],
            &[],
        ),
        4,
        "reordered",
    );
    let cut = damage_state("cut.redb", &|es| es.truncate(es.len() - 2));
    assert_invalid(
        verify(&["--state", cut.to_str().unwrap(), "--key", &key], &[]),
        last.seq - 1,
        "cut off the end",
    );

    // A revocation on the stopped controller's state is in the log too.
    ok(cadang(&[
        "controller",
        "revoke",
        "--config",
        cluster.config_path().to_str().unwrap(),
        "srv-dukcapil",
    ]));
    let state =
        cadang_controller::state::State::open(&cluster.dir().join("ctl/state.redb")).unwrap();
    let log = RedbAuditLog::open(state).unwrap();
    let revoked = log.last().unwrap().unwrap();
    assert_eq!(
        (
            revoked.seq,
            revoked.action.as_str(),
            revoked.subject.as_str()
        ),
        (last.seq + 1, "agent.revoke", "srv-dukcapil")
    );
    assert!(revoked.actor.starts_with("cli:"), "{}", revoked.actor);
    assert_eq!(revoked.prev_hash, last.hash, "the entry extends the chain");
}

/// Removes entry `seq` from the S3 segment object that holds it.
fn remove_from_s3_segment(url: &str, seq: u64) {
    use cadang_core::backend::FileKind;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let creds = cadang_s3::StaticCredentials {
        access_key_id: cadang_testkit::ACCESS_KEY.into(),
        secret_access_key: cadang_testkit::SECRET_KEY.into(),
        session_token: None,
    };
    let store = cadang_s3::open_store(url, Some(creds)).unwrap();
    let kind = FileKind::Documents(cadang_controller::publish::AUDIT_DIR);
    rt.block_on(async {
        for f in store.list(kind).await.unwrap() {
            if !f.name.ends_with(".json") {
                continue;
            }
            let mut v: Value =
                serde_json::from_slice(&store.read(kind, &f.name).await.unwrap()).unwrap();
            let (first, last) = (
                v["first_seq"].as_u64().unwrap(),
                v["last_seq"].as_u64().unwrap(),
            );
            if first <= seq && seq <= last {
                let mut entries = v["entries"].as_array().unwrap().clone();
                let i = index_of(&entries, seq);
                entries.remove(i);
                v["entries"] = Value::Array(entries);
                store
                    .write(kind, &f.name, serde_json::to_vec_pretty(&v).unwrap())
                    .await
                    .unwrap();
                return;
            }
        }
        panic!("no S3 segment holds entry {seq}");
    });
}
