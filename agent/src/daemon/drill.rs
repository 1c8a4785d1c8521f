//! Restore drills on a drill runner (an agent at the DR site enrolled with
//! the drill-runner role, whose store access is the DR store, read-only).
//!
//! One drill, as a chain of stages: open the custodian's grant (scope
//! drill, this PD, this runner, not expired) → open the DR repository with
//! the identity from the grant → refuse the snapshot unless its signer is
//! certified by the custodian or a key the grant names → restore it into a fresh
//! sandbox → verify every restored file against the snapshot (re-hash each
//! chunk) → run the policy's check → remove the sandbox, wipe the identity,
//! report. The controller judges the RTO and RPO and signs the report; the
//! runner measures and says what it saw.

use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use cadang_core::certify::TrustAnchors;
use cadang_core::keys::DataIdentity;
use cadang_core::repository::BlobReader;
use cadang_core::Repository;
use cadang_proto::agent::{JobReport, Outcome, ReportKind, StoreAccess};
use cadang_proto::drill::{DrillFailure, DrillJob, DrillResult, GrantPayload};
use zeroize::Zeroizing;

mod check;
mod verify;

use super::ledger::{Admission, Work};
use super::run::{complete, lock, Daemon};
use super::sandbox::Sandbox;
use super::{runner, DaemonError};
use crate::restore;

/// The longest grant envelope accepted.
const MAX_GRANT_BYTES: usize = 64 * 1024;

// ----- the grant -----

