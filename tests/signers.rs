//! Certified signers: an agent key someone added to `keys/` (anyone who can
//! write the store can) is refused, with the snapshots it signs, by `check`
//! and `restore`, naming the signer. Trust anchors come from outside the
//! store: the identity, the credential file, or `--trust-key`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use cadang_core::backend::LocalBackend;
use cadang_core::certify::Certifier;
use cadang_core::keys::{AgentKey, Credentials};
use cadang_core::Repository;
use common::*;
use serde_json::Value;

const EXIT_DAMAGE: i32 = 3;

/// How a rogue signer gets into `keys/`.
enum Rogue {
    /// A bare record, as `Repository::register_agent` writes it.
    Uncertified,
    /// A record "certified" by a key the attacker made up.
    SelfCertified,
    /// Certified by a controller key (a genuine enrollment).
    Controller([u8; 32]),
}

/// Adds an agent key to the store as `rogue` says and writes a credential
/// file for it (a copy of the genuine one with the new signing key).
/// Returns the credential file and the key's public hex.
fn add_signer(t: &TestRepo, name: &str, rogue: Rogue) -> (PathBuf, String) {
    let key = AgentKey::generate();
    let public = key.public();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let repo = Repository::open(Arc::new(LocalBackend::new(t.repo.clone())))
            .await
            .unwrap();
        match rogue {
            Rogue::Uncertified => repo.register_agent(name, &key).await.unwrap(),
            Rogue::SelfCertified => {
                let fake = Certifier::controller(&cadang_core::Id::random().0);
                repo.register_agent_certified(name, &public, &fake)
                    .await
                    .unwrap()
            }
            Rogue::Controller(seed) => repo
                .register_agent_certified(name, &public, &Certifier::controller(&seed))
                .await
                .unwrap(),
        }
    });
    let mut c: Value = serde_json::from_slice(&fs::read(&t.creds).unwrap()).unwrap();
    c["agent_name"] = name.into();
    c["agent_signing_key"] = key.to_hex().into();
    let path = t.path(&format!("{name}.credentials"));
    fs::write(&path, serde_json::to_vec(&c).unwrap()).unwrap();
    (path, public.to_hex())
}

/// Backs up `src` with the credential file `creds`; returns the snapshot id.
fn backup_with(t: &TestRepo, creds: &Path, src: &Path) -> String {
    let out = ok(&[
        "backup",
        "--repo",
        s(&t.repo),
        "--credentials",
        s(creds),
        "--cache-dir",
        s(&t.path("cache-rogue")),
        "--json",
        s(src),
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["snapshot"].as_str().unwrap().to_string()
}

fn source(t: &TestRepo) -> PathBuf {
    let src = t.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("surat.txt"), b"surat keputusan bupati").unwrap();
    src
}

fn custodian_key(t: &TestRepo) -> String {
    let c: Value = serde_json::from_slice(&fs::read(&t.creds).unwrap()).unwrap();
    c["custodian_key"]
        .as_str()
        .expect("repo init writes the custodian key into the credential file")
        .to_string()
}

fn restore(t: &TestRepo, snap: &str, extra: &[&str]) -> Output {
    let target = t.path(&format!("restore-{}", &snap[..8]));
    let mut args = vec![
        "restore",
        "--repo",
        s(&t.repo),
        snap,
        "--target",
        s(&target),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn check_json(t: &TestRepo, extra: &[&str]) -> (Output, Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = t.check(&args);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json prints JSON ({e})\n{}", text(&out)));
    (out, v)
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn uncertified_key_and_its_snapshot_are_refused_by_check_and_restore() {
    let t = TestRepo::new();
    let src = source(&t);
    let genuine = t.backup(&[&src], &[])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let clean = check_json(&t, &["--trust-key", &custodian_key(&t)]).0;
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));

    let (creds, rogue) = add_signer(&t, "penyusup", Rogue::Uncertified);
    let forged = backup_with(&t, &creds, &src);

    // Even without a trust anchor, a record with no certification is refused.
    for extra in [vec![], vec!["--trust-key", &custodian_key(&t)]] {
        let (out, v) = check_json(&t, &extra);
        assert_eq!(out.status.code(), Some(EXIT_DAMAGE), "{}", text(&out));
        let errors = strings(&v, "errors");
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&rogue) && e.contains("keys/")),
            "check {extra:?} must name the uncertified key {rogue}: {errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&forged[..8]) && e.contains(&rogue)),
            "check {extra:?} must name snapshot {forged} and its signer: {errors:?}"
        );
        assert!(
            !errors.iter().any(|e| e.contains(&genuine[..8])),
            "the genuine snapshot is fine: {errors:?}"
        );
    }

    let out = restore(&t, &forged, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&rogue) && err.contains("certif"),
        "restore must name the uncertified signer {rogue}\n{}",
        text(&out)
    );
    assert!(!t
        .path(&format!("restore-{}", &forged[..8]))
        .join("surat.txt")
        .exists());
    assert_eq!(restore(&t, &genuine, &[]).status.code(), Some(0));
}

