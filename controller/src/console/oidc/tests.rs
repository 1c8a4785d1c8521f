use cadang_proto::api::Role;
use serde_json::json;

use super::*;

const NIP: &str = "198111072008042001";

fn user(name: &str, nip: Option<&str>, roles: Vec<Role>) -> UserRecord {
    UserRecord::new(name, nip.map(str::to_string), roles, Utc::now())
}

fn people() -> Vec<UserRecord> {
    vec![
        user(
            "wali",
            Some(NIP),
            vec![Role::Custodian {
                pds: vec!["DUKCAPIL".into()],
            }],
        ),
        user("auditor@kab.go.id", None, vec![Role::Auditor]),
        user("admin@kab.go.id", None, vec![Role::Admin]),
        user(
            "ops@kab.go.id",
            Some("198503122010011004"),
            vec![Role::Operator, Role::Auditor],
        ),
    ]
}

fn who(nip: Option<&str>, email: Option<&str>) -> SsoIdentity {
    SsoIdentity {
        sub: "s1".into(),
        nip: nip.map(str::to_string),
        email: email.map(str::to_string),
    }
}

#[test]
fn the_nip_claim_signs_in_the_user_with_that_nip_and_its_roles() {
    let u = match_user(&people(), &who(Some(NIP), None)).expect("matched");
    assert_eq!(u.name, "wali");
    assert!(u.is_custodian_of("DUKCAPIL"));
}

#[test]
fn an_unknown_or_invalid_nip_signs_in_nobody() {
    let e = match_user(&people(), &who(Some("199001012015031002"), None)).unwrap_err();
    assert!(e.contains("no cadang user has NIP"), "{e}");
    let e = match_user(&people(), &who(Some("12345"), None)).unwrap_err();
    assert!(e.contains("not valid"), "{e}");
}

#[test]
fn without_an_nip_only_an_auditor_without_nip_signs_in_by_email() {
    let u = match_user(&people(), &who(None, Some("Auditor@kab.go.id"))).expect("auditor");
    assert_eq!(u.roles, vec![Role::Auditor]);
    // An operator (who has an NIP in cadang) is not signed in without the claim,
    // even though the e-mail matches.
    let e = match_user(&people(), &who(None, Some("ops@kab.go.id"))).unwrap_err();
    assert!(e.contains("only an auditor"), "{e}");
    // An admin without NIP uses the password login.
    assert!(match_user(&people(), &who(None, Some("admin@kab.go.id"))).is_err());
    // Neither claim: nobody.
    assert!(match_user(&people(), &who(None, None)).is_err());
}

#[test]
fn a_disabled_user_is_refused() {
    let mut all = people();
    all[0].disabled = true;
    let e = match_user(&all, &who(Some(NIP), None)).unwrap_err();
    assert!(e.contains("disabled"), "{e}");
}

#[test]
fn an_unverified_email_is_not_used() {
    let claims = json!({"sub": "s", "email": "auditor@kab.go.id", "email_verified": false});
    let id = SsoIdentity::from_claims(claims.as_object().unwrap(), "nip");
    assert_eq!(id.email, None);
    let claims = json!({"sub": "s", "email": "a@b", "email_verified": true, "nip": NIP});
    let id = SsoIdentity::from_claims(claims.as_object().unwrap(), "nip");
    assert_eq!(id.email.as_deref(), Some("a@b"));
    assert_eq!(id.nip.as_deref(), Some(NIP));
}

#[test]
fn pkce_s256_matches_rfc7636_appendix_b() {
    assert_eq!(
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[test]
fn the_flow_cookie_is_lax_and_scoped_to_sso() {
    let c = flow_cookie("abc", 600);
    for part in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/console/sso",
        "Max-Age=600",
    ] {
        assert!(c.contains(part), "{c}");
    }
    let mut h = HeaderMap::new();
    h.insert(header::COOKIE, "lang=id; cadang_sso=xyz".parse().unwrap());
    assert_eq!(cookie(&h, FLOW_COOKIE).as_deref(), Some("xyz"));
    assert_eq!(cookie(&h, "nope"), None);
}

/// The refusal page speaks the browser's language from the catalogues,
/// keeps the operator's error (escaped) where the browser test reads it,
/// and answers with the status the error asks for.
#[tokio::test]
async fn the_refusal_page_comes_from_the_catalogues_in_both_languages() {
    for (lang, title, back) in [
        (
            Lang::Id,
            "Masuk dengan SSO gagal",
            "Masuk dengan kata sandi",
        ),
        (Lang::En, "SSO sign-in failed", "Sign in with a password"),
    ] {
        let resp = failure(OidcError::Refused("no NIP <here>".into()), lang);
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(!body.contains('⟦'), "a key is missing: {body}");
        assert!(!body.contains("<here>"), "the error is not escaped: {body}");
        for needle in [
            title,
            back,
            "id=\"sso-error\">no NIP &#60;here&#62;<",
            &format!("lang=\"{}\"", lang.code()),
        ] {
            assert!(body.contains(needle), "{needle} missing: {body}");
        }
    }
}
