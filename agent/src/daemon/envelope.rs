//! Restore envelopes: the custodian's consent for one job, sealed (age,
//! armored) to the restoring agent's own key.
//!
//! [`seal`] runs on the custodian's machine (`cadang restore approve`),
//! [`open`] on the agent. An envelope holds the PD's data identity, so its
//! plaintext is kept in wiping buffers ([`zeroize`]) and the identity is
//! handed on inside an [`age::secrecy::SecretString`]; callers drop it as
//! soon as the job is done.
//!
//! [`check`] is what the agent refuses before anything is read: an envelope
//! for another request, PD or agent, or one past its expiry (agent clock).
//! The once-only rule is the used-envelope ledger in `restore_job.rs`.

use std::io::{Read, Write};
use std::str::FromStr;

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::secrecy::{ExposeSecret, SecretString};
use cadang_proto::restore::{EnvelopePayload, ENVELOPE_FORMAT};
use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

/// The longest envelope accepted (a payload is well under 4 KiB; the limit
/// keeps a hostile job from making the agent decrypt megabytes).
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the restore envelope is not an armored age file ({0}); the approval was damaged on the way — ask the Wali Data to approve again")]
    NotArmored(String),
    #[error("the restore envelope is {0} bytes, more than the {MAX_ENVELOPE_BYTES} an envelope can be; it was not made by a cadang approval; the Wali Data approves the request again")]
    TooLarge(usize),
    #[error("this agent's key cannot open the restore envelope: it was sealed to another agent (the request names another agent, or this agent was enrolled again since); file the request again for this agent")]
    NotForThisAgent,
    #[error("the restore envelope cannot be decrypted ({0}); ask the Wali Data to approve again")]
    Damaged(String),
    #[error("the restore envelope holds no valid payload ({0}); it was not made by a cadang approval of this request; the Wali Data approves it again")]
    BadPayload(String),
    #[error("the restore envelope is for {field} {found:?}, but this job is for {expected:?}: refused (an envelope is good only for the request, PD and agent it names)")]
    Mismatch {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("the restore envelope expired at {expires} (agent clock {now}); the request must be filed and approved again")]
    Expired {
        expires: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error("the agent's own age identity cannot be used ({0}); enroll the agent again")]
    OwnKey(String),
    #[error("the restore envelope cannot be sealed: {0}")]
    Seal(String),
}

/// Parses the agent's own restore identity (`restore-identity.age.txt`).
pub fn own_identity(text: &str) -> Result<age::x25519::Identity, EnvelopeError> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .ok_or_else(|| EnvelopeError::OwnKey("no AGE-SECRET-KEY line".into()))?;
    age::x25519::Identity::from_str(line).map_err(|e| EnvelopeError::OwnKey(e.to_string()))
}

/// Seals `payload` to the agent's recipient (`age1...`); returns armored
/// text. The JSON plaintext lives only in a wiping buffer.
pub fn seal(recipient: &str, payload: &EnvelopePayload) -> Result<String, EnvelopeError> {
    let recipient = age::x25519::Recipient::from_str(recipient.trim())
        .map_err(|e| EnvelopeError::Seal(format!("the agent's recipient {recipient:?}: {e}")))?;
    let plain = Zeroizing::new(
        serde_json::to_vec(payload).map_err(|e| EnvelopeError::Seal(e.to_string()))?,
    );
    let enc = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        .map_err(|e| EnvelopeError::Seal(e.to_string()))?;
    let mut out = Vec::new();
    let seal_err = |e: std::io::Error| EnvelopeError::Seal(e.to_string());
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(seal_err)?;
    let mut w = enc.wrap_output(armor).map_err(seal_err)?;
    w.write_all(&plain).map_err(seal_err)?;
    w.finish().and_then(|a| a.finish()).map_err(seal_err)?;
    String::from_utf8(out).map_err(|e| EnvelopeError::Seal(e.to_string()))
}

/// An opened envelope: the payload without its identity, and the identity
/// apart in a wiping secret.
pub struct Opened {
    pub payload: EnvelopePayload,
    pub identity: SecretString,
}

/// Decrypts an armored envelope with the agent's own identity.
pub fn open(identity: &age::x25519::Identity, armored: &str) -> Result<Opened, EnvelopeError> {
    let raw = decrypt(identity, armored)?;
    let mut payload: EnvelopePayload =
        serde_json::from_slice(&raw).map_err(|e| EnvelopeError::BadPayload(e.to_string()))?;
    if payload.format != ENVELOPE_FORMAT || payload.version != 1 {
        return Err(EnvelopeError::BadPayload(format!(
            "format {:?} v{} is not {ENVELOPE_FORMAT} v1",
            payload.format, payload.version
        )));
    }
    // The identity moves out of the plain struct into a wiping secret.
    let identity = SecretString::from(std::mem::take(&mut payload.identity));
    if !identity.expose_secret().starts_with("AGE-SECRET-KEY-") {
        return Err(EnvelopeError::BadPayload(
            "it holds no data identity".into(),
        ));
    }
    Ok(Opened { payload, identity })
}

