//! Signers: every agent record must be certified, and every snapshot
//! signed by a certified agent, judged against trust anchors given from
//! outside the store (see `certify`).

use std::collections::BTreeSet;

use super::CheckReport;
use crate::certify::{SignerStatus, TrustAnchors};
use crate::error::Result;
use crate::repository::Repository;
use crate::snapshot::Snapshot;

pub(super) async fn check_signers(
    repo: &Repository,
    snapshots: &[Snapshot],
    trust: &TrustAnchors,
    r: &mut CheckReport,
) -> Result<()> {
    let signers = repo.signers(trust).await?;
    for (file, e) in &signers.unreadable {
        r.errors.push(format!("keys/{file} is unreadable: {e}"));
    }
    // Records first: a key someone added to the store is named even before
    // it signs anything.
    let mut unverifiable = BTreeSet::new();
    for key in signers.keys() {
        match signers.status(key) {
            SignerStatus::Certified { .. } => {}
            SignerStatus::Unverifiable { name, certifier } => {
                unverifiable.insert(format!(
                    "agent {name:?} (key {key}) is certified by {certifier}, which this check cannot verify: give it a trust anchor (the custodian's or the controller's public key, or the agent credentials)"
                ));
            }
            SignerStatus::Uncertified { reason } => r.errors.push(format!(
                "agent key {key} in keys/ is not a certified signer: {reason}"
            )),
        }
    }
    r.warnings.extend(unverifiable);
    for s in snapshots {
        if let SignerStatus::Uncertified { reason } = signers.status(&s.signer) {
            r.errors.push(format!(
                "snapshot {} is signed by {}, which is not a certified signer ({reason}); restore refuses it",
                s.id.short(),
                s.signer
            ));
        }
    }
    Ok(())
}
