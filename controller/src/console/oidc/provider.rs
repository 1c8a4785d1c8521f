//! The provider as the controller sees it: its discovery document, its
//! signing keys (JWKS) and the checks an ID token must pass before anyone
//! is signed in by it (OpenID Connect Core 3.1.3.7).

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use url::Url;

use super::http::{check_scheme, Http};
use super::OidcError;

/// `/.well-known/openid-configuration`: the fields used.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
}

/// Asymmetric algorithms only: `none` and the HMAC family (keyed with the
/// client secret, which the controller's config also holds) never sign
/// anyone in.
const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A discovered provider with its current keys.
#[derive(Clone)]
pub struct Provider {
    pub meta: Discovery,
    pub keys: JwkSet,
}

impl Provider {
    /// Reads the discovery document and the keys; the document must name
    /// exactly the configured issuer (so a look-alike cannot stand in).
    pub async fn discover(http: &Http, issuer: &str) -> Result<Provider, OidcError> {
        let base = issuer.trim_end_matches('/');
        let url = parse_url(&format!("{base}/.well-known/openid-configuration"))?;
        let meta: Discovery = get_json(http, &url, "discovery document").await?;
        if meta.issuer.trim_end_matches('/') != base {
            return Err(OidcError::Provider(format!(
                "the discovery document names issuer {:?}, the config says {issuer:?}; fix [sso] issuer",
                meta.issuer
            )));
        }
        if !meta.code_challenge_methods_supported.is_empty()
            && !meta
                .code_challenge_methods_supported
                .iter()
                .any(|m| m == "S256")
        {
            return Err(OidcError::Provider(
                "the provider does not offer PKCE with S256; enable it for this client".into(),
            ));
        }
        for u in [
            &meta.authorization_endpoint,
            &meta.token_endpoint,
            &meta.jwks_uri,
        ] {
            check_scheme(&parse_url(u)?).map_err(OidcError::Provider)?;
        }
        let keys = fetch_keys(http, &meta).await?;
        Ok(Provider { meta, keys })
    }

    /// Fetches the keys again (the provider rotated them).
    pub async fn refresh_keys(&mut self, http: &Http) -> Result<(), OidcError> {
        self.keys = fetch_keys(http, &self.meta).await?;
        Ok(())
    }

    /// Whether the token's `kid` is among the known keys (else refresh once).
    pub fn knows_key_of(&self, id_token: &str) -> bool {
        jsonwebtoken::decode_header(id_token)
            .ok()
            .and_then(|h| h.kid)
            .is_some_and(|kid| self.keys.find(&kid).is_some())
    }

    /// The ID token's claims once signature, issuer, audience, time and
    /// nonce are all right.
    pub fn verify(
        &self,
        id_token: &str,
        client_id: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        let bad = |m: String| OidcError::Token(m);
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| bad(format!("not a signed JWT: {e}")))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(bad(format!(
                "signed with {:?}, which is not accepted",
                header.alg
            )));
        }
        let jwk = match &header.kid {
            Some(kid) => self.keys.find(kid),
            // One key and no kid: that key.
            None if self.keys.keys.len() == 1 => self.keys.keys.first(),
            None => None,
        }
        .ok_or_else(|| bad("signed with a key the provider does not publish".into()))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(format!("provider key: {e}")))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[self.meta.issuer.as_str()]);
        v.set_audience(&[client_id]);
        // Times are checked below against the controller's clock.
        v.validate_exp = false;
        v.required_spec_claims = ["iss", "aud", "sub"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let claims: serde_json::Map<String, serde_json::Value> =
            jsonwebtoken::decode(id_token, &key, &v)
                .map_err(|e| bad(format!("rejected: {e}")))?
                .claims;
        check_times(&claims, now)?;
        check_nonce_and_azp(&claims, nonce, client_id)?;
        Ok(claims)
    }
}

/// Clock skew tolerated between the controller and the provider.
const LEEWAY_SECONDS: i64 = 120;

fn check_times(
    claims: &serde_json::Map<String, serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<(), OidcError> {
    let now = now.timestamp();
    let exp = claims.get("exp").and_then(|v| v.as_i64());
    match exp {
        Some(exp) if exp + LEEWAY_SECONDS < now => Err(OidcError::Token(
            "the ID token has expired (check the controller's clock against the provider's)".into(),
        )),
        Some(_) => match claims.get("iat").and_then(|v| v.as_i64()) {
            Some(iat) if iat - LEEWAY_SECONDS > now => Err(OidcError::Token(
                "the ID token was issued in the future (check the controller's clock)".into(),
            )),
            _ => Ok(()),
        },
        None => Err(OidcError::Token("the ID token has no expiry (exp)".into())),
    }
}

fn check_nonce_and_azp(
    claims: &serde_json::Map<String, serde_json::Value>,
    nonce: &str,
    client_id: &str,
) -> Result<(), OidcError> {
    let got = claims
        .get("nonce")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if !constant_time_eq(got.as_bytes(), nonce.as_bytes()) {
        return Err(OidcError::Token(
            "the ID token's nonce is not the one this login sent (a replayed token?)".into(),
        ));
    }
    match claims.get("azp").and_then(|v| v.as_str()) {
        Some(azp) if azp != client_id => Err(OidcError::Token(format!(
            "the ID token was issued to client {azp:?}, not to this controller"
        ))),
        _ => Ok(()),
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn fetch_keys(http: &Http, meta: &Discovery) -> Result<JwkSet, OidcError> {
    let url = parse_url(&meta.jwks_uri)?;
    get_json(http, &url, "key set (JWKS)").await
}

pub fn parse_url(s: &str) -> Result<Url, OidcError> {
    Url::parse(s).map_err(|e| OidcError::Setup(format!("{s:?} is not a URL: {e}")))
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &Http,
    url: &Url,
    what: &str,
) -> Result<T, OidcError> {
    let (status, body) = http.get(url).await?;
    if status != 200 {
        return Err(OidcError::Provider(format!(
            "{what} at {url}: HTTP {status}"
        )));
    }
    serde_json::from_slice(&body).map_err(|e| {
        OidcError::Provider(format!(
            "{what} at {url} is not what OpenID Connect defines: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn expired_and_future_tokens_are_refused() {
        let now = Utc::now();
        let t = now.timestamp();
        assert!(check_times(&claims(json!({"exp": t + 60, "iat": t})), now).is_ok());
        assert!(check_times(&claims(json!({"exp": t - 600, "iat": t - 900})), now).is_err());
        assert!(check_times(&claims(json!({"exp": t + 900, "iat": t + 600})), now).is_err());
        assert!(check_times(&claims(json!({"iat": t})), now).is_err());
    }

    #[test]
    fn nonce_and_authorised_party_must_match() {
        let ok = claims(json!({"nonce": "n1", "azp": "cadang"}));
        assert!(check_nonce_and_azp(&ok, "n1", "cadang").is_ok());
        assert!(check_nonce_and_azp(&ok, "n2", "cadang").is_err());
        assert!(check_nonce_and_azp(&ok, "n1", "other").is_err());
        assert!(check_nonce_and_azp(&claims(json!({})), "n1", "cadang").is_err());
    }
}
