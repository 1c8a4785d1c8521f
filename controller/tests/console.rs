//! The console over real HTTPS against the daemon on port 0: login and
//! its cookie, CSRF refusals, lockout, session expiry on the controlled
//! clock, role scoping, every page in both languages under 100 KB, and
//! the message catalogues.

mod common;
mod console_common;

use cadang_controller::console::i18n::{self, Lang};
use cadang_controller::engine::Clock;
use cadang_controller::state::users::UserRecord;
use cadang_proto::api::Role;
use chrono::Duration;
use common::*;
use console_common::*;

const ADMIN: &str = "admin console";

async fn with_people() -> Controller {
    let c = Controller::start().await;
    add_user(&c, ADMIN, Some(NIP), vec![Role::Admin]);
    add_user(&c, "operator", Some(NIP), vec![Role::Operator]);
    add_user(
        &c,
        "wali dukcapil",
        Some(NIP),
        vec![Role::Custodian {
            pds: vec![PD.into()],
        }],
    );
    add_user(&c, "inspektorat", None, vec![Role::Auditor]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sets_a_strict_session_cookie_and_logout_ends_the_session() {
    let c = with_people().await;
    let mut b = Browser::new(&c);
    // Not signed in: to the login form, coming back afterwards.
    let r = b.get("/console/fleet").await;
    assert_eq!(r.status, 303);
    assert!(
        r.header("location").unwrap().starts_with("/console/login"),
        "{:?}",
        r.headers
    );

    let r = b.login(ADMIN, PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/console/fleet"));
    let cookie = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-cadang-session="))
        .expect("a session cookie")
        .to_string();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    // 256 random bits, never the stored key.
    let id = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert_eq!(id.len(), 43, "{id}");
    let stored = c
        .app
        .state
        .read(|txn| {
            use redb::ReadableTable;
            let t = txn.open_table(cadang_controller::state::SESSIONS)?;
            let keys: Vec<String> = t
                .iter()?
                .map(|i| i.unwrap().0.value().to_string())
                .collect();
            Ok(keys)
        })
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], id, "the session id itself must not be stored");

    let page = b.get("/console/fleet").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(PD));
    // The API answers the console's session too (the approval script).
    let api = b.get("/api/v1/fleet").await;
    assert_eq!(api.status, 200, "{}", api.body);
    let ok = audit_entries(&c, "user.login");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].outcome, "ok");
    assert_eq!(ok[0].actor, NIP);

    let csrf = page.hidden("csrf").unwrap();
    let out = b.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(!b.jar.contains_key("__Host-cadang-session"));
    assert_eq!(audit_entries(&c, "user.logout").len(), 1);
    // The old cookie is worth nothing now.
    b.jar.insert("__Host-cadang-session".into(), id.to_string());
    assert_eq!(b.get("/console/fleet").await.status, 303);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_without_the_sessions_csrf_token_is_refused() {
    let c = with_people().await;
    let mut b = Browser::new(&c);
    assert_eq!(b.login(ADMIN, PASSWORD).await.status, 303);
    let csrf = b.csrf().await;
    let add = |token: &'static str| {
        vec![
            ("name", "baru"),
            ("password", PASSWORD),
            ("auditor", "1"),
            ("csrf", token),
        ]
    };
    let mut without = add("");
    without.pop();
    assert_eq!(b.post("/console/users", &without).await.status, 403);
    assert_eq!(b.post("/console/users", &add("forged")).await.status, 403);
    let nobody = c
        .app
        .state
        .read(|t| cadang_controller::state::users::get(t, "baru"))
        .unwrap();
    assert!(nobody.is_none(), "a refused POST changed nothing");
    // The API with the cookie needs the header.
    let body =
        serde_json::json!({"name": "x", "nip": null, "role": {"role": "auditor"}}).to_string();
    let r = b
        .request(
            "POST",
            "/api/v1/users",
            Some((body, "application/json")),
            &[],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    let mut fields = add("");
    fields.pop();
    fields.push(("csrf", &csrf));
    let r = b.post("/console/users", &fields).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(user(&c, "baru").has("auditor"));
    assert_eq!(audit_entries(&c, "user.add").len(), 1);

    // The login form has its own token: a forged login is refused too.
    let mut fresh = Browser::new(&c);
    let r = fresh
        .post(
            "/console/login",
            &[("user", ADMIN), ("password", PASSWORD), ("csrf", "x")],
        )
        .await;
    assert_eq!(r.status, 403);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_lock_the_account_for_fifteen_minutes_audited() {
    let c = with_people().await;
    let mut b = Browser::new(&c);
    for i in 1..=5 {
        let r = b.login("operator", "salah salah salah").await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let locked = user(&c, "operator");
    assert!(locked.locked_at(c.clock.now()).is_some(), "{locked:?}");
    let lockouts = audit_entries(&c, "user.lockout");
    assert_eq!(lockouts.len(), 1);
    assert_eq!(lockouts[0].subject, "user:operator");
    let refused = audit_entries(&c, "user.login");
    assert_eq!(refused.len(), 5);
    assert!(refused.iter().all(|e| e.outcome == "refused"));
    // The right password does not help while locked.
    let r = b.login("operator", PASSWORD).await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("dikunci"), "{}", r.body);
    c.clock.advance(Duration::minutes(16));
    let r = b.login("operator", PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(user(&c, "operator").failed_logins, 0);
    // An unknown name is refused the same way, and audited.
    let r = b.login("tidak ada", PASSWORD).await;
    assert_eq!(r.status, 401);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_after_thirty_idle_minutes_and_after_twelve_hours() {
    let c = with_people().await;
    let mut b = Browser::new(&c);
    assert_eq!(b.login(ADMIN, PASSWORD).await.status, 303);
    // Used every 25 minutes, it lives until the absolute limit.
    for _ in 0..28 {
        c.clock.advance(Duration::minutes(25));
        assert_eq!(b.get("/console/fleet").await.status, 200);
    }
    // 11 h 40 min so far; 25 more minutes pass 12 hours.
    c.clock.advance(Duration::minutes(25));
    assert_eq!(b.get("/console/fleet").await.status, 303);

    assert_eq!(b.login(ADMIN, PASSWORD).await.status, 303);
    c.clock.advance(Duration::minutes(29));
    assert_eq!(b.get("/console/fleet").await.status, 200);
    c.clock.advance(Duration::minutes(31));
    let r = b.get("/console/fleet").await;
    assert_eq!(r.status, 303, "idle for 31 minutes");
    // A POST with an expired session is refused, not redirected.
    assert_eq!(
        b.post("/console/logout", &[("csrf", "x")]).await.status,
        403
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custodian_sees_and_acts_on_their_pd_only() {
    let c = with_people().await;
    let mut b = Browser::new(&c);
    assert_eq!(b.login("wali dukcapil", PASSWORD).await.status, 303);
    let fleet = b.get("/console/fleet").await;
    assert_eq!(fleet.status, 200);
    assert!(fleet.body.contains(PD));
    assert!(!fleet.body.contains(OTHER_PD), "another PD in the fleet");
    assert_eq!(b.get(&format!("/console/pds/{PD}")).await.status, 200);
    assert_eq!(b.get(&format!("/console/pds/{OTHER_PD}")).await.status, 403);
    assert_eq!(
        b.get(&format!("/console/jobs?pd={OTHER_PD}")).await.status,
        403
    );
    assert_eq!(b.get("/console/users").await.status, 403);
    let csrf = b.csrf().await;
    let r = b
        .post(
            "/console/users",
            &[("name", "x"), ("password", PASSWORD), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 403);
    // Same rule on the API with the session cookie.
    let api = b.get(&format!("/api/v1/pds/{OTHER_PD}/snapshots")).await;
    assert_eq!(api.status, 403);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reads_everything_and_changes_nothing() {
    let c = with_people().await;
    let mut b = Browser::new(&c);
    assert_eq!(b.login("inspektorat", PASSWORD).await.status, 303);
    for path in [
        "/console/fleet".to_string(),
        format!("/console/pds/{PD}"),
        format!("/console/pds/{OTHER_PD}"),
        "/console/jobs".into(),
        "/console/restores".into(),
        "/console/reports".into(),
        "/console/audit".into(),
    ] {
        let r = b.get(&path).await;
        assert_eq!(r.status, 200, "{path}");
        // The only form that posts is signing out.
        assert_eq!(
            r.body.matches("method=\"post\"").count(),
            1,
            "{path} offers an auditor a form"
        );
    }
    assert_eq!(b.get("/console/users").await.status, 403);
    let csrf = b.csrf().await;
    for (path, fields) in [
        (
            "/console/users",
            vec![("name", "x"), ("password", PASSWORD)],
        ),
        ("/console/users/operator", vec![("action", "disable")]),
    ] {
        let mut fields = fields;
        fields.push(("csrf", &csrf));
        assert_eq!(b.post(path, &fields).await.status, 403, "{path}");
    }
    assert!(!user(&c, "operator").disabled);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_disables_a_user_and_their_session_ends_at_once() {
    let c = with_people().await;
    let mut op = Browser::new(&c);
    assert_eq!(op.login("operator", PASSWORD).await.status, 303);
    assert_eq!(op.get("/console/jobs").await.status, 200);
    let mut admin = Browser::new(&c);
    assert_eq!(admin.login(ADMIN, PASSWORD).await.status, 303);
    let csrf = admin.csrf().await;
    let r = admin
        .post(
            "/console/users/operator",
            &[("action", "disable"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(op.get("/console/jobs").await.status, 303);
    assert_eq!(op.login("operator", PASSWORD).await.status, 401);
    // A new password and roles, checked as a new user is.
    let r = admin
        .post(
            "/console/users/inspektorat",
            &[("action", "roles"), ("operator", "1"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 400, "an operator without an NIP: {}", r.body);
    assert!(r.body.contains("NIP"));
    let r = admin
        .post(
            "/console/users/operator",
            &[
                ("action", "password"),
                ("password", "pendek"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    let actions: Vec<String> = ["user.disable"]
        .iter()
        .flat_map(|a| audit_entries(&c, a))
        .map(|e| e.subject)
        .collect();
    assert_eq!(actions, vec!["user:operator".to_string()]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_in_both_languages_with_every_message_and_under_100_kb() {
    let c = with_people().await;
    // A long audit log: the page shows the newest rows only.
    for i in 0..400 {
        c.app
            .record(
                cadang_controller::audit::NewEntry::new(
                    "controller",
                    "test.fill",
                    &format!("pd:{PD}"),
                    "ok",
                )
                .detail(serde_json::json!({ "i": i, "pad": "x".repeat(1000) })),
            )
            .unwrap();
    }
    let mut b = Browser::new(&c);
    assert_eq!(b.login(ADMIN, PASSWORD).await.status, 303);
    let pages = [
        "/console/fleet".to_string(),
        format!("/console/pds/{PD}"),
        "/console/jobs".into(),
        "/console/jobs?failed=1&kind=backup".into(),
        "/console/jobs/no-such-job".into(),
        "/console/restores".into(),
        "/console/reports".into(),
        "/console/audit".into(),
        "/console/audit?action=user.&from=2026-01-01".into(),
        "/console/users".into(),
        "/console/login".into(),
    ];
    for (lang, word) in [("id", "Keluar"), ("en", "Sign out")] {
        // The choice sticks in the cookie.
        assert_eq!(
            b.get(&format!("/console/fleet?lang={lang}")).await.status,
            200
        );
        for path in &pages {
            let r = b.get(path).await;
            assert!(r.status == 200 || r.status == 404, "{path}: {}", r.status);
            assert!(
                r.body.contains(&format!("<html lang=\"{lang}\"")),
                "{path} in {lang}"
            );
            assert!(
                !r.body.contains('⟦'),
                "{path} in {lang} misses a message: {}",
                r.body
            );
            assert!(
                r.body.len() < 100_000,
                "{path} in {lang}: {} bytes",
                r.body.len()
            );
            if r.status == 200 && !path.starts_with("/console/login") {
                assert!(r.body.contains(word), "{path} is not in {lang}");
            }
        }
    }
    let css = b.get("/console/assets/console.css").await;
    assert_eq!(css.status, 200);
    assert!(css.body.len() < 10_000);
    assert!(!css.body.contains("url("), "no external fonts or images");
    let csv = b.get("/console/audit/export?format=csv&action=test.").await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.body.lines().count(), 401, "header and every entry");
    let json: serde_json::Value = serde_json::from_str(
        &b.get("/console/audit/export?format=json&action=user.login")
            .await
            .body,
    )
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    c.stop().await;
}

#[test]
fn every_message_key_exists_in_both_catalogues_and_every_used_key_exists() {
    let id = i18n::parse(Lang::Id, i18n::ID_TOML).unwrap();
    let en = i18n::parse(Lang::En, i18n::EN_TOML).unwrap();
    let id_keys: Vec<&str> = id.keys().collect();
    let en_keys: Vec<&str> = en.keys().collect();
    for k in &id_keys {
        assert!(en_keys.contains(k), "{k} is in id.toml but not in en.toml");
    }
    for k in &en_keys {
        assert!(id_keys.contains(k), "{k} is in en.toml but not in id.toml");
    }
    // Every literal key a template or handler asks for.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut used = Vec::new();
    for dir in ["templates/console", "src/console"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for pat in [
                "t.m(\"",
                "t.f(\"",
                "refusal(StatusCode::FORBIDDEN, s.lang, \"",
                "s.lang, \"",
                "lang, \"",
            ] {
                for part in text.split(pat).skip(1) {
                    let key: String = part.chars().take_while(|c| *c != '"').collect();
                    if key.contains('.') && !key.contains('{') && !key.contains(' ') {
                        used.push((path.display().to_string(), key));
                    }
                }
            }
        }
    }
    assert!(used.len() > 100, "the scan found only {} keys", used.len());
    for (file, key) in used {
        assert!(
            id_keys.contains(&key.as_str()),
            "{file} uses {key}, missing from id.toml"
        );
    }
}

#[test]
fn a_user_stored_with_one_role_reads_as_a_list_of_that_role() {
    let old = r#"{"name":"a","nip":"198111072008042001","role":{"role":"custodian","pds":["DUKCAPIL"]},"created":"2026-01-01T00:00:00Z"}"#;
    let u: UserRecord = serde_json::from_str(old).unwrap();
    assert_eq!(
        u.roles,
        vec![Role::Custodian {
            pds: vec!["DUKCAPIL".into()]
        }]
    );
    assert!(u.is_custodian_of("DUKCAPIL") && !u.covers_pd("DINKES"));
    assert!(!u.disabled && u.password.is_none());
    let again: UserRecord = serde_json::from_str(&serde_json::to_string(&u).unwrap()).unwrap();
    assert_eq!(again, u);
}
