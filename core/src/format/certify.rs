//! Certified signers: which agent keys may sign snapshots, decided by keys
//! held outside the store.
//!
//! `keys/agent-*.json` lives in the store, so whoever can write the store
//! (any agent of the PD, the store's operator) could add a record. A record
//! therefore counts only with a *certification*: an ed25519 signature over
//! [`statement`] (repository id, agent name, agent public key) by
//! * the **custodian signing key**, derived from the PD's data identity
//!   (`blake3::derive_key("cadang v1 custodian signing key", identity)`), so
//!   only whoever can unlock the identity (the Wali Data) can make one; or
//! * the **controller's key**, when the controller enrolls an agent.
//!
//! A verifier accepts a certification only from a key it was given from
//! outside the store — a [`TrustAnchors`] set: the custodian key derived from
//! the identity at restore time, the `custodian_key` of a credential file,
//! or a public key given on the command line / held in the controller's
//! state. The certifier key written in the record is a hint, never trusted.

use std::collections::HashMap;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::keys::{AgentPublicKey, DataIdentity};
use crate::repository::{AgentRecord, Repository};
use crate::snapshot::Snapshot;

const CUSTODIAN_CONTEXT: &str = "cadang v1 custodian signing key";

/// Who made a certification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertifierRole {
    Custodian,
    Controller,
}

/// The certification stored in an agent record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certification {
    pub by: CertifierRole,
    /// The certifier's public key (hex). A hint for messages: verifiers
    /// check the signature only against keys they trust already.
    pub certifier: String,
    /// ed25519 signature (hex) over [`statement`].
    pub signature: String,
}

/// The exact bytes a certification signs. The name is JSON-quoted and the
/// fixed-length key comes last, so no two (name, key) pairs share a text.
pub fn statement(repo_id: &Id, name: &str, public_key_hex: &str) -> Vec<u8> {
    format!(
        "cadang agent certification v1\nrepository {repo_id}\nagent {}\nkey {public_key_hex}\n",
        serde_json::to_string(name).expect("a string serialises")
    )
    .into_bytes()
}

/// A key that certifies agents: the custodian's (derived from the identity)
/// or the controller's.
pub struct Certifier {
    role: CertifierRole,
    key: SigningKey,
}

impl Certifier {
    /// The custodian signing key of the repository whose identity this is.
    pub fn custodian(identity: &DataIdentity) -> Certifier {
        let seed = blake3::derive_key(CUSTODIAN_CONTEXT, identity.encode().as_bytes());
        Certifier {
            role: CertifierRole::Custodian,
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// A controller's certifying key from its 32-byte ed25519 secret.
    pub fn controller(secret: &[u8; 32]) -> Certifier {
        Certifier {
            role: CertifierRole::Controller,
            key: SigningKey::from_bytes(secret),
        }
    }

    pub fn role(&self) -> CertifierRole {
        self.role
    }

    /// The public half (hex), to hand to verifiers as a trust anchor.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    pub fn certify(&self, repo_id: &Id, name: &str, key: &AgentPublicKey) -> Certification {
        let sig = self.key.sign(&statement(repo_id, name, &key.to_hex()));
        Certification {
            by: self.role,
            certifier: self.public_hex(),
            signature: hex::encode(sig.to_bytes()),
        }
    }
}

/// The keys a verifier trusts to certify agents, all from outside the store.
#[derive(Clone, Debug, Default)]
pub struct TrustAnchors {
    keys: Vec<VerifyingKey>,
}

impl TrustAnchors {
    /// Trusts the custodian key derived from `identity`.
    pub fn custodian(identity: &DataIdentity) -> TrustAnchors {
        let mut t = TrustAnchors::default();
        t.add_custodian(identity);
        t
    }

    pub fn add_custodian(&mut self, identity: &DataIdentity) {
        self.keys
            .push(Certifier::custodian(identity).key.verifying_key());
    }

    /// Adds a public key given as 64 hex digits (custodian or controller).
    pub fn add_hex(&mut self, hex_key: &str) -> Result<()> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut b).map_err(|_| {
            Error::Format(format!(
                "trust key {hex_key:?} is not 64 hex digits (an ed25519 public key)"
            ))
        })?;
        let key = VerifyingKey::from_bytes(&b).map_err(|_| {
            Error::Format(format!("trust key {hex_key} is not a valid ed25519 key"))
        })?;
        self.keys.push(key);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The trusted key that signed `c` over `msg`, if any.
    fn verifies(&self, msg: &[u8], c: &Certification) -> bool {
        let Ok(sig) = hex::decode(&c.signature) else {
            return false;
        };
        let Ok(sig) = <[u8; 64]>::try_from(sig.as_slice()) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        self.keys.iter().any(|k| k.verify_strict(msg, &sig).is_ok())
    }
}

/// What a verifier concludes about one signer key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerStatus {
    /// Certified by a trusted key.
    Certified { name: String, by: CertifierRole },
    /// Certified by a key this verifier was not given: it cannot tell (a
    /// keyless check without `--trust-key` or credentials).
    Unverifiable { name: String, certifier: String },
    /// Not certified by anything trusted: refused.
    Uncertified { reason: String },
}

