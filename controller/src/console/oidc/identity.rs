//! Who a verified ID token is in cadang: the rules of the module above
//! (NIP claim first; without it, only an auditor without NIP by verified
//! e-mail), and the PKCE challenge.

use sha2::Digest;

use crate::state::users::UserRecord;

/// RFC 7636 S256: BASE64URL(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// What the verified ID token says about the person.
#[derive(Debug, Clone, PartialEq)]
pub struct SsoIdentity {
    pub sub: String,
    pub nip: Option<String>,
    /// Only an address the provider marks verified.
    pub email: Option<String>,
}

impl SsoIdentity {
    pub fn from_claims(
        claims: &serde_json::Map<String, serde_json::Value>,
        nip_claim: &str,
    ) -> SsoIdentity {
        let text = |k: &str| {
            claims
                .get(k)
                .and_then(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .or_else(|| v.as_u64().map(|n| n.to_string()))
                })
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let verified = claims.get("email_verified").and_then(|v| v.as_bool()) == Some(true);
        SsoIdentity {
            sub: text("sub").unwrap_or_default(),
            nip: text(nip_claim),
            email: text("email").filter(|_| verified),
        }
    }

    /// Who the audit log names for this login.
    pub fn actor(&self) -> String {
        self.nip
            .clone()
            .or_else(|| self.email.clone())
            .unwrap_or_else(|| format!("sso:{}", self.sub))
    }
}

/// The cadang user this identity signs in, or why nobody.
pub fn match_user(all: &[UserRecord], who: &SsoIdentity) -> Result<UserRecord, String> {
    let user = match &who.nip {
        Some(nip) => {
            cadang_policies::nip::parse(nip)
                .map_err(|e| format!("the provider sent NIP {nip:?}, which is not valid ({e}); ask the provider's administrator to correct it"))?;
            all.iter().find(|u| u.nip.as_deref() == Some(nip.as_str())).cloned().ok_or_else(|| {
                format!("no cadang user has NIP {nip}; ask a cadang administrator to add you (`cadang user add`)")
            })?
        }
        None => {
            let email = who.email.as_deref().ok_or_else(|| {
                "the provider sent neither an NIP nor a verified e-mail address; ask its administrator to release the NIP claim".to_string()
            })?;
            let u = all
                .iter()
                .find(|u| u.name.eq_ignore_ascii_case(email))
                .cloned()
                .ok_or_else(|| {
                    format!("the provider sent no NIP and no cadang user is named {email}")
                })?;
            if u.nip.is_some() || u.roles.iter().any(|r| r.kind() != "auditor") {
                return Err(format!(
                    "the provider sent no NIP for {email}; without it only an auditor can sign in by SSO — sign in with your cadang password, or ask the provider's administrator to release the NIP claim"
                ));
            }
            u
        }
    };
    if user.disabled {
        return Err(format!(
            "the cadang user {} is disabled; ask a cadang administrator",
            user.name
        ));
    }
    if user.roles.is_empty() {
        return Err(format!(
            "the cadang user {} has no role yet; ask a cadang administrator",
            user.name
        ));
    }
    Ok(user)
}
