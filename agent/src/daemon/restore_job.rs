//! A custodian-approved restore on the agent (`JobKind::Restore`).
//!
//! Stages, each refusing with a sentence the operator can act on:
//!
//! 1. **open** the envelope with the agent's own age identity and
//!    **check** it names this request, this PD and this agent and has not
//!    expired (agent clock);
//! 2. **claim** it in the used-envelope ledger, durably, before anything
//!    is read: an envelope is used once, even if the agent dies mid-way;
//! 3. **open the store**: the on-site store from enrollment, or — when it
//!    cannot be reached — the DR copy whose read access came with the job;
//! 4. check the snapshot's signer (custodian key from the identity, plus
//!    the keys the custodian sealed in), then **restore**: files and paths
//!    under the target (in place only when the request says so, after
//!    moving what would be overwritten aside), or a dump stream as a file
//!    or piped into a command;
//! 5. **verify** every restored file against the snapshot (keyed chunk
//!    hashes), drop the identity, and report a [`RestoreReport`].

pub(crate) mod files;
mod used;

use std::path::{Path, PathBuf};
use std::time::Instant;

use age::secrecy::ExposeSecret;
use cadang_core::certify::TrustAnchors;
use cadang_core::keys::DataIdentity;
use cadang_core::repository::BlobReader;
use cadang_core::Repository;
use cadang_proto::agent::{JobReport, Outcome, ReportKind, StoreAccess};
use cadang_proto::restore::{EnvelopePayload, RestoreReport, RestoreSite, RestoreWhat};
use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::envelope::{self, Expected};
use super::ledger::{Admission, Work, WorkKind};
use super::run::{complete, lock, Daemon};
use super::{runner, DaemonError};
use crate::{browse, restore};

pub use used::{Replay, UsedEnvelopes};

/// What a restore needs from the agent, apart from the job.
pub struct RestoreEnv {
    /// `restore-identity.age.txt`: the agent's own key envelopes are sealed to.
    pub own_identity: PathBuf,
    /// The used-envelope ledger.
    pub used: PathBuf,
    /// The on-site store from enrollment.
    pub onsite: StoreAccess,
    pub pd: String,
    pub agent_id: String,
}

impl RestoreEnv {
    fn of(d: &Daemon) -> RestoreEnv {
        RestoreEnv {
            own_identity: d.paths.age_identity(),
            used: d.paths.0.join("used-envelopes.json"),
            onsite: d.env.store.clone(),
            pd: d.config.pd.clone(),
            agent_id: d.config.agent_id.clone(),
        }
    }
}

/// How a restore ended: the report's outcome, its message, the detail.
pub struct Finished {
    pub outcome: Outcome,
    pub message: String,
    pub report: RestoreReport,
}

