//! Ransomware early warning through the running system (issue 10), real
//! processes: a controller and an enrolled agent back up a PD file tree on
//! the scheduler (every minute, the real clock), a ransomware night is
//! flagged with reasons, retention run by the scheduler with a keep policy
//! of one snapshot keeps everything from before the flag at both sites, the
//! last clean snapshot restores byte-identical, an ordinary next day is not
//! flagged, and clearing the hold needs an operator and the PD's Wali Data.
//!
//! Takes several minutes (one backup per minute).

mod cluster;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cluster::{Cluster, HostSpec};
use serde_json::{json, Value};

use cadang_controller::audit::AuditLog;

const PD: &str = "DINKES";
const HOST: &str = "fs-dinkes";
const SOURCE: &str = "berkas";
const DIRS: [&str; 4] = ["keuangan", "kepegawaian", "surat", "laporan"];

/// A small PD file server: text documents in four directories.
fn make_tree(root: &Path) {
    for (d, dir) in DIRS.iter().enumerate() {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        for i in 0..15 {
            let line = format!("Dinas Kesehatan, {dir}, dokumen {i}, baris nomor {d}{i}\n");
            std::fs::write(
                root.join(dir).join(format!("dok-{i:02}.txt")),
                line.repeat(120),
            )
            .unwrap();
        }
    }
}

/// An ordinary working day: a few documents edited, one new.
fn ordinary_day(root: &Path, day: usize) {
    for i in 0..3 {
        let p = root
            .join(DIRS[(day + i) % 4])
            .join(format!("dok-{:02}.txt", 14 - i));
        if p.exists() {
            let mut text = std::fs::read_to_string(&p).unwrap();
            text.push_str(&format!("revisi hari {day}\n"));
            std::fs::write(&p, text).unwrap();
        }
    }
    std::fs::write(
        root.join(DIRS[day % 4]).join(format!("nota-{day}.txt")),
        format!("nota dinas hari {day}\n").repeat(40),
    )
    .unwrap();
}

/// The ransomware night: most documents replaced by random bytes under
/// `*.locked`, the originals gone, a ransom note in every directory.
fn ransomware_night(root: &Path) {
    let mut seed = 0x2024_0620_u64;
    for dir in DIRS {
        for i in 0..13 {
            let p = root.join(dir).join(format!("dok-{i:02}.txt"));
            let len = std::fs::metadata(&p).unwrap().len() as usize;
            let noise: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 24) as u8
                })
                .collect();
            std::fs::write(p.with_extension("txt.locked"), noise).unwrap();
            std::fs::remove_file(&p).unwrap();
        }
        std::fs::write(
            root.join(dir).join("HOW_TO_DECRYPT.txt"),
            "Your files are encrypted. Pay 5 BTC.\n",
        )
        .unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Relative path → content, for a byte-for-byte comparison.
fn contents(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().into(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()?.parse().ok()
}

/// Succeeded backups of the source with a snapshot, oldest first.
fn backups(c: &Cluster) -> Vec<Value> {
    let mut v: Vec<Value> = c
        .jobs()
        .into_iter()
        .filter(|j| {
            j["kind"] == "backup"
                && j["state"] == "finished"
                && j["outcome"] == "succeeded"
                && !j["snapshot"].is_null()
        })
        .collect();
    v.sort_by_key(|j| time(&j["started"]));
    v
}

/// Waits for a backup that started after `after`; its job.
fn next_backup(c: &Cluster, after: DateTime<Utc>, what: &str) -> Value {
    c.wait(Duration::from_secs(180), what, |c| {
        backups(c)
            .into_iter()
            .find(|j| time(&j["started"]).is_some_and(|t| t > after))
    })
}

fn anomalies(c: &Cluster, token: &str) -> Value {
    let out = cluster::ok(with_token(
        c.api(&["anomalies", "--pd", PD, "--json"]),
        token,
    ));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("anomalies --json: {e}\n{out}"))
}

fn source_entry(list: &Value) -> Value {
    list["sources"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["host"] == HOST && s["source"] == SOURCE)
        })
        .cloned()
        .unwrap_or_else(|| panic!("no anomaly entry for {HOST}/{SOURCE}: {list}"))
}

fn with_token(mut c: Command, token: &str) -> Command {
    c.env("CADANG_TOKEN", token);
    c
}

/// `POST` with the admin token (no CLI for these); the JSON answer.
fn admin_post(c: &Cluster, path: &str, body: Value) -> Value {
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
            &format!("{}{path}", c.url),
        ])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "POST {path} {body}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: {e}: {text}"))
}