#[test]
fn self_made_certification_is_refused_given_a_trust_anchor() {
    let t = TestRepo::new();
    let src = source(&t);
    let (creds, rogue) = add_signer(&t, "penyusup", Rogue::SelfCertified);
    let forged = backup_with(&t, &creds, &src);

    // Without an anchor a keyless check cannot tell: a warning, not a pass
    // in silence.
    let (out, v) = check_json(&t, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        strings(&v, "warnings")
            .iter()
            .any(|w| w.contains(&rogue) && w.contains("cannot verify")),
        "{v}"
    );
    // With the custodian's key from outside the store, by hand or from the
    // credential file, it is refused.
    let key = custodian_key(&t);
    for extra in [
        vec!["--trust-key", key.as_str()],
        vec!["--credentials", s(&t.creds)],
    ] {
        let (out, v) = check_json(&t, &extra);
        assert_eq!(
            out.status.code(),
            Some(EXIT_DAMAGE),
            "check {extra:?}\n{}",
            text(&out)
        );
        let errors = strings(&v, "errors");
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&forged[..8]) && e.contains(&rogue)),
            "check {extra:?} must name snapshot {forged} and signer {rogue}: {errors:?}"
        );
    }
    // --deep derives the anchor from the identity.
    let (out, _) = check_json(&t, &["--deep"]);
    assert_eq!(out.status.code(), Some(EXIT_DAMAGE), "{}", text(&out));
    let out = restore(&t, &forged, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&rogue),
        "{}",
        text(&out)
    );
}

#[test]
fn custodian_and_controller_certified_agents_are_accepted() {
    let t = TestRepo::new();
    let src = source(&t);
    // repo add-agent: certified by the custodian key derived from the identity.
    let added = t.path("added.credentials");
    ok(&[
        "repo",
        "add-agent",
        "--repo",
        s(&t.repo),
        "--agent-name",
        "srv-02",
        "--agent-credentials",
        s(&added),
    ]);
    let by_custodian = backup_with(&t, &added, &src);
    // The controller at enrollment.
    let seed = [42u8; 32];
    let controller = Certifier::controller(&seed).public_hex();
    let (creds, _) = add_signer(&t, "srv-03", Rogue::Controller(seed));
    let by_controller = backup_with(&t, &creds, &src);

    let key = custodian_key(&t);
    let (out, v) = check_json(&t, &["--trust-key", &key, "--trust-key", &controller]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(strings(&v, "warnings"), Vec::<String>::new(), "{v}");
    // Trusting only the custodian, the controller's certification is not enough.
    let (out, _) = check_json(&t, &["--trust-key", &key]);
    assert_eq!(out.status.code(), Some(EXIT_DAMAGE), "{}", text(&out));

    assert_eq!(restore(&t, &by_custodian, &[]).status.code(), Some(0));
    assert_eq!(restore(&t, &by_controller, &[]).status.code(), Some(1));
    let out = restore(&t, &by_controller, &["--trust-key", &controller]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Credential files written before certified signers have no custodian
/// key: they still parse (backups keep working) but anchor nothing.
#[test]
fn old_credential_files_still_parse() {
    let t = TestRepo::new();
    let mut c: Value = serde_json::from_slice(&fs::read(&t.creds).unwrap()).unwrap();
    c.as_object_mut().unwrap().remove("custodian_key");
    let old = serde_json::to_vec(&c).unwrap();
    let parsed = Credentials::from_json(&old).unwrap();
    assert_eq!(parsed.custodian_key, None);
    let path = t.path("old.credentials");
    fs::write(&path, &old).unwrap();
    let src = source(&t);
    backup_with(&t, &path, &src);
    let out = t.check(&["--credentials", s(&path)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--trust-key"),
        "{}",
        text(&out)
    );
}

/// A key enrolled before certification (or by a plain `register_agent`)
/// becomes valid once the custodian certifies it with `repo add-agent
/// --public-key`.
#[test]
fn custodian_certifies_an_existing_key() {
    let t = TestRepo::new();
    let src = source(&t);
    let (creds, key) = add_signer(&t, "srv-lama", Rogue::Uncertified);
    let snap = backup_with(&t, &creds, &src);
    assert_eq!(restore(&t, &snap, &[]).status.code(), Some(1));
    ok(&[
        "repo",
        "add-agent",
        "--repo",
        s(&t.repo),
        "--agent-name",
        "srv-lama",
        "--public-key",
        &key,
    ]);
    let out = restore(&t, &snap, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (out, _) = check_json(&t, &["--credentials", s(&t.creds)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