/// Runs a dispatched restore job to its report (see the module comment).
pub(super) async fn restore_work(d: &Daemon, w: &Work) -> Result<(), DaemonError> {
    let WorkKind::Restore {
        request_id,
        envelope,
        dr_store,
    } = &w.kind
    else {
        return Ok(());
    };
    if *d.stop_jobs.borrow() {
        return Ok(());
    }
    match lock(&d.ledger).admit(w) {
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
    tracing::info!(request = %request_id, "restore job received");
    let env = RestoreEnv::of(d);
    let end = execute(&env, request_id, envelope, dr_store.as_ref(), started).await;
    let report = JobReport {
        report_id: runner::report_id(),
        job_id: w.job_id.clone(),
        kind: ReportKind::Restore {
            request_id: request_id.clone(),
            detail: serde_json::to_value(&end.report).ok(),
        },
        started,
        finished: d.clock.now(),
        outcome: end.outcome,
        message: end.message,
    };
    complete(d, w, report)
}

fn blank(request_id: &str) -> RestoreReport {
    RestoreReport {
        request_id: request_id.to_string(),
        snapshot: String::new(),
        envelope_used: false,
        site: None,
        onsite_error: None,
        files: 0,
        dirs: 0,
        bytes: 0,
        seconds: 0.0,
        verified_files: 0,
        verify_failures: Vec::new(),
        moved_aside: None,
        moved_aside_count: 0,
        pipe_status: None,
        errors: Vec::new(),
    }
}

/// Opens, checks and claims the envelope, then restores. Never panics on
/// a hostile envelope: every refusal is a failed report.
pub async fn execute(
    env: &RestoreEnv,
    request_id: &str,
    armored: &str,
    dr_store: Option<&StoreAccess>,
    now: DateTime<Utc>,
) -> Finished {
    let t = Instant::now();
    let mut report = blank(request_id);
    let result = match admit(env, request_id, armored, now) {
        Ok(opened) => {
            report.snapshot = opened.payload.snapshot.clone();
            report.envelope_used = true;
            let r = restore_with(env, &opened, dr_store, &mut report).await;
            // `opened` (and the identity's SecretString) is dropped here:
            // the identity is wiped as soon as the restore is over.
            drop(opened);
            r
        }
        Err(message) => Err(message),
    };
    report.seconds = t.elapsed().as_secs_f64();
    match result {
        Ok(()) if report.verify_failures.is_empty() && report.errors.is_empty() && report.pipe_status.is_none_or(|s| s == 0) => Finished {
            outcome: Outcome::Succeeded,
            message: format!(
                "restored {} file(s), {} bytes from the {} store; every file verified against the snapshot",
                report.files,
                report.bytes,
                report.site.map_or("?", |s| s.name())
            ),
            report,
        },
        Ok(()) => Finished {
            outcome: Outcome::Partial,
            message: problems_line(&report),
            report,
        },
        Err(message) => {
            tracing::warn!(request = %request_id, %message, "restore refused or failed");
            report.errors.push(message.clone());
            Finished {
                outcome: Outcome::Failed,
                message,
                report,
            }
        }
    }
}

fn problems_line(r: &RestoreReport) -> String {
    let mut parts = Vec::new();
    if !r.verify_failures.is_empty() {
        parts.push(format!(
            "{} file(s) differ from the snapshot (first: {})",
            r.verify_failures.len(),
            r.verify_failures[0]
        ));
    }
    if !r.errors.is_empty() {
        parts.push(format!(
            "{} entr(ies) not restored (first: {})",
            r.errors.len(),
            r.errors[0]
        ));
    }
    if let Some(s) = r.pipe_status.filter(|s| *s != 0) {
        parts.push(format!(
            "the command the dump is piped into exited with status {s}"
        ));
    }
    format!(
        "restore incomplete: {}; check the target before using it",
        parts.join("; ")
    )
}

/// Stages 1 and 2: open with the agent's key, check, claim.
fn admit(
    env: &RestoreEnv,
    request_id: &str,
    armored: &str,
    now: DateTime<Utc>,
) -> Result<envelope::Opened, String> {
    let own_text = Zeroizing::new(std::fs::read_to_string(&env.own_identity).map_err(|e| {
        format!(
            "cannot read this agent's restore key {} ({e}); enroll the agent again",
            env.own_identity.display()
        )
    })?);
    let own = envelope::own_identity(&own_text).map_err(|e| e.to_string())?;
    let opened = envelope::open(&own, armored).map_err(|e| e.to_string())?;
    drop(own);
    envelope::check(
        &opened.payload,
        &Expected {
            request_id,
            pd: &env.pd,
            agent_id: &env.agent_id,
            now,
        },
    )
    .map_err(|e| e.to_string())?;
    let mut used = UsedEnvelopes::open(&env.used).map_err(|e| e.to_string())?;
    used.claim(request_id, &envelope::fingerprint(armored), now)
        .map_err(|e| format!("cannot record the envelope's use ({e}); nothing was restored"))?
        .map_err(|replay| replay.message())?;
    Ok(opened)
}

/// Opens a store's repository; the error says which store and why.
async fn open_repo(store: &StoreAccess, which: &str) -> Result<Repository, String> {
    let creds = match (&store.access_key_id, &store.secret_access_key) {
        (Some(k), Some(s)) => Some(cadang_s3::StaticCredentials {
            access_key_id: k.clone(),
            secret_access_key: s.clone(),
            session_token: None,
        }),
        _ => None,
    };
    let backend = cadang_s3::open_store(&store.url, creds)
        .map_err(|e| format!("the {which} store {} cannot be opened: {e}", store.url))?;
    Repository::open(backend).await.map_err(|e| {
        format!(
            "the repository in the {which} store {} cannot be read: {e}",
            store.url
        )
    })
}

/// Stage 3: the on-site store, else the DR copy.
async fn pick_store(
    env: &RestoreEnv,
    dr: Option<&StoreAccess>,
    report: &mut RestoreReport,
) -> Result<Repository, String> {
    let onsite_error = match open_repo(&env.onsite, "on-site").await {
        Ok(repo) => {
            report.site = Some(RestoreSite::Onsite);
            return Ok(repo);
        }
        Err(e) => e,
    };
    tracing::warn!(error = %onsite_error, "the on-site store cannot be reached; trying the DR copy");
    report.onsite_error = Some(onsite_error.clone());
    let Some(dr) = dr else {
        return Err(format!(
            "{onsite_error}, and the job carried no DR store access; bring the on-site store back or have the controller's config name the DR store"
        ));
    };
    let repo = open_repo(dr, "DR")
        .await
        .map_err(|e| format!("{onsite_error}; {e}: neither copy can be read"))?;
    report.site = Some(RestoreSite::Dr);
    Ok(repo)
}

/// Stages 3 to 5 with the opened envelope.
async fn restore_with(
    env: &RestoreEnv,
    opened: &envelope::Opened,
    dr: Option<&StoreAccess>,
    report: &mut RestoreReport,
) -> Result<(), String> {
    let p = &opened.payload;
    let identity = DataIdentity::parse(opened.identity.expose_secret())
        .map_err(|e| format!("the envelope's identity cannot be used: {e}"))?;
    let repo = pick_store(env, dr, report).await?;
    repo.check_identity(&identity).map_err(|_| {
        format!(
            "the envelope's identity is not the one of the repository at {}: the approval was made for another PD's repository",
            repo.location()
        )
    })?;
    let snap = repo
        .find_snapshot(&p.snapshot)
        .await
        .map_err(|e| format!("snapshot {} cannot be found: {e}", p.snapshot))?;
    let mut trust = TrustAnchors::custodian(&identity);
    for k in &p.trust_keys {
        trust.add_hex(k).map_err(|e| e.to_string())?;
    }
    repo.verify_signer(&snap, &trust)
        .await
        .map_err(|e| format!("refusing to restore an unauthenticated snapshot: {e}"))?;
    let reader = BlobReader::new(&repo, &identity)
        .await
        .map_err(|e| format!("the repository's keys or index cannot be read: {e}"))?;
    match &p.what {
        RestoreWhat::Dump {
            stream,
            pipe: Some(cmd),
        } => pipe_dump(&reader, &snap, stream, cmd, report).await,
        _ => restore_tree(&reader, &snap, p, report).await,
    }
}

/// Whole snapshot, paths, or a dump stream as a file under the target.
async fn restore_tree(
    reader: &BlobReader<'_>,
    snap: &cadang_core::snapshot::Snapshot,
    p: &EnvelopePayload,
    report: &mut RestoreReport,
) -> Result<(), String> {
    let target = PathBuf::from(&p.target);
    let includes: Vec<Vec<u8>> = match &p.what {
        RestoreWhat::Whole => Vec::new(),
        RestoreWhat::Paths { paths } => paths.iter().map(|s| s.as_bytes().to_vec()).collect(),
        RestoreWhat::Dump { stream, .. } => {
            vec![format!("/{}", stream.trim_start_matches('/')).into_bytes()]
        }
    };
    let listing = browse::list(reader, snap)
        .await
        .map_err(|e| e.to_string())?;
    let entries: Vec<&browse::Entry> = listing
        .iter()
        .filter(|e| !e.path.is_empty() && files::covered(&e.path, &includes))
        .collect();
    prepare_target(&target, p, &entries, report)?;
    let opts = restore::RestoreOptions {
        target: target.clone(),
        include: includes,
        progress: None,
    };
    let summary = restore::restore(reader, snap, &opts)
        .await
        .map_err(|e| e.to_string())?;
    report.files = summary.files;
    report.dirs = summary.dirs;
    report.bytes = summary.bytes;
    report.errors.extend(summary.errors);
    let (ok, failures) = files::verify(reader, &target, &entries).await;
    report.verified_files = ok;
    report.verify_failures = failures;
    Ok(())
}

/// In place only with the flag (then move aside first); otherwise the
/// target must be missing or empty.
fn prepare_target(
    target: &Path,
    p: &EnvelopePayload,
    entries: &[&browse::Entry],
    report: &mut RestoreReport,
) -> Result<(), String> {
    if !p.in_place {
        if !files::target_is_fresh(target)? {
            return Err(format!(
                "the target {} is not empty and the request is not in place: nothing was written. File a new request that restores in place to write over existing files (they are moved aside first), or choose an empty directory",
                target.display()
            ));
        }
        return std::fs::create_dir_all(target)
            .map_err(|e| format!("cannot create the target {}: {e}", target.display()));
    }
    std::fs::create_dir_all(target)
        .map_err(|e| format!("cannot create the target {}: {e}", target.display()))?;
    let moved = files::move_aside(target, &p.request_id, entries)?;
    if moved > 0 {
        report.moved_aside = Some(
            files::aside_dir(target, &p.request_id)
                .display()
                .to_string(),
        );
        report.moved_aside_count = moved;
    }
    Ok(())
}

/// A dump stream piped into `sh -c CMD` on the agent; `dump` checks every
/// chunk against its id as it streams, so a completed dump is verified.
async fn pipe_dump(
    reader: &BlobReader<'_>,
    snap: &cadang_core::snapshot::Snapshot,
    stream: &str,
    cmd: &str,
    report: &mut RestoreReport,
) -> Result<(), String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("/bin/sh")
        .args(["-c", cmd])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        // Its messages go to the agent's log (journal); reading them here
        // while writing its input could deadlock on a full pipe.
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            format!("the command the dump is piped into ({cmd:?}) cannot be started: {e}")
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or("the command the dump is piped into has no standard input")?;
    let path = format!("/{}", stream.trim_start_matches('/'));
    let written = browse::dump(reader, snap, path.as_bytes(), &mut stdin).await;
    drop(stdin);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("waiting for the command the dump is piped into: {e}"))?;
    let bytes = written.map_err(|e| format!("streaming {path} into {cmd:?} failed: {e}"))?;
    report.files = 1;
    report.bytes = bytes;
    report.verified_files = 1;
    report.pipe_status = Some(out.status.code().unwrap_or(-1));
    if !out.status.success() {
        report.errors.push(format!(
            "the command the dump is piped into exited with {}; its messages are in the agent's log",
            out.status
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
