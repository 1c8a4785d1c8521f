//! Passwords, hashed with argon2id (RFC 9106) in a PHC-like string:
//! `argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>` (base64, no padding).
//! The parameters are stored with each hash, so raising them later keeps
//! old hashes verifiable.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;

use super::ConsoleError;

/// OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): ~30 ms here.
const M_COST: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUT_LEN: usize = 32;
/// Shorter passwords are refused when set.
pub const MIN_LENGTH: usize = 12;
/// Longer ones too: argon2 hashes anything, but a megabyte "password" is
/// a denial of service, not a secret.
pub const MAX_LENGTH: usize = 1024;

/// Checks a new password's length (characters).
pub fn check_new(password: &str) -> Result<(), ConsoleError> {
    let n = password.chars().count();
    if n < MIN_LENGTH || password.len() > MAX_LENGTH {
        return Err(ConsoleError::WeakPassword { min: MIN_LENGTH });
    }
    Ok(())
}

fn hasher(m: u32, t: u32, p: u32) -> Result<Argon2<'static>, ConsoleError> {
    let params = Params::new(m, t, p, Some(OUT_LEN))
        .map_err(|e| ConsoleError::Password(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a new password with a fresh 16-byte salt.
pub fn hash(password: &str) -> Result<String, ConsoleError> {
    check_new(password)?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| ConsoleError::Password(format!("the OS random source failed: {e}")))?;
    let mut out = [0u8; OUT_LEN];
    hasher(M_COST, T_COST, P_COST)?
        .hash_password_into(password.as_bytes(), &salt, &mut out)
        .map_err(|e| ConsoleError::Password(e.to_string()))?;
    Ok(format!(
        "argon2id$v=19$m={M_COST},t={T_COST},p={P_COST}${}${}",
        B64.encode(salt),
        B64.encode(out)
    ))
}

/// Whether `password` matches `stored` (compared in constant time). A
/// stored value that cannot be read never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    let Some((m, t, p, salt, want)) = parse(stored) else {
        return false;
    };
    if password.len() > MAX_LENGTH {
        return false;
    }
    let Ok(h) = hasher(m, t, p) else {
        return false;
    };
    let mut got = vec![0u8; want.len()];
    if h.hash_password_into(password.as_bytes(), &salt, &mut got)
        .is_err()
    {
        return false;
    }
    got.len() == want.len() && got.iter().zip(&want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Spends the time of one verification, for unknown users: the answer's
/// delay does not tell which names exist.
pub fn verify_dummy(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stored =
        DUMMY.get_or_init(|| hash("not a password, only a timing twin").unwrap_or_default());
    let _ = verify(password, stored);
}

type Parsed = (u32, u32, u32, Vec<u8>, Vec<u8>);

fn parse(stored: &str) -> Option<Parsed> {
    let mut parts = stored.split('$');
    if parts.next()? != "argon2id" || parts.next()? != "v=19" {
        return None;
    }
    let (mut m, mut t, mut p) = (None, None, None);
    for kv in parts.next()?.split(',') {
        let (k, v) = kv.split_once('=')?;
        let v: u32 = v.parse().ok()?;
        match k {
            "m" => m = Some(v),
            "t" => t = Some(v),
            "p" => p = Some(v),
            _ => return None,
        }
    }
    let salt = B64.decode(parts.next()?).ok()?;
    let want = B64.decode(parts.next()?).ok()?;
    if parts.next().is_some() || want.len() < 16 {
        return None;
    }
    Some((m?, t?, p?, salt, want))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("kata sandi panjang").unwrap();
        assert!(h.starts_with("argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("kata sandi panjang", &h));
        assert!(!verify("kata sandi panjanG", &h));
        assert!(!verify("", &h));
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_salt() {
        assert_ne!(
            hash("kata sandi panjang").unwrap(),
            hash("kata sandi panjang").unwrap()
        );
    }

    #[test]
    fn short_passwords_are_refused_and_damaged_hashes_never_match() {
        assert!(matches!(
            hash("pendek"),
            Err(ConsoleError::WeakPassword { .. })
        ));
        let h = hash("kata sandi panjang").unwrap();
        for bad in [
            "",
            "argon2i$v=19$m=19456,t=2,p=1$AAAA$AAAA",
            &h.replace("m=19456", "m=x"),
            &h[..h.len() - 10],
            &format!("{h}$extra"),
        ] {
            assert!(!verify("kata sandi panjang", bad), "{bad}");
        }
    }
}
