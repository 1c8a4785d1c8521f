//! Enrollment tokens as operators copy them from `cadang controller
//! enroll-token` to a PD server.
//!
//! A token carries the SHA-256 fingerprint of the controller CA's
//! certificate (DER), so the agent verifies the controller on its very first
//! connection instead of trusting whatever answers. The secret half is
//! random; the controller keeps only its hash.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

const PREFIX: &str = "cadang-enroll-1";

/// `cadang-enroll-1.<secret, base64url>.<CA fingerprint, 64 hex digits>`
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    /// 32 random bytes; shown once, stored hashed by the controller.
    pub secret: [u8; 32],
    /// SHA-256 of the controller CA certificate in DER.
    pub ca_fingerprint: [u8; 32],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("this is not a cadang enrollment token (it should start with `{PREFIX}.`); copy the whole line printed by `cadang controller enroll-token`")]
    Prefix,
    #[error("the enrollment token is cut short or damaged ({0}); copy the whole line printed by `cadang controller enroll-token`")]
    Malformed(&'static str),
}

impl EnrollmentToken {
    /// The secret as the agent sends it in [`crate::agent::EnrollRequest`].
    pub fn secret_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.secret)
    }

    /// Decodes the secret half alone, as the controller receives it.
    pub fn parse_secret(text: &str) -> Result<[u8; 32], TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| TokenError::Malformed("secret is not base64url"))?;
        <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| TokenError::Malformed("secret length"))
    }

    pub fn ca_fingerprint_hex(&self) -> String {
        hex::encode(self.ca_fingerprint)
    }
}

impl fmt::Display for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}.{}.{}",
            self.secret_text(),
            self.ca_fingerprint_hex()
        )
    }
}

// Never print the secret in logs by accident.
impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnrollmentToken(ca {})", self.ca_fingerprint_hex())
    }
}

impl FromStr for EnrollmentToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, TokenError> {
        let mut parts = s.trim().split('.');
        if parts.next() != Some(PREFIX) {
            return Err(TokenError::Prefix);
        }
        let secret = Self::parse_secret(parts.next().ok_or(TokenError::Malformed("no secret"))?)?;
        let fp = parts
            .next()
            .ok_or(TokenError::Malformed("no CA fingerprint"))?;
        if parts.next().is_some() {
            return Err(TokenError::Malformed("extra fields"));
        }
        let mut ca_fingerprint = [0u8; 32];
        hex::decode_to_slice(fp, &mut ca_fingerprint)
            .map_err(|_| TokenError::Malformed("CA fingerprint is not 64 hex digits"))?;
        Ok(EnrollmentToken {
            secret,
            ca_fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let t = EnrollmentToken {
            secret: [7; 32],
            ca_fingerprint: [0xab; 32],
        };
        let text = t.to_string();
        assert_eq!(text.parse::<EnrollmentToken>().unwrap(), t);
        assert_eq!(
            "other.x.y".parse::<EnrollmentToken>(),
            Err(TokenError::Prefix)
        );
        let cut = &text[..text.len() - 2];
        assert!(matches!(
            cut.parse::<EnrollmentToken>(),
            Err(TokenError::Malformed(_))
        ));
        assert!(!format!("{t:?}").contains(&t.secret_text()));
    }
}
