//! Snapshots: one signed file per backup.
//!
//! ```text
//! snapshots/<blake3 of file> = {"payload": "<JSON text>", "signer": hex, "signature": hex}
//! ```
//! The signature covers the exact payload text, so no canonical JSON is
//! needed. The payload has three layers of readability:
//! * keyless: time, the packs the snapshot depends on, counts and sizes, an
//!   opaque retention group (what replication, verification and prune need);
//! * `meta`, sealed with the repository secret: host, tags, agent name
//!   (agents and the controller can list and filter);
//! * `body`, age-encrypted to the PD's data recipient: backed-up paths and the
//!   root tree (only the Wali Data can read file names).

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;
use crate::keys::{AgentKey, AgentPublicKey, DataIdentity, DataRecipient, RepoSecret};
use crate::tree::FileName;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SnapshotStats {
    pub files: u64,
    pub dirs: u64,
    /// Total size of the backed-up files.
    pub bytes: u64,
    /// Bytes of new packs this backup stored.
    pub added_bytes: u64,
    pub new_chunks: u64,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotPayload {
    pub version: u32,
    pub repo_id: Id,
    pub time: chrono::DateTime<chrono::FixedOffset>,
    pub group: String,
    pub packs: Vec<Id>,
    pub stats: SnapshotStats,
    pub meta: String,
    pub body: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub host: String,
    pub tags: Vec<String>,
    pub agent: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotBody {
    /// Absolute source paths, or the stream's name for a stdin backup.
    pub paths: Vec<FileName>,
    pub tree: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    payload: String,
    signer: String,
    signature: String,
}

#[derive(Clone, Debug)]
pub struct Snapshot {
    pub id: Id,
    pub payload: SnapshotPayload,
    pub signer: String,
}

impl Snapshot {
    /// Builds, signs and encodes a snapshot. Returns its id and the file.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        repo_id: Id,
        time: chrono::DateTime<chrono::FixedOffset>,
        mut packs: Vec<Id>,
        stats: SnapshotStats,
        meta: &SnapshotMeta,
        body: &SnapshotBody,
        secret: &RepoSecret,
        recipient: &DataRecipient,
        key: &AgentKey,
    ) -> Result<(Id, Vec<u8>)> {
        packs.sort();
        packs.dedup();
        let mut group_parts: Vec<&[u8]> = vec![meta.host.as_bytes()];
        group_parts.extend(body.paths.iter().map(|p| p.as_bytes()));
        let payload = SnapshotPayload {
            version: 1,
            repo_id,
            time,
            group: secret.group(&group_parts),
            packs,
            stats,
            meta: B64.encode(secret.seal_meta(&serde_json::to_vec(meta).expect("serialisable"))),
            body: B64.encode(recipient.encrypt(&serde_json::to_vec(body).expect("serialisable"))?),
        };
        let text = serde_json::to_string(&payload).expect("serialisable");
        let file = SnapshotFile {
            signature: hex::encode(key.sign(text.as_bytes())),
            signer: key.public().to_hex(),
            payload: text,
        };
        let data = serde_json::to_vec(&file).expect("serialisable");
        Ok((Id::of_bytes(&data), data))
    }

    /// Parses a snapshot file and checks its name and signature (keyless).
    pub fn parse(name: &str, data: &[u8]) -> Result<Snapshot> {
        let id = Id::of_bytes(data);
        if id.to_hex() != name {
            return Err(Error::Corrupt(format!(
                "snapshots/{name} does not match its hash (truncated or altered)"
            )));
        }
        let f: SnapshotFile = serde_json::from_slice(data)
            .map_err(|e| Error::Corrupt(format!("snapshots/{name} is unreadable: {e}")))?;
        let signer = AgentPublicKey::from_hex(&f.signer)?;
        let sig = hex::decode(&f.signature).unwrap_or_default();
        if !signer.verify(f.payload.as_bytes(), &sig) {
            return Err(Error::Corrupt(format!(
                "snapshots/{name} has an invalid signature"
            )));
        }
        let payload: SnapshotPayload = serde_json::from_str(&f.payload)
            .map_err(|e| Error::Corrupt(format!("snapshots/{name} payload: {e}")))?;
        if payload.version != 1 {
            return Err(Error::UnsupportedVersion(payload.version));
        }
        Ok(Snapshot {
            id,
            payload,
            signer: f.signer,
        })
    }

    pub fn meta(&self, secret: &RepoSecret) -> Result<SnapshotMeta> {
        let sealed = B64
            .decode(&self.payload.meta)
            .map_err(|e| Error::Corrupt(format!("snapshot {} meta: {e}", self.id.short())))?;
        let plain = secret.open_meta(&sealed)?;
        serde_json::from_slice(&plain)
            .map_err(|e| Error::Corrupt(format!("snapshot {} meta: {e}", self.id.short())))
    }

    pub fn body(&self, identity: &DataIdentity) -> Result<SnapshotBody> {
        let sealed = B64
            .decode(&self.payload.body)
            .map_err(|e| Error::Corrupt(format!("snapshot {} body: {e}", self.id.short())))?;
        let plain = identity.decrypt(&sealed)?;
        serde_json::from_slice(&plain)
            .map_err(|e| Error::Corrupt(format!("snapshot {} body: {e}", self.id.short())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_layers_and_tamper_detection() {
        let identity = DataIdentity::generate();
        let secret = RepoSecret::generate();
        let key = AgentKey::generate();
        let meta = SnapshotMeta {
            host: "srv-dukcapil-01".into(),
            tags: vec!["harian".into()],
            agent: "a1".into(),
        };
        let body = SnapshotBody {
            paths: vec![FileName(b"/srv/data".to_vec())],
            tree: Id([1; 32]),
            stdin_command: None,
            excludes: vec![],
        };
        let (id, data) = Snapshot::create(
            Id([9; 32]),
            chrono::Local::now().fixed_offset(),
            vec![Id([3; 32]), Id([2; 32]), Id([3; 32])],
            SnapshotStats::default(),
            &meta,
            &body,
            &secret,
            &identity.recipient(),
            &key,
        )
        .unwrap();
        let text = String::from_utf8_lossy(&data);
        assert!(!text.contains("srv-dukcapil") && !text.contains("/srv/data"));
        let s = Snapshot::parse(&id.to_hex(), &data).unwrap();
        assert_eq!(s.payload.packs, vec![Id([2; 32]), Id([3; 32])]);
        assert_eq!(s.meta(&secret).unwrap(), meta);
        assert_eq!(s.body(&identity).unwrap(), body);
        assert!(s.meta(&RepoSecret::generate()).is_err());
        assert!(s.body(&DataIdentity::generate()).is_err());

        // Re-signing with a forged payload fails verification.
        let forged = text.replacen("\\\"version\\\":1", "\\\"version\\\":1 ", 1);
        let fid = Id::of_bytes(forged.as_bytes());
        assert!(Snapshot::parse(&fid.to_hex(), forged.as_bytes()).is_err());
        assert!(Snapshot::parse(&id.to_hex(), &data[..data.len() - 1]).is_err());
    }
}