fn decrypt(
    identity: &age::x25519::Identity,
    armored: &str,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if armored.len() > MAX_ENVELOPE_BYTES {
        return Err(EnvelopeError::TooLarge(armored.len()));
    }
    if !armored
        .trim_start()
        .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
    {
        return Err(EnvelopeError::NotArmored(
            "no BEGIN AGE ENCRYPTED FILE line".into(),
        ));
    }
    let reader = ArmoredReader::new(armored.as_bytes());
    let dec = age::Decryptor::new_buffered(std::io::BufReader::new(reader))
        .map_err(|e| EnvelopeError::NotArmored(e.to_string()))?;
    let mut r = dec
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => EnvelopeError::NotForThisAgent,
            e => EnvelopeError::Damaged(e.to_string()),
        })?;
    let mut plain = Zeroizing::new(Vec::with_capacity(4096));
    r.by_ref()
        .take(MAX_ENVELOPE_BYTES as u64)
        .read_to_end(&mut plain)
        .map_err(|e| EnvelopeError::Damaged(e.to_string()))?;
    Ok(plain)
}

/// What the job names, for [`check`].
pub struct Expected<'a> {
    pub request_id: &'a str,
    pub pd: &'a str,
    pub agent_id: &'a str,
    pub now: DateTime<Utc>,
}

/// Refuses an envelope for another request, PD or agent, or past expiry.
pub fn check(p: &EnvelopePayload, want: &Expected<'_>) -> Result<(), EnvelopeError> {
    let mismatch = |field, expected: &str, found: &str| EnvelopeError::Mismatch {
        field,
        expected: expected.to_string(),
        found: found.to_string(),
    };
    if p.request_id != want.request_id {
        return Err(mismatch("request", want.request_id, &p.request_id));
    }
    if p.pd != want.pd {
        return Err(mismatch("PD", want.pd, &p.pd));
    }
    if p.agent_id != want.agent_id {
        return Err(mismatch("agent", want.agent_id, &p.agent_id));
    }
    if p.expires <= want.now {
        return Err(EnvelopeError::Expired {
            expires: p.expires,
            now: want.now,
        });
    }
    Ok(())
}

/// The envelope's fingerprint for the used-envelope ledger (BLAKE3 of the
/// armored text with whitespace removed, so re-wrapping lines does not make
/// a replay look new).
pub fn fingerprint(armored: &str) -> String {
    let compact: String = armored.chars().filter(|c| !c.is_whitespace()).collect();
    blake3::hash(compact.as_bytes()).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadang_proto::restore::RestoreWhat;

    fn payload(request: &str, expires: DateTime<Utc>) -> EnvelopePayload {
        EnvelopePayload {
            format: ENVELOPE_FORMAT.into(),
            version: 1,
            request_id: request.into(),
            pd: "DUKCAPIL".into(),
            agent_id: "srv-1-abc".into(),
            snapshot: "ab".repeat(32),
            what: RestoreWhat::Whole,
            target: "/srv/restore".into(),
            in_place: false,
            expires,
            trust_keys: vec![],
            identity: age::x25519::Identity::generate()
                .to_string()
                .expose_secret()
                .to_string(),
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn sealed_envelopes_open_only_with_the_agents_key() {
        let agent = age::x25519::Identity::generate();
        let p = payload("rr-000000000001", t("2026-12-04T00:00:00Z"));
        let armored = seal(&agent.to_public().to_string(), &p).unwrap();
        assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!armored.contains("AGE-SECRET-KEY"));
        let opened = open(&agent, &armored).unwrap();
        assert_eq!(opened.identity.expose_secret(), p.identity);
        assert!(opened.payload.identity.is_empty());
        assert_eq!(opened.payload.request_id, p.request_id);

        let other = age::x25519::Identity::generate();
        assert!(matches!(
            open(&other, &armored),
            Err(EnvelopeError::NotForThisAgent)
        ));
        assert!(matches!(
            open(&agent, "sealed"),
            Err(EnvelopeError::NotArmored(_))
        ));
    }

    #[test]
    fn check_refuses_other_requests_pds_agents_and_expired_envelopes() {
        let p = payload("rr-A", t("2026-12-04T00:00:00Z"));
        let ok = Expected {
            request_id: "rr-A",
            pd: "DUKCAPIL",
            agent_id: "srv-1-abc",
            now: t("2026-12-03T00:00:00Z"),
        };
        check(&p, &ok).unwrap();
        let err = check(
            &p,
            &Expected {
                request_id: "rr-B",
                ..ok
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("rr-A"), "{err}");
        assert!(matches!(
            check(
                &p,
                &Expected {
                    pd: "BAPPEDA",
                    ..ok
                }
            ),
            Err(EnvelopeError::Mismatch { field: "PD", .. })
        ));
        assert!(matches!(
            check(
                &p,
                &Expected {
                    agent_id: "other",
                    ..ok
                }
            ),
            Err(EnvelopeError::Mismatch { field: "agent", .. })
        ));
        assert!(matches!(
            check(
                &p,
                &Expected {
                    now: t("2026-12-04T00:00:00Z"),
                    ..ok
                }
            ),
            Err(EnvelopeError::Expired { .. })
        ));
    }

    #[test]
    fn fingerprints_ignore_line_wrapping() {
        assert_eq!(fingerprint("ab\ncd\n"), fingerprint("abcd"));
        assert_ne!(fingerprint("abce"), fingerprint("abcd"));
    }
}
