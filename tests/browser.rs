//! The console in headless Chromium (Debian's, driven by playwright-core
//! from npm), against a real controller and agents (`tests/cluster/`), in
//! both languages. The browser scripts are in `tests/browser/*.mjs`; this
//! file starts the processes, sets up the people and reads the scripts'
//! results.
//!
//! Needs `apt-get install chromium` and `npm ci` in `tests/browser`
//! (`.ci/run` does both); nothing is installed here. Screenshots go to the
//! test's directory, or to `docs/img/` with `CADANG_SCREENSHOTS=docs`.

mod cluster;
#[path = "browser/harness.rs"]
mod harness;

use std::time::Duration;

use cluster::{Cluster, HostSpec};
use harness::Person;
use serde_json::{json, Value};

const LANGS: [&str; 2] = ["id", "en"];

const WALI_DUKCAPIL: Person = Person {
    name: "wali.dukcapil",
    nip: Some("198111072008042001"),
    role: "custodian:DUKCAPIL",
    login: "wali.dukcapil",
};
const WALI_DISDIK: Person = Person {
    name: "wali.disdik",
    nip: Some("198702142012012003"),
    role: "custodian:DISDIK",
    login: "wali.disdik",
};
const OPERATOR: Person = Person {
    name: "operator@kab-uji.go.id",
    nip: Some("199001012015031002"),
    role: "operator",
    login: "operator",
};
const AUDITOR: Person = Person {
    name: "auditor@kab-uji.go.id",
    nip: None,
    role: "auditor",
    login: "auditor",
};

fn hosts(root: &std::path::Path) -> Vec<HostSpec> {
    ["DUKCAPIL", "DISDIK"]
        .into_iter()
        .map(|pd| {
            let files = root.join(format!("data-{pd}"));
            std::fs::create_dir_all(&files).unwrap();
            std::fs::write(files.join("penduduk.csv"), format!("nik,nama\n1,{pd}\n")).unwrap();
            std::fs::write(files.join("catatan.txt"), "arsip\n".repeat(200)).unwrap();
            HostSpec {
                pd: if pd == "DUKCAPIL" {
                    "DUKCAPIL"
                } else {
                    "DISDIK"
                },
                host: if pd == "DUKCAPIL" {
                    "fs-dukcapil"
                } else {
                    "fs-disdik"
                },
                sources: format!(
                    "[[hosts.sources]]\nname = \"berkas\"\npaths = [\"{}\"]\n",
                    files.display()
                ),
            }
        })
        .collect()
}

/// A regency of two PDs with one agent each, and its people.
fn regency(data: &tempfile::TempDir) -> Cluster {
    harness::require_tools();
    let c = Cluster::start(&hosts(data.path()));
    harness::add_people(&c, &[WALI_DUKCAPIL, WALI_DISDIK, OPERATOR, AUDITOR]);
    c
}

#[test]
fn sso_login_through_a_real_provider_in_both_languages() {
    let data = tempfile::tempdir().unwrap();
    let mut c = regency(&data);
    let redirect = format!("{}/console/sso/callback", c.url);
    let provider = harness::Provider::start(&redirect, &c.dir().join("oidc-provider.log"));
    harness::enable_sso(&mut c, &provider);
    for lang in LANGS {
        let settings = json!({
            "url": c.url,
            "lang": lang,
            "issuer": provider.issuer,
            "screenshots": harness::screenshot_dir(&c),
            "sso": {
                "custodian": {"login": "wali.dukcapil", "user": WALI_DUKCAPIL.name, "pd": "DUKCAPIL"},
                "auditor": {"login": "auditor", "user": AUDITOR.name},
                "operator": {"login": "operator.tanpa.nip"},
                "fileBody": file_body("DUKCAPIL", "fs-dukcapil", "/tmp/never"),
            },
        });
        let r = harness::run_script(&c, "sso.mjs", &settings);
        eprintln!("sso ({lang}): {r:#}");
        assert!(
            r["operator"]["refused"]
                .as_str()
                .unwrap_or_default()
                .contains("NIP"),
            "{r}"
        );
        // The auditor's export holds every SSO login so far, admitted or
        // refused: per language run two admitted (custodian, auditor)
        // before it reads, one refused (operator) after.
        let runs = if lang == "id" { 1 } else { 2 };
        assert_eq!(r["auditor"]["ssoLoginsOk"], json!(2 * runs), "{r}");
        assert_eq!(r["auditor"]["ssoLoginsRefused"], json!(runs - 1), "{r}");
    }
}

