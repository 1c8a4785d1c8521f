//! Keys and who holds them.
//!
//! * The **data key pair** (age X25519) encrypts every pack, tree and snapshot
//!   body. Agents hold only the recipient; the identity exists in the store
//!   only wrapped by the custodian's passphrase (age scrypt), so the Dinas and a
//!   stolen PD server cannot read a PD's data.
//! * The **repository secret** gives the chunk-id key (deduplication), the
//!   FastCDC gear seed and the metadata key (host names and tags). Agents and
//!   the controller hold it; it is not enough to read contents or file names.
//! * Each agent has an **ed25519 signing key**: snapshots are signed by the
//!   agent that made them, and the key counts only when certified by the
//!   custodian or the controller (see `certify`).

use std::io::{Read, Write};
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

pub use crate::random::fill_random;

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    fill_random(&mut b);
    b
}

/// The PD's data recipient (public half). Safe to hand to any agent.
#[derive(Clone)]
pub struct DataRecipient(age::x25519::Recipient);

/// The PD's data identity (private half). Only the Wali Data may unwrap it.
#[derive(Clone)]
pub struct DataIdentity(age::x25519::Identity);

impl DataRecipient {
    pub fn parse(s: &str) -> Result<DataRecipient> {
        age::x25519::Recipient::from_str(s.trim())
            .map(DataRecipient)
            .map_err(|e| Error::Format(format!("invalid data recipient {s:?}: {e}")))
    }

    pub fn encode(&self) -> String {
        self.0.to_string()
    }

    /// Encrypts a small, whole message (trees go in packs; this is for
    /// snapshot bodies and key files).
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut w = self.stream(Vec::with_capacity(plaintext.len() + 256))?;
        w.write_all(plaintext).map_err(Error::crypto)?;
        w.finish().map_err(Error::crypto)
    }

    /// Starts one age stream; one per pack keeps X25519 off the per-chunk path.
    pub fn stream<W: Write>(&self, out: W) -> Result<age::stream::StreamWriter<W>> {
        let enc = age::Encryptor::with_recipients(std::iter::once(&self.0 as &dyn age::Recipient))
            .map_err(|e| Error::Crypto(e.to_string()))?;
        enc.wrap_output(out).map_err(Error::crypto)
    }
}

impl DataIdentity {
    pub fn generate() -> DataIdentity {
        DataIdentity(age::x25519::Identity::generate())
    }

    pub fn parse(s: &str) -> Result<DataIdentity> {
        let line = s
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .ok_or_else(|| Error::Format("no AGE-SECRET-KEY line in the identity file".into()))?;
        age::x25519::Identity::from_str(line)
            .map(DataIdentity)
            .map_err(|e| Error::Format(format!("invalid identity: {e}")))
    }

    pub fn recipient(&self) -> DataRecipient {
        DataRecipient(self.0.to_public())
    }

    pub fn encode(&self) -> String {
        self.0.to_string().expose_secret().to_string()
    }

    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ciphertext.len());
        self.decrypt_reader(ciphertext)?
            .read_to_end(&mut out)
            .map_err(|e| Error::Corrupt(format!("decryption failed: {e}")))?;
        Ok(out)
    }

    /// A reader over the plaintext. It is `Seek` too and decrypts only the
    /// 64 KiB STREAM segments it touches.
    pub fn decrypt_reader<R: std::io::BufRead>(
        &self,
        ciphertext: R,
    ) -> Result<age::stream::StreamReader<R>> {
        let dec = age::Decryptor::new_buffered(ciphertext)
            .map_err(|e| Error::Corrupt(format!("not an age stream: {e}")))?;
        dec.decrypt(std::iter::once(&self.0 as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => Error::WrongKey,
                e => Error::Corrupt(format!("cannot decrypt: {e}")),
            })
    }

    /// Wraps the identity with the custodian's passphrase (age scrypt).
    pub fn wrap(&self, passphrase: &str) -> Result<Vec<u8>> {
        let mut r = age::scrypt::Recipient::new(SecretString::from(passphrase.to_string()));
        r.set_work_factor(scrypt_log_n());
        let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
            .map_err(|e| Error::Crypto(e.to_string()))?;
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).map_err(Error::crypto)?;
        w.write_all(self.encode().as_bytes())
            .map_err(Error::crypto)?;
        w.finish().map_err(Error::crypto)?;
        Ok(out)
    }

    pub fn unwrap(wrapped: &[u8], passphrase: &str) -> Result<DataIdentity> {
        let mut id = age::scrypt::Identity::new(SecretString::from(passphrase.to_string()));
        id.set_max_work_factor(22);
        let dec = age::Decryptor::new_buffered(wrapped)
            .map_err(|e| Error::Corrupt(format!("keys/identity.age is not an age file: {e}")))?;
        let mut r = dec
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                    Error::WrongPassphrase
                }
                e => Error::Corrupt(format!("keys/identity.age: {e}")),
            })?;
        let mut s = String::new();
        r.read_to_string(&mut s)
            .map_err(|e| Error::Corrupt(format!("keys/identity.age: {e}")))?;
        DataIdentity::parse(&s)
    }
}

