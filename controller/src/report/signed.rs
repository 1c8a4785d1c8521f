//! The signed document: a report body and the controller's ed25519
//! signature over its canonical form (see `docs/format.md`, "Reports").

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::canonical::to_canonical;
use super::drill::DrillReport;
use super::summary::ComplianceSummary;
use super::{PublicKey, ReportError, Result, SigningKey};

pub const DOCUMENT_FORMAT: &str = "cadang-signed-document";
pub const DOCUMENT_VERSION: u32 = 1;
/// `kind` of a drill report.
pub const KIND_DRILL: &str = "drill-report";
/// `kind` of a compliance summary.
pub const KIND_SUMMARY: &str = "compliance-summary";
/// Domain separation: a signature over a report can never be replayed as
/// a signature over an audit checkpoint or an agent record.
const SIGNING_CONTEXT: &[u8] = b"cadang-signed-document-v1\n";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedDocument {
    pub format: String,
    pub version: u32,
    pub kind: String,
    pub body: Value,
    /// The signer's ed25519 public key, hex.
    pub key_id: String,
    /// ed25519 signature over [`signed_message`], hex.
    pub signature: String,
}

/// What the signature covers: context, kind, a newline, canonical body.
pub fn signed_message(kind: &str, body: &Value) -> Vec<u8> {
    let mut msg = SIGNING_CONTEXT.to_vec();
    msg.extend_from_slice(kind.as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(&to_canonical(body));
    msg
}

impl SignedDocument {
    pub fn sign(kind: &str, body: Value, key: &SigningKey) -> SignedDocument {
        let signature = key.sign(&signed_message(kind, &body));
        SignedDocument {
            format: DOCUMENT_FORMAT.into(),
            version: DOCUMENT_VERSION,
            kind: kind.into(),
            body,
            key_id: key.public().to_hex(),
            signature: hex::encode(signature),
        }
    }

    pub fn sign_drill(report: &DrillReport, key: &SigningKey) -> Result<SignedDocument> {
        Ok(Self::sign(KIND_DRILL, to_value(report)?, key))
    }

    pub fn sign_summary(summary: &ComplianceSummary, key: &SigningKey) -> Result<SignedDocument> {
        Ok(Self::sign(KIND_SUMMARY, to_value(summary)?, key))
    }

    /// The file: the whole document in canonical form and a newline.
    /// Being canonical, any changed byte (even spacing) is noticed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = to_canonical(&to_value(self).unwrap_or(Value::Null));
        out.push(b'\n');
        out
    }

    /// Parses a document file and checks its format, version and that it
    /// is byte-for-byte canonical. The signature is checked by [`Self::verify`].
    pub fn parse(bytes: &[u8]) -> Result<SignedDocument> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| ReportError::Format(format!("not JSON: {e}")))?;
        let doc: SignedDocument = serde_json::from_value(value)
            .map_err(|e| ReportError::Format(format!("missing or wrong field: {e}")))?;
        if doc.format != DOCUMENT_FORMAT || doc.version != DOCUMENT_VERSION {
            return Err(ReportError::Format(format!(
                "format {} version {} is not supported (this cadang reads {DOCUMENT_FORMAT} version {DOCUMENT_VERSION})",
                doc.format, doc.version
            )));
        }
        if doc.to_bytes() != bytes {
            return Err(ReportError::NotCanonical(
                "its bytes differ from the canonical JSON of its own content".into(),
            ));
        }
        Ok(doc)
    }

    /// Checks the signature against the embedded `key_id`, and, when a
    /// trusted key is given, that `key_id` is that key. Without a trusted
    /// key this proves only self-consistency: the caller must say so.
    pub fn verify(&self, trusted: Option<&PublicKey>) -> Result<()> {
        let embedded = PublicKey::from_hex(&self.key_id)
            .map_err(|e| ReportError::Format(format!("key_id: {e}")))?;
        if let Some(trusted) = trusted {
            if *trusted != embedded {
                return Err(ReportError::UntrustedKey {
                    found: self.key_id.clone(),
                    trusted: trusted.to_hex(),
                });
            }
        }
        let signature = hex::decode(&self.signature)
            .map_err(|_| ReportError::Format("signature is not hex".into()))?;
        if !embedded.verify(&signed_message(&self.kind, &self.body), &signature) {
            return Err(ReportError::BadSignature);
        }
        Ok(())
    }

    /// The body as a drill report (after [`Self::verify`]).
    pub fn drill(&self) -> Result<DrillReport> {
        self.body_as(KIND_DRILL)
    }

    /// The body as a compliance summary (after [`Self::verify`]).
    pub fn summary(&self) -> Result<ComplianceSummary> {
        self.body_as(KIND_SUMMARY)
    }

    fn body_as<T: serde::de::DeserializeOwned>(&self, kind: &str) -> Result<T> {
        if self.kind != kind {
            return Err(ReportError::Body {
                kind: kind.into(),
                message: format!("the document is a {}", self.kind),
            });
        }
        serde_json::from_value(self.body.clone()).map_err(|e| ReportError::Body {
            kind: kind.into(),
            message: e.to_string(),
        })
    }
}

fn to_value<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| ReportError::Format(e.to_string()))
}