/// Creates a user through the API; its API token.
fn create_user(c: &Cluster, body: Value) -> String {
    admin_post(c, "/api/v1/users", body)["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn clear(c: &Cluster, token: &str) -> std::process::Output {
    with_token(
        c.api(&[
            "anomalies",
            "clear",
            "--pd",
            PD,
            "--host",
            HOST,
            "--source",
            SOURCE,
            "--json",
        ]),
        token,
    )
    .output()
    .unwrap()
}

fn snapshot_ids(c: &Cluster, repo: &Path) -> Vec<String> {
    c.snapshots_in(repo)
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect()
}

fn set_retention_last(c: &Cluster, last: u32) {
    let path = c.dir().join("ctl/policies/regency.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "[defaults.all.retention]\nlast = 100",
        &format!("[defaults.all.retention]\nlast = {last}"),
    );
    assert!(text.contains(&format!("last = {last}")), "{text}");
    std::fs::write(&path, text).unwrap();
    // Through the API: the answer says the new set runs.
    let reloaded = admin_post(c, "/api/v1/policies/reload", json!({}));
    assert!(reloaded["fingerprint"].is_string(), "{reloaded}");
}

#[test]
fn a_ransomware_night_is_flagged_held_at_both_sites_restorable_and_cleared_by_two_people() {
    let files = tempfile::tempdir().unwrap();
    let tree = files.path().join("data");
    make_tree(&tree);
    let mut c = Cluster::start(&[HostSpec {
        pd: PD,
        host: HOST,
        sources: format!(
            "[[hosts.sources]]\nname = \"{SOURCE}\"\npaths = [\"{}\"]\n",
            tree.display()
        ),
    }]);
    let operator = create_user(
        &c,
        json!({"name": "operator-diskominfo", "nip": "199001152015031002", "role": "operator"}),
    );
    let custodian = create_user(
        &c,
        json!({"name": "wali-dinkes", "nip": "198111072008042001", "role": "custodian", "pds": [PD]}),
    );
    let other = create_user(
        &c,
        json!({"name": "wali-disdik", "nip": "198702202012122003", "role": "custodian", "pds": ["DISDIK"]}),
    );
    let auditor = create_user(&c, json!({"name": "inspektorat", "role": "auditor"}));

    // 1. The first backup (learning) and two ordinary days, on schedule.
    let first = next_backup(&c, DateTime::<Utc>::MIN_UTC, "the first scheduled backup");
    let mut last = first;
    for day in 1..=2 {
        ordinary_day(&tree, day);
        let changed = Utc::now();
        last = next_backup(&c, changed, "an ordinary day's backup");
    }
    let entry = source_entry(&anomalies(&c, &c.token));
    assert_eq!(
        entry["last_flagged"], false,
        "an ordinary day was flagged: {entry}"
    );
    assert_eq!(entry["last_snapshot"], last["snapshot"], "{entry}");

    // 2. The ransomware night.
    let clean_copy = files.path().join("clean-copy");
    copy_tree(&tree, &clean_copy);
    let attack_start = Utc::now();
    ransomware_night(&tree);
    let attacked_at = Utc::now();
    let night = next_backup(&c, attacked_at, "the ransomware night's backup");
    // Every backup before the attack saw the clean tree; the newest is the
    // one to restore.
    let before_attack: Vec<String> = backups(&c)
        .iter()
        .filter(|j| time(&j["started"]).is_some_and(|t| t < attack_start))
        .filter_map(|j| j["snapshot"].as_str().map(str::to_string))
        .collect();
    let clean_snapshot = before_attack.last().unwrap().clone();
    let flagged_snapshot = night["snapshot"].as_str().unwrap().to_string();
    let message = night["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("flagged: ransomware suspected"),
        "job message: {message}"
    );
    assert!(
        message.contains("dugaan serangan ransomware"),
        "job message: {message}"
    );
    let table = cluster::ok(c.api(&["jobs", "--pd", PD, "--kind", "backup"]));
    assert!(
        table.contains("flagged:"),
        "cadang jobs does not show the flag:\n{table}"
    );

    let entry = source_entry(&anomalies(&c, &c.token));
    assert_eq!(entry["last_flagged"], true, "{entry}");
    let flag = entry["flags"]
        .as_array()
        .and_then(|f| {
            f.iter()
                .find(|f| f["snapshot"] == flagged_snapshot.as_str())
        })
        .unwrap_or_else(|| panic!("the night is not among the flags: {entry}"))
        .clone();
    let kinds: Vec<&str> = flag["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    for want in ["known-extensions", "ransom-notes", "extension-changes"] {
        assert!(kinds.contains(&want), "reason {want} missing: {flag}");
    }
    assert!(
        flag["reasons"][0]["indonesian"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{flag}"
    );
    assert_eq!(entry["last_clean"], clean_snapshot.as_str(), "{entry}");
    assert_eq!(entry["hold"]["active"], true, "{entry}");
    let text = cluster::ok(c.api(&["anomalies", "--pd", PD]));
    assert!(
        text.contains("cadangan bersih terakhir") && text.contains("penahanan retensi"),
        "cadang anomalies:\n{text}"
    );
    let metrics = c.metrics();
    assert!(
        metrics.contains(&format!(
            "cadang_anomaly_hold_active{{pd=\"{PD}\",host=\"{HOST}\",source=\"{SOURCE}\"}} 1"
        )),
        "{metrics}"
    );

    // 3. An ordinary next day is not flagged (and the hold stays).
    ordinary_day(&tree, 3);
    let next_day = next_backup(&c, Utc::now(), "the ordinary day after the attack");
    let entry = c.wait(Duration::from_secs(30), "the next day's verdict", |c| {
        let e = source_entry(&anomalies(c, &c.token));
        (e["last_snapshot"] == next_day["snapshot"]).then_some(e)
    });
    assert_eq!(
        entry["last_flagged"], false,
        "the ordinary next day was flagged: {entry}"
    );
    assert_eq!(entry["hold"]["active"], true, "{entry}");

    // 4. Retention keeping one snapshot, run by the scheduler at both
    //    sites, keeps every snapshot from before the flag and the flagged one.
    let reload = Utc::now();
    set_retention_last(&c, 1);
    let mut held_at = Vec::new();
    for (site, repo) in [("onsite", c.onsite(PD)), ("dr", c.dr(PD))] {
        c.wait(Duration::from_secs(240), "retention under the hold", |c| {
            let done = c.jobs().into_iter().any(|j| {
                j["kind"] == "retention"
                    && j["site"] == site
                    && j["outcome"] == "succeeded"
                    && time(&j["created"]).is_some_and(|t| t > reload)
                    && j["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("retention hold"))
            });
            // The DR copy must hold the flagged night (replication keeps running).
            (done && snapshot_ids(c, &repo).contains(&flagged_snapshot)).then_some(())
        });
        let ids = snapshot_ids(&c, &repo);
        for s in before_attack.iter().chain([&flagged_snapshot]) {
            assert!(
                ids.contains(s),
                "{site}: held snapshot {s} was forgotten; left: {ids:?}\n{}",
                c.logs()
            );
        }
        held_at.push(ids.len());
    }

    // 5. The last clean snapshot restores byte-identical.
    let key = cadang_controller::report::load_signing_key(&c.dir().join("ctl/signing.key"))
        .unwrap()
        .public()
        .to_hex();
    let target = files.path().join("restored");
    cluster::ok(cluster::cadang(&[
        "restore",
        "--repo",
        &c.onsite(PD).display().to_string(),
        &clean_snapshot,
        "--target",
        &target.display().to_string(),
        "--trust-key",
        &key,
    ]));
    let restored = target.join(tree.strip_prefix("/").unwrap());
    assert!(
        contents(&restored) == contents(&clean_copy),
        "the last clean snapshot does not restore the tree as it was before the attack"
    );

    // 6. Clearing: refused for an auditor and another PD's custodian; the
    //    operator's agreement alone leaves the hold on; the Wali Data's ends it.
    for (who, token) in [("auditor", &auditor), ("other PD's custodian", &other)] {
        let out = clear(&c, token);
        assert!(!out.status.success(), "{who} could clear the hold");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("403"), "{who}: {err}");
    }
    let out = clear(&c, &operator);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["cleared"].clone(), v["waiting_for"].clone()),
        (json!(false), json!("custodian")),
        "{v}"
    );
    assert_eq!(
        source_entry(&anomalies(&c, &custodian))["hold"]["active"],
        true
    );
    let out = clear(&c, &custodian);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cleared"], true, "{v}");
    let entry = source_entry(&anomalies(&c, &c.token));
    assert_eq!(entry["hold"]["active"], false, "{entry}");
    assert_eq!(entry["hold"]["operator_agreed"], "operator-diskominfo");
    assert_eq!(entry["hold"]["custodian_agreed"], "wali-dinkes");

    // With the hold gone, retention follows the keep policy again.
    let cleared = Utc::now();
    c.wait(
        Duration::from_secs(240),
        "retention after the clearing",
        |c| {
            let ran = c.jobs().into_iter().any(|j| {
                j["kind"] == "retention"
                    && j["site"] == "onsite"
                    && j["outcome"] == "succeeded"
                    && time(&j["created"]).is_some_and(|t| t > cleared)
            });
            (ran && snapshot_ids(c, &c.onsite(PD)).len() < held_at[0]).then_some(())
        },
    );

    // 7. The audit log holds the flag and both halves of the clearing.
    c.signal_controller(libc::SIGTERM);
    c.wait_controller_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the controller did not stop\n{}", c.logs()));
    let actions = audit_actions(&c.dir().join("ctl/state.redb"));
    for (action, subject_part) in [
        ("anomaly.flag", HOST),
        ("hold.clear.request", HOST),
        ("hold.clear", HOST),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, s, _)| a == action && s.contains(subject_part)),
            "no {action} entry in the audit log: {actions:?}"
        );
    }
    let clear_actors: Vec<&String> = actions
        .iter()
        .filter(|(a, _, _)| a.starts_with("hold.clear"))
        .map(|(_, _, actor)| actor)
        .collect();
    assert_eq!(
        clear_actors,
        ["199001152015031002", "198111072008042001"],
        "{actions:?}"
    );
}

/// (action, subject, actor) of every audit entry in a stopped controller's state.
fn audit_actions(state: &Path) -> Vec<(String, String, String)> {
    let state = cadang_controller::state::State::open(state).expect("state opens");
    let log = cadang_controller::audit::RedbAuditLog::open(state).expect("audit log");
    log.entries(1, u64::MAX)
        .expect("entries")
        .into_iter()
        .map(|e| (e.action, e.subject, e.actor))
        .collect()
}