/// The restore filing body of the API (proto `FileRestore`).
fn file_body(pd: &str, agent: &str, target: &str) -> Value {
    json!({
        "pd": pd,
        "snapshot": "latest",
        "what": {"type": "whole"},
        "agent": agent,
        "target": target,
        "reason": "uji peramban / browser test",
    })
}

/// Waits until `pd` has a snapshot on the on-site store (asked for now).
fn first_snapshot(c: &Cluster, pd: &str, host: &str) {
    cluster::ok(c.api(&["backup-now", host]));
    c.wait(Duration::from_secs(120), "the first snapshot", |c| {
        (!c.snapshots_in(&c.onsite(pd)).is_empty()).then_some(())
    });
}

#[test]
fn custodian_approves_in_the_browser_and_the_agent_restores_in_both_languages() {
    let data = tempfile::tempdir().unwrap();
    let mut c = regency(&data);
    // People sign in through the provider (the password login is the
    // console's own test, controller/tests/console.rs).
    let redirect = format!("{}/console/sso/callback", c.url);
    let provider = harness::Provider::start(&redirect, &c.dir().join("oidc-provider.log"));
    harness::enable_sso(&mut c, &provider);
    first_snapshot(&c, "DUKCAPIL", "fs-dukcapil");
    first_snapshot(&c, "DISDIK", "fs-disdik");
    // A request of the other PD, which the Wali Data of DUKCAPIL must
    // neither see nor approve.
    let foreign = file_as_admin(&c, &file_body("DISDIK", "fs-disdik", "/tmp/never-restored"));
    for lang in LANGS {
        let target = c.dir().join(format!("restored-{lang}"));
        let settings = json!({
            "url": c.url,
            "lang": lang,
            "issuer": provider.issuer,
            "passphrase": harness::passphrase(),
            "screenshots": harness::screenshot_dir(&c),
            "people": {
                "operator": {"name": OPERATOR.name, "login": OPERATOR.login},
                "custodian": {"name": WALI_DUKCAPIL.name, "login": WALI_DUKCAPIL.login},
                "auditor": {"name": AUDITOR.name, "login": AUDITOR.login},
            },
            "restore": {
                "pd": "DUKCAPIL",
                "agent": "fs-dukcapil",
                "target": target,
                "reason": format!("uji peramban ({lang})"),
                "fileBody": file_body("DUKCAPIL", "fs-dukcapil", &target.display().to_string()),
            },
            "other": {"pd": "DISDIK", "request": foreign},
        });
        let r = harness::run_script(&c, "approval.mjs", &settings);
        eprintln!("approval ({lang}): {r:#}");
        assert_eq!(r["auditorPost"], json!(403), "{r}");
        // The agent really restored the PD's file, byte for byte.
        let restored = find_file(&target, "penduduk.csv")
            .unwrap_or_else(|| panic!("nothing restored under {}: {r}", target.display()));
        assert_eq!(
            std::fs::read_to_string(restored).unwrap(),
            "nik,nama\n1,DUKCAPIL\n"
        );
    }
}

/// Files a restore request with the admin's token; its id.
fn file_as_admin(c: &Cluster, body: &Value) -> String {
    let (ok, text) = harness::curl_json(c, "/api/v1/restores", body);
    assert!(ok, "filing as admin: {text}");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    v["id"]
        .as_str()
        .or(v["request"]["id"].as_str())
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find_file(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}
