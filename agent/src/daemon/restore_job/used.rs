//! The used-envelope ledger (`STATE_DIR/used-envelopes.json`): every
//! envelope this agent has acted on, by request id and fingerprint. An
//! entry is written (fsynced) **before** the restore starts, so an envelope
//! is used at most once even when the agent dies mid-restore: a cut-off
//! restore needs a new approval, never a replay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::super::{fsutil, DaemonError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsedEnvelope {
    pub request_id: String,
    /// `envelope::fingerprint` of the armored text.
    pub fingerprint: String,
    pub used: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsedFile {
    /// Request id → its use. Never pruned: an envelope is small and its
    /// refusal must outlive any expiry an attacker could fake.
    used: BTreeMap<String, UsedEnvelope>,
}

pub struct UsedEnvelopes {
    path: PathBuf,
    file: UsedFile,
}

/// Why a claim was refused.
#[derive(Debug, PartialEq)]
pub enum Replay {
    /// This request's envelope was used before.
    Request(UsedEnvelope),
    /// The same envelope came back under another request id.
    Envelope(UsedEnvelope),
}

impl UsedEnvelopes {
    pub fn open(path: &Path) -> Result<UsedEnvelopes, DaemonError> {
        Ok(UsedEnvelopes {
            path: path.to_path_buf(),
            file: fsutil::read_json(path)?.unwrap_or_default(),
        })
    }

    /// Records the use of an envelope, durably, unless it (or its request)
    /// was used before.
    pub fn claim(
        &mut self,
        request_id: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Replay>, DaemonError> {
        if let Some(u) = self.file.used.get(request_id) {
            return Ok(Err(Replay::Request(u.clone())));
        }
        if let Some(u) = self
            .file
            .used
            .values()
            .find(|u| u.fingerprint == fingerprint)
        {
            return Ok(Err(Replay::Envelope(u.clone())));
        }
        self.file.used.insert(
            request_id.to_string(),
            UsedEnvelope {
                request_id: request_id.to_string(),
                fingerprint: fingerprint.to_string(),
                used: now,
            },
        );
        fsutil::write_json(&self.path, &self.file)?;
        Ok(Ok(()))
    }
}

impl Replay {
    /// The refusal for the job's report.
    pub fn message(&self) -> String {
        match self {
            Replay::Request(u) => format!(
                "the envelope of restore request {} was already used at {}: an envelope is good for one restore only (a restore that was cut off needs a new request and approval)",
                u.request_id, u.used
            ),
            Replay::Envelope(u) => format!(
                "this envelope was already used at {} for restore request {}: refused (a replayed envelope)",
                u.used, u.request_id
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_is_claimed_once_and_the_claim_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("used-envelopes.json");
        let now: DateTime<Utc> = "2026-12-03T00:00:00Z".parse().unwrap();
        let mut used = UsedEnvelopes::open(&path).unwrap();
        assert_eq!(used.claim("rr-1", "f1", now).unwrap(), Ok(()));
        assert!(matches!(
            used.claim("rr-1", "f2", now).unwrap(),
            Err(Replay::Request(_))
        ));
        let mut again = UsedEnvelopes::open(&path).unwrap();
        assert!(matches!(
            again.claim("rr-2", "f1", now).unwrap(),
            Err(Replay::Envelope(_))
        ));
        assert_eq!(again.claim("rr-2", "f2", now).unwrap(), Ok(()));
    }
}
