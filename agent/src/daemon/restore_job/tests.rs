//! The agent's restore job against a real repository in a directory store:
//! refusals before anything is read, replay, in-place moves, DR fallback.

use std::sync::Arc;

use age::secrecy::ExposeSecret;
use cadang_core::config::ChunkerParams;
use cadang_proto::agent::{Outcome, StoreAccess};
use cadang_proto::restore::{EnvelopePayload, RestoreSite, RestoreWhat, ENVELOPE_FORMAT};
use chrono::{DateTime, Duration, Utc};

use super::{execute, RestoreEnv};
use crate::daemon::envelope;

struct World {
    dir: tempfile::TempDir,
    env: RestoreEnv,
    agent_key: age::x25519::Identity,
    identity: String,
    snapshot: String,
    source: std::path::PathBuf,
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A repository with one snapshot of `src/` (two files), an agent key.
async fn world() -> World {
    std::env::set_var("CADANG_SCRYPT_LOG_N", "10");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    std::fs::write(source.join("a.txt"), b"surat keputusan bupati").unwrap();
    std::fs::write(
        source.join("sub/b.bin"),
        crate::restore::testutil::noise(300_000, 7),
    )
    .unwrap();
    let store = dir.path().join("onsite");
    let backend = cadang_s3::open_store(&store.display().to_string(), None).unwrap();
    let out =
        cadang_core::Repository::init(backend, "DUKCAPIL", "srv-1", "pw", ChunkerParams::default())
            .await
            .unwrap();
    let identity = out.repo.unlock("pw").await.unwrap().encode();
    let summary = crate::backup(
        Arc::new(out.repo),
        out.credentials,
        crate::Source::Paths(vec![source.clone()]),
        crate::BackupOptions {
            host: "srv-1".into(),
            agent: "srv-1".into(),
            tags: vec![],
            excludes: vec![],
            cache_dir: None,
            workers: 2,
        },
        Arc::new(crate::Progress::default()),
    )
    .await
    .unwrap();
    let agent_key = age::x25519::Identity::generate();
    let own = dir.path().join("restore-identity.age.txt");
    std::fs::write(&own, format!("{}\n", agent_key.to_string().expose_secret())).unwrap();
    World {
        env: RestoreEnv {
            own_identity: own,
            used: dir.path().join("used-envelopes.json"),
            onsite: StoreAccess {
                url: store.display().to_string(),
                ..Default::default()
            },
            pd: "DUKCAPIL".into(),
            agent_id: "srv-1-abc".into(),
        },
        dir,
        agent_key,
        identity,
        snapshot: summary.snapshot.to_hex(),
        source,
    }
}

impl World {
    fn payload(&self, request: &str, target: &str) -> EnvelopePayload {
        EnvelopePayload {
            format: ENVELOPE_FORMAT.into(),
            version: 1,
            request_id: request.into(),
            pd: "DUKCAPIL".into(),
            agent_id: "srv-1-abc".into(),
            snapshot: self.snapshot.clone(),
            what: RestoreWhat::Whole,
            target: self.dir.path().join(target).display().to_string(),
            in_place: false,
            expires: now() + Duration::hours(1),
            trust_keys: vec![],
            identity: self.identity.clone(),
        }
    }
    fn seal(&self, p: &EnvelopePayload) -> String {
        envelope::seal(&self.agent_key.to_public().to_string(), p).unwrap()
    }
    fn restored(&self, target: &str, name: &str) -> std::path::PathBuf {
        let rel = self.source.strip_prefix("/").unwrap();
        self.dir.path().join(target).join(rel).join(name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_envelope_restores_and_verifies_once() {
    let w = world().await;
    let sealed = w.seal(&w.payload("rr-1", "out"));
    let end = execute(&w.env, "rr-1", &sealed, None, now()).await;
    assert_eq!(end.outcome, Outcome::Succeeded, "{}", end.message);
    assert_eq!(end.report.site, Some(RestoreSite::Onsite));
    assert_eq!(end.report.verified_files, 2);
    assert!(end.report.verify_failures.is_empty());
    assert_eq!(
        std::fs::read(w.restored("out", "a.txt")).unwrap(),
        b"surat keputusan bupati"
    );
    // The same envelope again: refused as a replay, nothing restored.
    let again = execute(&w.env, "rr-1", &sealed, None, now()).await;
    assert_eq!(again.outcome, Outcome::Failed);
    assert!(again.message.contains("already used"), "{}", again.message);
    assert!(end.report.envelope_used && !again.report.envelope_used);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_for_another_request_or_past_expiry_is_refused_before_use() {
    let w = world().await;
    let sealed = w.seal(&w.payload("rr-A", "out"));
    let wrong = execute(&w.env, "rr-B", &sealed, None, now()).await;
    assert_eq!(wrong.outcome, Outcome::Failed);
    assert!(wrong.message.contains("rr-A"), "{}", wrong.message);
    assert!(!w.dir.path().join("out").exists(), "nothing written");
    let late = execute(&w.env, "rr-A", &sealed, None, now() + Duration::hours(2)).await;
    assert!(late.message.contains("expired"), "{}", late.message);
    // Neither refusal used it up: the right job, in time, still runs.
    let ok = execute(&w.env, "rr-A", &sealed, None, now()).await;
    assert_eq!(ok.outcome, Outcome::Succeeded, "{}", ok.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_only_with_the_flag_and_then_old_files_are_moved_aside() {
    let w = world().await;
    let old = w.restored("out", "a.txt");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::write(&old, b"versi lama").unwrap();
    let refused = execute(
        &w.env,
        "rr-1",
        &w.seal(&w.payload("rr-1", "out")),
        None,
        now(),
    )
    .await;
    assert_eq!(refused.outcome, Outcome::Failed);
    assert!(
        refused.message.contains("restores in place"),
        "{}",
        refused.message
    );
    assert_eq!(std::fs::read(&old).unwrap(), b"versi lama");

    let mut p = w.payload("rr-2", "out");
    p.in_place = true;
    let end = execute(&w.env, "rr-2", &w.seal(&p), None, now()).await;
    assert_eq!(end.outcome, Outcome::Succeeded, "{}", end.message);
    assert_eq!(end.report.moved_aside_count, 1);
    assert_eq!(std::fs::read(&old).unwrap(), b"surat keputusan bupati");
    let aside = std::path::PathBuf::from(end.report.moved_aside.unwrap());
    let kept = aside
        .join(w.source.strip_prefix("/").unwrap())
        .join("a.txt");
    assert_eq!(std::fs::read(kept).unwrap(), b"versi lama");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_onsite_store_falls_back_to_the_dr_copy() {
    let mut w = world().await;
    let dr = StoreAccess {
        url: w.env.onsite.url.clone(),
        ..Default::default()
    };
    w.env.onsite.url = w.dir.path().join("gone").display().to_string();
    let end = execute(
        &w.env,
        "rr-1",
        &w.seal(&w.payload("rr-1", "out")),
        Some(&dr),
        now(),
    )
    .await;
    assert_eq!(end.outcome, Outcome::Succeeded, "{}", end.message);
    assert_eq!(end.report.site, Some(RestoreSite::Dr));
    assert!(end.report.onsite_error.is_some());
    assert_eq!(end.report.verified_files, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_is_piped_into_a_command() {
    let w = world().await;
    let mut p = w.payload("rr-1", "unused");
    // The "stream" here is a file of the path snapshot, addressed the
    // same way a dump stream is (its snapshot path).
    let stream = w.source.join("a.txt").display().to_string();
    let sink = w.dir.path().join("piped");
    p.what = RestoreWhat::Dump {
        stream,
        pipe: Some(format!("cat > {}", sink.display())),
    };
    let end = execute(&w.env, "rr-1", &w.seal(&p), None, now()).await;
    assert_eq!(end.outcome, Outcome::Succeeded, "{}", end.message);
    assert_eq!(end.report.pipe_status, Some(0));
    assert_eq!(std::fs::read(sink).unwrap(), b"surat keputusan bupati");
}