/// Seals a drill grant to the runner's recipient (`age1...`), armored.
/// Runs on the custodian's machine (`cadang drill grant`).
pub fn seal_grant(recipient: &str, payload: &GrantPayload) -> Result<String, String> {
    let recipient = age::x25519::Recipient::from_str(recipient.trim())
        .map_err(|e| format!("the drill runner's recipient {recipient:?}: {e}"))?;
    let plain = Zeroizing::new(serde_json::to_vec(payload).map_err(|e| e.to_string())?);
    let enc = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let armor =
        ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(|e| e.to_string())?;
    let mut w = enc.wrap_output(armor).map_err(|e| e.to_string())?;
    w.write_all(&plain).map_err(|e| e.to_string())?;
    w.finish()
        .and_then(|a| a.finish())
        .map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// Opens a grant with the runner's own identity file and checks it allows
/// this drill. Every refusal is a sentence for the report.
pub fn open_grant(
    own_identity_text: &str,
    armored: &str,
    job: &DrillJob,
    runner_host: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<GrantPayload, String> {
    if armored.len() > MAX_GRANT_BYTES {
        return Err("the drill grant is larger than any drill grant can be; the custodian must grant drills again".into());
    }
    let own = super::envelope::own_identity(own_identity_text).map_err(|e| e.to_string())?;
    let reader = ArmoredReader::new(armored.as_bytes());
    let dec = age::Decryptor::new_buffered(std::io::BufReader::new(reader)).map_err(|e| {
        format!("the drill grant is not an armored age file ({e}); the custodian must grant again")
    })?;
    let mut r = dec
        .decrypt(std::iter::once(&own as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => "the drill grant was sealed to another key (another runner, or this runner enrolled again since); the custodian must grant drills to this runner again".to_string(),
            e => format!("the drill grant cannot be decrypted ({e}); the custodian must grant again"),
        })?;
    let mut plain = Zeroizing::new(Vec::new());
    r.read_to_end(&mut plain)
        .map_err(|e| format!("the drill grant cannot be decrypted ({e})"))?;
    let payload: GrantPayload = serde_json::from_slice(&plain)
        .map_err(|e| format!("the drill grant holds no valid payload ({e})"))?;
    payload
        .allows(&job.pd, runner_host, now)
        .map_err(|e| e.to_string())?;
    Ok(payload)
}

/// Overwrites the identity text before it is freed.
pub fn wipe(payload: &mut GrantPayload) {
    let secret = Zeroizing::new(std::mem::take(&mut payload.identity));
    drop(secret);
}

// ----- the job -----

/// Runs one drill job to its report (through the ledger, like a backup).
pub(super) async fn drill_work(d: &Daemon, w: &Work, job: &DrillJob) -> Result<(), DaemonError> {
    if *d.stop_jobs.borrow() {
        return Ok(());
    }
    let admission = lock(&d.ledger).admit(w);
    match admission {
        Admission::Resend(report) => {
            lock(&d.spool).append(*report)?;
            d.reports_ready.notify_one();
            return Ok(());
        }
        Admission::Duplicate => return Ok(()),
        Admission::Run => {}
    }
    lock(&d.ledger).begin(w)?;
    let started = d.clock.now();
    tracing::info!(drill = %job.drill_id, pd = %job.pd, snapshot = %job.snapshot, "drill started");
    let own = std::fs::read_to_string(d.paths.age_identity()).unwrap_or_default();
    let own = Zeroizing::new(own);
    let result = match open_grant(&own, &job.envelope, job, &d.config.host, started) {
        Ok(mut grant) => {
            let base = std::env::temp_dir();
            let r = run_drill(&d.env.store, &grant.identity, &grant.trust_keys, job, &base).await;
            wipe(&mut grant);
            r
        }
        Err(detail) => DrillResult {
            failure: Some(DrillFailure::Grant { detail }),
            ..Default::default()
        },
    };
    let report = drill_report(w, job, started, d.clock.now(), result);
    complete(d, w, report)
}

/// The job's report: failed when the runner saw a failure; the RTO and RPO
/// verdict is the controller's.
pub fn drill_report(
    w: &Work,
    job: &DrillJob,
    started: chrono::DateTime<chrono::Utc>,
    finished: chrono::DateTime<chrono::Utc>,
    result: DrillResult,
) -> JobReport {
    let (outcome, message) = summary(&result);
    JobReport {
        report_id: runner::report_id(),
        job_id: w.job_id.clone(),
        kind: ReportKind::Drill {
            drill_id: job.drill_id.clone(),
            result: Some(result),
        },
        started,
        finished,
        outcome,
        message,
    }
}

fn summary(r: &DrillResult) -> (Outcome, String) {
    if let Some(f) = &r.failure {
        let detail = match f {
            DrillFailure::Grant { detail } => format!("drill grant refused: {detail}"),
            DrillFailure::DrDamaged { detail } => format!("the DR copy is damaged: {detail}"),
            DrillFailure::RestoreFailed { detail } => format!("the restore failed: {detail}"),
        };
        return (Outcome::Failed, detail);
    }
    if !r.mismatches.is_empty() {
        return (
            Outcome::Failed,
            format!(
                "{} restored file(s) differ from the snapshot",
                r.mismatches.len()
            ),
        );
    }
    if r.check.as_ref().is_some_and(|c| !c.passed) {
        return (Outcome::Failed, "the drill's check failed".into());
    }
    (
        Outcome::Succeeded,
        format!(
            "{} files restored and verified in {} s",
            r.files,
            r.total_seconds()
        ),
    )
}

/// Restore, verify and check in a fresh sandbox under `base`, which is
/// removed before returning (also on failure).
pub async fn run_drill(
    store: &StoreAccess,
    identity_text: &str,
    trust_keys: &[String],
    job: &DrillJob,
    base: &Path,
) -> DrillResult {
    let mut result = DrillResult::default();
    let sandbox = match Sandbox::create(base, &job.drill_id) {
        Ok(s) => s,
        Err(e) => {
            return failed(
                result,
                DrillFailure::RestoreFailed {
                    detail: e.to_string(),
                },
            )
        }
    };
    let outcome =
        restore_verify_check(store, identity_text, trust_keys, job, &sandbox, &mut result).await;
    if let Err(e) = sandbox.remove() {
        tracing::warn!(error = %e, "the drill sandbox could not be removed completely");
    }
    match outcome {
        Ok(()) => result,
        Err(f) => failed(result, f),
    }
}

fn failed(mut r: DrillResult, f: DrillFailure) -> DrillResult {
    r.failure = Some(f);
    r
}

async fn restore_verify_check(
    store: &StoreAccess,
    identity_text: &str,
    trust_keys: &[String],
    job: &DrillJob,
    sandbox: &Sandbox,
    result: &mut DrillResult,
) -> Result<(), DrillFailure> {
    let damaged = |e: String| DrillFailure::DrDamaged { detail: e };
    let identity = DataIdentity::parse(identity_text).map_err(|e| DrillFailure::Grant {
        detail: format!("the grant holds no usable identity: {e}"),
    })?;
    let repo = open_dr(store).await?;
    let snap = repo.find_snapshot(&job.snapshot).await.map_err(|e| {
        damaged(format!(
            "snapshot {} cannot be read at the DR site: {e}",
            job.snapshot
        ))
    })?;
    verify_signer(&repo, &snap, &identity, trust_keys).await?;
    let reader = BlobReader::new(&repo, &identity).await.map_err(|e| {
        damaged(format!(
            "the DR repository's index or keys cannot be read: {e}"
        ))
    })?;

    let t = Instant::now();
    let opts = restore::RestoreOptions {
        target: sandbox.restore_dir(),
        include: Vec::new(),
        progress: None,
    };
    let summary = restore::restore(&reader, &snap, &opts)
        .await
        .map_err(|e| restore_failure(&e))?;
    result.restore_millis = t.elapsed().as_millis() as u64;
    result.files = summary.files;
    result.bytes = summary.bytes;
    if !summary.errors.is_empty() {
        let first: Vec<&str> = summary.errors.iter().take(3).map(String::as_str).collect();
        return Err(damaged(format!(
            "{} entries could not be restored, e.g. {}",
            summary.errors.len(),
            first.join("; ")
        )));
    }

    let t = Instant::now();
    let files = verify::verify(&reader, &snap, &sandbox.restore_dir(), result).await?;
    result.verify_millis = t.elapsed().as_millis() as u64;

    if let Some(check) = &job.check {
        let t = Instant::now();
        let (dir, check) = (sandbox.restore_dir(), check.clone());
        let root = sandbox.root().to_path_buf();
        let outcome =
            tokio::task::spawn_blocking(move || check::run_check(&check, &root, &dir, &files))
                .await
                .map_err(|e| DrillFailure::RestoreFailed {
                    detail: format!("the check stopped: {e}"),
                })?;
        result.check_millis = t.elapsed().as_millis() as u64;
        result.check = Some(outcome);
    }
    Ok(())
}

fn restore_failure(e: &restore::RestoreError) -> DrillFailure {
    use restore::RestoreError as E;
    match e {
        E::Repository(_) | E::DamagedPack { .. } | E::DamagedFile { .. } | E::Tree { .. } => {
            DrillFailure::DrDamaged {
                detail: e.to_string(),
            }
        }
        _ => DrillFailure::RestoreFailed {
            detail: e.to_string(),
        },
    }
}

/// A snapshot counts only if its signer is certified by the custodian's
/// key or a key the grant names: whoever can write the DR store could
/// otherwise add a key and have a forged snapshot pass the drill.
async fn verify_signer(
    repo: &Repository,
    snap: &cadang_core::snapshot::Snapshot,
    identity: &DataIdentity,
    trust_keys: &[String],
) -> Result<(), DrillFailure> {
    let mut trust = TrustAnchors::custodian(identity);
    for k in trust_keys {
        trust.add_hex(k).map_err(|e| DrillFailure::Grant {
            detail: format!("the grant names a trust key that cannot be used: {e}"),
        })?;
    }
    repo.verify_signer(snap, &trust)
        .await
        .map_err(|e| DrillFailure::DrDamaged {
            detail: format!(
                "refusing to restore an unauthenticated snapshot from the DR site: {e}"
            ),
        })
}

/// Opens the PD's repository in the DR store with the runner's read-only
/// access from enrollment.
async fn open_dr(store: &StoreAccess) -> Result<Repository, DrillFailure> {
    let creds = match (&store.access_key_id, &store.secret_access_key) {
        (Some(k), Some(s)) => Some(cadang_s3::StaticCredentials {
            access_key_id: k.clone(),
            secret_access_key: s.clone(),
            session_token: None,
        }),
        _ => None,
    };
    let backend =
        cadang_s3::open_store(&store.url, creds).map_err(|e| DrillFailure::RestoreFailed {
            detail: format!("cannot open the DR store {}: {e}", store.url),
        })?;
    Repository::open(backend)
        .await
        .map_err(|e| DrillFailure::DrDamaged {
            detail: format!(
                "the repository in the DR store {} cannot be opened: {e}",
                store.url
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadang_proto::drill::DRILL_SCOPE;

    fn job() -> DrillJob {
        DrillJob {
            drill_id: "d1".into(),
            pd: "DUKCAPIL".into(),
            envelope: String::new(),
            snapshot: "ab".into(),
            snapshot_time: chrono::Utc::now(),
            store: "drc".into(),
            check: None,
            rto_seconds: 60,
        }
    }

    fn grant(runner: &str, not_after: chrono::DateTime<chrono::Utc>) -> GrantPayload {
        GrantPayload {
            pd: "DUKCAPIL".into(),
            runner: runner.into(),
            scope: DRILL_SCOPE.into(),
            not_after,
            identity: "AGE-SECRET-KEY-1X".into(),
            trust_keys: vec![],
        }
    }

    #[test]
    fn a_grant_opens_only_for_its_runner_and_period() {
        let own = age::x25519::Identity::generate();
        let own_text = age::secrecy::ExposeSecret::expose_secret(&own.to_string()).to_string();
        let now = chrono::Utc::now();
        let sealed = seal_grant(
            &own.to_public().to_string(),
            &grant("drc", now + chrono::Duration::days(1)),
        )
        .unwrap();
        assert!(sealed.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!sealed.contains("AGE-SECRET-KEY"));
        let opened = open_grant(&own_text, &sealed, &job(), "drc", now).unwrap();
        assert_eq!(opened.identity, "AGE-SECRET-KEY-1X");
        let other = open_grant(&own_text, &sealed, &job(), "other-runner", now).unwrap_err();
        assert!(other.contains("runner"), "{other}");
        let late = open_grant(
            &own_text,
            &sealed,
            &job(),
            "drc",
            now + chrono::Duration::days(2),
        )
        .unwrap_err();
        assert!(late.contains("expired"), "{late}");
        let stranger = age::x25519::Identity::generate();
        let stranger_text =
            age::secrecy::ExposeSecret::expose_secret(&stranger.to_string()).to_string();
        let wrong = open_grant(&stranger_text, &sealed, &job(), "drc", now).unwrap_err();
        assert!(wrong.contains("another key"), "{wrong}");
    }

    /// bench/drill.sh: a drill's restore + verification from the store in
    /// `CADANG_BENCH_STORE` (identity file `CADANG_BENCH_IDENTITY`), into a
    /// sandbox under `CADANG_BENCH_TMP`; prints the stage times as JSON.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark: run by bench/drill.sh"]
    async fn bench_drill_restore() {
        let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("set {k}"));
        let store = StoreAccess {
            url: var("CADANG_BENCH_STORE"),
            access_key_id: std::env::var("AWS_ACCESS_KEY_ID").ok(),
            secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").ok(),
        };
        let identity = std::fs::read_to_string(var("CADANG_BENCH_IDENTITY")).unwrap();
        let job = DrillJob {
            snapshot: "latest".into(),
            ..job()
        };
        let base = std::path::PathBuf::from(var("CADANG_BENCH_TMP"));
        // What `cadang restore` does (src/cmd/read.rs), timed the same way:
        // open, find the snapshot, read the index, restore.
        let plain = Instant::now();
        let repo = open_dr(&store).await.unwrap();
        let snap = repo.find_snapshot("latest").await.unwrap();
        let data_identity = DataIdentity::parse(&identity).unwrap();
        let reader = BlobReader::new(&repo, &data_identity).await.unwrap();
        let target = base.join("plain-restore");
        let opts = restore::RestoreOptions {
            target: target.clone(),
            include: Vec::new(),
            progress: None,
        };
        restore::restore(&reader, &snap, &opts).await.unwrap();
        let plain_seconds = plain.elapsed().as_secs_f64();
        std::fs::remove_dir_all(&target).unwrap();
        drop(reader);
        let started = Instant::now();
        let r = run_drill(&store, &identity, &[], &job, &base).await;
        assert_eq!(r.failure, None, "{r:?}");
        assert!(r.mismatches.is_empty());
        println!(
            "{}",
            serde_json::json!({
                "files": r.files,
                "bytes": r.bytes,
                "restore_seconds": r.restore_millis as f64 / 1000.0,
                "verify_seconds": r.verify_millis as f64 / 1000.0,
                "total_seconds": started.elapsed().as_secs_f64(),
                "plain_restore_seconds": plain_seconds,
            })
        );
    }

    /// The drill trusts the signer through the custodian's key alone when
    /// the grant names none; a store operator who strips the signer's
    /// certification (or adds a key of their own) fails the drill.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_drill_refuses_a_snapshot_whose_signer_no_anchor_certifies() {
        let mut craft = crate::restore::testutil::Craft::new().await;
        let f = craft.file(b"laporan.txt", b"isi laporan", 0o644);
        let snap = craft.commit(vec![f], &["/"]).await;
        let store = StoreAccess {
            url: craft.path("repo").display().to_string(),
            access_key_id: None,
            secret_access_key: None,
        };
        let identity = craft.identity.encode();
        let job = DrillJob {
            snapshot: snap.id.to_hex(),
            ..job()
        };
        let base = craft.path("sandboxes");
        std::fs::create_dir_all(&base).unwrap();
        let genuine = run_drill(&store, &identity, &[], &job, &base).await;
        assert_eq!(genuine.failure, None, "{genuine:?}");
        assert_eq!(genuine.files, 1);

        for e in std::fs::read_dir(craft.path("repo").join("keys")).unwrap() {
            let path = e.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("agent-")
            {
                continue;
            }
            let mut rec: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            rec.as_object_mut()
                .unwrap()
                .remove("certification")
                .unwrap();
            std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
        }
        let forged = run_drill(&store, &identity, &[], &job, &base).await;
        match &forged.failure {
            Some(DrillFailure::DrDamaged { detail }) => {
                assert!(detail.contains("unauthenticated snapshot"), "{detail}");
                assert!(detail.contains("no trusted key certified"), "{detail}");
            }
            other => panic!("the uncertified signer was not refused: {other:?}"),
        }
        assert_eq!(forged.files, 0, "nothing may be restored: {forged:?}");
    }
}