/// scrypt cost for the custodian's passphrase: 2^18 by default (about a
/// second); tests may lower it through `CADANG_SCRYPT_LOG_N`.
fn scrypt_log_n() -> u8 {
    std::env::var("CADANG_SCRYPT_LOG_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| (10..=22).contains(n))
        .unwrap_or(18)
}

/// The repository secret. Everything derives from one random master key so
/// the key file stays small and the derivations are fixed by the format.
#[derive(Clone, Serialize, Deserialize)]
pub struct RepoSecret {
    #[serde(with = "hex32")]
    master: [u8; 32],
    /// FastCDC gear seed: random per repository so chunk boundaries (and thus
    /// chunk sizes) cannot be used to fingerprint known files.
    pub gear_seed: u64,
    #[serde(skip)]
    derived: Option<Derived>,
}

#[derive(Clone)]
struct Derived {
    chunk_key: [u8; 32],
    meta_key: [u8; 32],
    group_key: [u8; 32],
}

impl RepoSecret {
    pub fn generate() -> RepoSecret {
        let mut seed = [0u8; 8];
        fill_random(&mut seed);
        RepoSecret {
            master: random32(),
            gear_seed: u64::from_le_bytes(seed),
            derived: None,
        }
        .with_derived()
    }

    fn with_derived(mut self) -> RepoSecret {
        self.derived = Some(Derived {
            chunk_key: blake3::derive_key("cadang v1 chunk id", &self.master),
            meta_key: blake3::derive_key("cadang v1 snapshot metadata", &self.master),
            group_key: blake3::derive_key("cadang v1 snapshot group", &self.master),
        });
        self
    }

    fn d(&self) -> &Derived {
        self.derived
            .as_ref()
            .expect("derived keys are set on construction")
    }

    pub fn from_json(data: &[u8]) -> Result<RepoSecret> {
        let s: RepoSecret = serde_json::from_slice(data)
            .map_err(|e| Error::Format(format!("repository secret: {e}")))?;
        Ok(s.with_derived())
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serialisable")
    }

    /// Chunk id: keyed BLAKE3 of the plaintext. Without the key an id says
    /// nothing about the content, so a store operator cannot test for a file.
    pub fn chunk_id(&self, data: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.d().chunk_key, data).as_bytes())
    }

    /// An opaque grouping key for retention, so `forget` can group snapshots
    /// by host and paths without learning either.
    pub fn group(&self, parts: &[&[u8]]) -> String {
        let mut h = blake3::Hasher::new_keyed(&self.d().group_key);
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        hex::encode(&h.finalize().as_bytes()[..16])
    }

    /// Seals snapshot metadata (host, tags) that agents may read.
    pub fn seal_meta(&self, plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.d().meta_key).into());
        let mut nonce = [0u8; 24];
        fill_random(&mut nonce);
        let mut out = nonce.to_vec();
        out.extend(
            cipher
                .encrypt(XNonce::from_slice(&nonce), plaintext)
                .expect("XChaCha20-Poly1305 encryption cannot fail"),
        );
        out
    }

    pub fn open_meta(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < 24 + 16 {
            return Err(Error::Corrupt("sealed metadata is too short".into()));
        }
        let cipher = XChaCha20Poly1305::new((&self.d().meta_key).into());
        cipher
            .decrypt(XNonce::from_slice(&sealed[..24]), &sealed[24..])
            .map_err(|_| Error::WrongKey)
    }
}

/// An agent's signing key.
pub struct AgentKey(SigningKey);

impl AgentKey {
    pub fn generate() -> AgentKey {
        AgentKey(SigningKey::from_bytes(&random32()))
    }

    pub fn from_hex(s: &str) -> Result<AgentKey> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b)
            .map_err(|_| Error::Format("agent signing key is not 64 hex digits".into()))?;
        Ok(AgentKey(SigningKey::from_bytes(&b)))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    pub fn public(&self) -> AgentPublicKey {
        AgentPublicKey(self.0.verifying_key())
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AgentPublicKey(VerifyingKey);

impl AgentPublicKey {
    pub fn from_hex(s: &str) -> Result<AgentPublicKey> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b)
            .map_err(|_| Error::Format("agent public key is not 64 hex digits".into()))?;
        VerifyingKey::from_bytes(&b)
            .map(AgentPublicKey)
            .map_err(|_| Error::Format("agent public key is not a valid ed25519 point".into()))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    pub fn verify(&self, msg: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.0
            .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok()
    }
}

/// What an agent holds: enough to write backups, never to read them.
#[derive(Serialize, Deserialize)]
pub struct Credentials {
    pub format: String,
    pub version: u32,
    pub repo_id: Id,
    pub pd: String,
    pub agent_name: String,
    pub data_recipient: String,
    pub repo_secret: RepoSecret,
    pub agent_signing_key: String,
    /// The custodian's public signing key (hex, see `certify`): a trust
    /// anchor taken from outside the store, for a keyless `check` to tell
    /// certified signers from keys someone added to the store. `None` in
    /// files written before certified signers existed: they still work for
    /// backups, but give no trust anchor (use the identity or a given key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custodian_key: Option<String>,
}

impl Credentials {
    pub const FORMAT: &'static str = "cadang-agent-credentials";

    pub fn from_json(data: &[u8]) -> Result<Credentials> {
        let c: Credentials = serde_json::from_slice(data)
            .map_err(|e| Error::Format(format!("not a cadang agent credential file: {e}")))?;
        if c.format != Self::FORMAT || c.version != 1 {
            return Err(Error::Format(format!(
                "credential file format {} v{} is not supported",
                c.format, c.version
            )));
        }
        Ok(Credentials {
            repo_secret: c.repo_secret.with_derived(),
            ..c
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("serialisable")
    }

    pub fn recipient(&self) -> Result<DataRecipient> {
        DataRecipient::parse(&self.data_recipient)
    }

    pub fn agent_key(&self) -> Result<AgentKey> {
        AgentKey::from_hex(&self.agent_signing_key)
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut b = [0u8; 32];
        hex::decode_to_slice(&s, &mut b).map_err(serde::de::Error::custom)?;
        Ok(b)
    }
}