/// The agent records of a repository, judged against trust anchors.
pub struct Signers {
    repo_id: Id,
    records: HashMap<String, AgentRecord>,
    anchors: TrustAnchors,
    /// Records that could not be read, with why (reported by `check`).
    pub unreadable: Vec<(String, String)>,
}

impl Signers {
    pub fn status(&self, signer_hex: &str) -> SignerStatus {
        let Some(rec) = self.records.get(signer_hex) else {
            return SignerStatus::Uncertified {
                reason: "no agent record in keys/ names it".into(),
            };
        };
        let Some(c) = &rec.certification else {
            return SignerStatus::Uncertified {
                reason: format!(
                    "its record for agent {:?} carries no certification",
                    rec.name
                ),
            };
        };
        let msg = statement(&self.repo_id, &rec.name, &rec.public_key);
        if self.anchors.verifies(&msg, c) {
            return SignerStatus::Certified {
                name: rec.name.clone(),
                by: c.by,
            };
        }
        if self.anchors.is_empty() {
            return SignerStatus::Unverifiable {
                name: rec.name.clone(),
                certifier: c.certifier.clone(),
            };
        }
        SignerStatus::Uncertified {
            reason: format!(
                "the certification of agent {:?} is not signed by any trusted key (it names certifier {})",
                rec.name, c.certifier
            ),
        }
    }

    /// Every record's public key (hex), sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut k: Vec<&str> = self.records.keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }
}

impl Repository {
    /// Writes an agent record certified by `certifier` (the custodian at
    /// `repo init` / `repo add-agent`, the controller at enrollment).
    /// Certifying an existing agent's key again replaces its record.
    pub async fn register_agent_certified(
        &self,
        name: &str,
        key: &AgentPublicKey,
        certifier: &Certifier,
    ) -> Result<()> {
        let c = certifier.certify(&self.config.id, name, key);
        self.write_agent_record(name, key, Some(c)).await
    }

    /// Reads every agent record; unreadable ones are kept apart, not fatal.
    pub async fn signers(&self, anchors: &TrustAnchors) -> Result<Signers> {
        let mut records = HashMap::new();
        let mut unreadable = Vec::new();
        for f in self.backend().list(FileKind::Keys).await? {
            if !(f.name.starts_with("agent-") && f.name.ends_with(".json")) {
                continue;
            }
            let data = self.backend().read(FileKind::Keys, &f.name).await?;
            match serde_json::from_slice::<AgentRecord>(&data) {
                Ok(rec) => {
                    records.insert(rec.public_key.clone(), rec);
                }
                Err(e) => unreadable.push((f.name, e.to_string())),
            }
        }
        Ok(Signers {
            repo_id: self.config.id,
            records,
            anchors: anchors.clone(),
            unreadable,
        })
    }

    /// Refuses a snapshot whose signer no trusted key certified. Restores
    /// call this before reading anything; with no anchors nothing passes.
    pub async fn verify_signer(&self, snapshot: &Snapshot, anchors: &TrustAnchors) -> Result<()> {
        match self.signers(anchors).await?.status(&snapshot.signer) {
            SignerStatus::Certified { .. } => Ok(()),
            SignerStatus::Unverifiable { certifier, .. } => Err(Error::UncertifiedSigner {
                snapshot: snapshot.id.short(),
                signer: snapshot.signer.clone(),
                reason: format!("no trust anchor was given to verify certifier {certifier}"),
            }),
            SignerStatus::Uncertified { reason } => Err(Error::UncertifiedSigner {
                snapshot: snapshot.id.short(),
                signer: snapshot.signer.clone(),
                reason,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::AgentKey;

    #[test]
    fn certifications_verify_only_under_trusted_keys_and_their_statement() {
        let identity = DataIdentity::generate();
        let custodian = Certifier::custodian(&identity);
        // Derived, not random: the same identity gives the same key.
        assert_eq!(
            custodian.public_hex(),
            Certifier::custodian(&identity).public_hex()
        );
        let repo = Id([5; 32]);
        let agent = AgentKey::generate().public();
        let c = custodian.certify(&repo, "srv-01", &agent);
        let msg = statement(&repo, "srv-01", &agent.to_hex());
        assert!(TrustAnchors::custodian(&identity).verifies(&msg, &c));
        assert!(!TrustAnchors::custodian(&DataIdentity::generate()).verifies(&msg, &c));
        assert!(!TrustAnchors::default().verifies(&msg, &c));
        // Another repository, name or key: a different statement.
        let anchors = TrustAnchors::custodian(&identity);
        assert!(!anchors.verifies(&statement(&Id([6; 32]), "srv-01", &agent.to_hex()), &c));
        assert!(!anchors.verifies(&statement(&repo, "srv-02", &agent.to_hex()), &c));
        let other = AgentKey::generate().public().to_hex();
        assert!(!anchors.verifies(&statement(&repo, "srv-01", &other), &c));

        let controller = Certifier::controller(&[7; 32]);
        let cc = controller.certify(&repo, "srv-01", &agent);
        assert_eq!(cc.by, CertifierRole::Controller);
        let mut t = TrustAnchors::default();
        t.add_hex(&controller.public_hex()).unwrap();
        assert!(t.verifies(&msg, &cc));
        assert!(t.add_hex("zz").is_err());
    }
}
