//! Enrollment: the agent verifies the controller against the CA
//! fingerprint in the token before it sends anything, and stores what it
//! receives with mode 0600.

mod daemon_support;

use std::os::unix::fs::PermissionsExt;

use cadang_agent::daemon::{self, AgentConfig, DaemonError, EnrollOptions, EnrollmentToken};
use daemon_support as fake;

async fn controller(dir: &std::path::Path) -> fake::FakeController {
    let (_, grant, store) = fake::repository(dir).await;
    let fc = fake::start(
        fake::pki("cadang"),
        fake::policy("srv-dinkes", dir, "0 2 * * *"),
    )
    .await;
    fc.with(|s| s.grant = Some((grant, store)));
    fc
}

#[tokio::test]
async fn enrollment_stores_keys_certificate_grant_and_policy_privately() {
    let dir = tempfile::tempdir().unwrap();
    let fc = controller(dir.path()).await;
    let state = dir.path().join("agent");
    let config = daemon::enroll(EnrollOptions {
        controller: fc.url(),
        token: fc.token(),
        state_dir: state.clone(),
        host: "srv-dinkes".into(),
    })
    .await
    .unwrap();
    assert_eq!(config.host, "srv-dinkes");
    assert_eq!(config.agent_id, "agent-srv-dinkes");
    assert_eq!(config.pd, "DINKES");
    assert_eq!(
        AgentConfig::load(&state.join("agent.toml")).unwrap(),
        config
    );
    let p = config.paths();
    for f in [
        p.tls_key(),
        p.client_cert(),
        p.ca_cert(),
        p.age_identity(),
        p.credentials(),
        p.store(),
        p.policy(),
        p.config(),
    ] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    let creds = cadang_core::keys::Credentials::from_json(&std::fs::read(p.credentials()).unwrap())
        .unwrap();
    assert_eq!(creds.pd, "DINKES");
    assert!(creds.agent_key().is_ok());
    assert!(std::fs::read_to_string(p.age_identity())
        .unwrap()
        .starts_with("AGE-SECRET-KEY-"));
    // A second enrollment into the same directory is refused.
    let again = daemon::enroll(EnrollOptions {
        controller: fc.url(),
        token: fc.token(),
        state_dir: state.clone(),
        host: "srv-dinkes".into(),
    })
    .await
    .unwrap_err();
    assert!(
        matches!(again, DaemonError::AlreadyEnrolled { .. }),
        "{again}"
    );
}

#[tokio::test]
async fn a_controller_whose_ca_does_not_match_the_token_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fc = controller(dir.path()).await;
    let other = fake::pki("impostor");
    let token = EnrollmentToken {
        secret: fc.token().secret,
        ca_fingerprint: fake::fingerprint(&other.ca_der),
    };
    let state = dir.path().join("agent");
    let err = daemon::enroll(EnrollOptions {
        controller: fc.url(),
        token: token.clone(),
        state_dir: state.clone(),
        host: "srv-dinkes".into(),
    })
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, DaemonError::WrongController { .. }),
        "{message}"
    );
    assert!(
        message.contains("is not the one that issued this token"),
        "{message}"
    );
    assert!(message.contains(&token.ca_fingerprint_hex()), "{message}");
    assert!(
        message.contains(&hex::encode(fake::fingerprint(&fc.pki.ca_der))),
        "{message}"
    );
    assert_eq!(
        fc.with(|s| s.enroll_requests),
        0,
        "the token secret never left the agent"
    );
    assert!(!state.join("agent.toml").exists());
}

#[tokio::test]
async fn a_refused_token_shows_the_controllers_message_and_a_dead_one_says_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let fc = controller(dir.path()).await;
    fc.with(|s| s.refuse_enrollment = Some("token expired at 2026-12-02T10:00:00Z".into()));
    let err = daemon::enroll(EnrollOptions {
        controller: fc.url(),
        token: fc.token(),
        state_dir: dir.path().join("a"),
        host: "srv-dinkes".into(),
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, DaemonError::Refused { status: 403, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("token expired at 2026-12-02T10:00:00Z"),
        "{err}"
    );

    // Nothing listens on a port we just closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = daemon::enroll(EnrollOptions {
        controller: format!("https://localhost:{port}"),
        token: fc.token(),
        state_dir: dir.path().join("b"),
        host: "srv-dinkes".into(),
    })
    .await
    .unwrap_err();
    assert!(matches!(err, DaemonError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains("cannot reach the controller"),
        "{err}"
    );
}
