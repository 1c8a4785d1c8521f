//! The console's restore pages over real HTTPS: custodians see and decide
//! their PD's requests only, the approval page hands the browser script
//! what it needs (and no secret), auditors get no form and a 403 on POST.

mod common;
mod console_common;

use cadang_controller::engine::Clock;
use cadang_controller::state::restores::{self, RestoreRecord};
use cadang_proto::api::Role;
use cadang_proto::restore::{RestoreRequest, RestoreState};
use common::*;
use console_common::*;

/// A pending request of `pd`, straight into the state.
fn pending(c: &Controller, id: &str, pd: &str) {
    let now = c.clock.now();
    let request: RestoreRequest = serde_json::from_value(serde_json::json!({
        "id": id, "pd": pd, "snapshot": "a1b2c3d4e5f6a7b8", "what": {"type": "whole"},
        "agent_id": "agent-1", "agent_host": OTHER_HOST, "target": "/srv/pemulihan",
        "reason": "berkas terhapus", "expires": now + chrono::Duration::hours(24),
        "state": "pending", "filed": {"actor": NIP, "name": "operator", "at": now},
    }))
    .expect("a restore request from JSON");
    c.app
        .state
        .write(|txn| {
            restores::put(
                txn,
                &RestoreRecord {
                    request,
                    envelope: None,
                },
            )
        })
        .unwrap();
}

fn state_of(c: &Controller, id: &str) -> RestoreState {
    c.app
        .state
        .read(|txn| restores::get(txn, id))
        .unwrap()
        .unwrap()
        .request
        .state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custodians_see_and_decide_their_pds_requests_only_auditors_none() {
    let c = Controller::start().await;
    add_user(
        &c,
        "wali dukcapil",
        Some(NIP),
        vec![Role::Custodian {
            pds: vec![PD.into()],
        }],
    );
    add_user(
        &c,
        "wali dinkes",
        Some(NIP),
        vec![Role::Custodian {
            pds: vec![OTHER_PD.into()],
        }],
    );
    add_user(&c, "inspektorat", None, vec![Role::Auditor]);
    pending(&c, "rr-000000000001", OTHER_PD);
    pending(&c, "rr-000000000002", OTHER_PD);
    let page = "/console/restores/rr-000000000001";

    // The custodian of another PD: not in the list, 403 on the page and the POST.
    let mut other = Browser::new(&c);
    assert_eq!(other.login("wali dukcapil", PASSWORD).await.status, 303);
    let list = other.get("/console/restores").await;
    assert_eq!(list.status, 200);
    assert!(
        !list.body.contains("rr-000000000001"),
        "another PD's request listed"
    );
    assert_eq!(other.get(page).await.status, 403);
    let csrf = other.csrf().await;
    let r = other
        .post(
            &format!("{page}/reject"),
            &[("reason", "bukan milik saya"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(state_of(&c, "rr-000000000001"), RestoreState::Pending);

    // The auditor reads it but gets no form, and the POST is refused.
    let mut auditor = Browser::new(&c);
    assert_eq!(auditor.login("inspektorat", PASSWORD).await.status, 303);
    let r = auditor.get(page).await;
    assert_eq!(r.status, 200);
    assert!(
        !r.body.contains("id=\"approve\""),
        "an auditor is offered the approval"
    );
    assert_eq!(
        r.body.matches("method=\"post\"").count(),
        1,
        "only sign out"
    );
    let csrf = auditor.csrf().await;
    let r = auditor
        .post(
            &format!("{page}/reject"),
            &[("reason", "x"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 403);

    // The PD's Wali Data: the approval form for the browser script, and reject.
    let mut wali = Browser::new(&c);
    assert_eq!(wali.login("wali dinkes", PASSWORD).await.status, 303);
    for lang in ["id", "en"] {
        let r = wali.get(&format!("{page}?lang={lang}")).await;
        assert_eq!(r.status, 200);
        assert!(!r.body.contains('⟦'), "{}", r.body);
        assert!(r.body.len() < 100_000);
        for needle in [
            "id=\"approve\"",
            "data-request=\"rr-000000000001\"",
            "data-material=\"/api/v1/restores/rr-000000000001/approval-material\"",
            "data-approve=\"/api/v1/restores/rr-000000000001/approve\"",
            "data-csrf=\"",
            "id=\"passphrase\"",
            "id=\"approve-status\"",
            "src=\"/console/assets/js/approve.js\"",
        ] {
            assert!(r.body.contains(needle), "{needle} missing ({lang})");
        }
        assert!(
            !r.body.contains("AGE-SECRET-KEY"),
            "no key material in the page"
        );
    }
    let csrf = wali.csrf().await;
    let r = wali
        .post(
            &format!("{page}/reject"),
            &[("reason", ""), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 400, "a rejection needs a reason");
    let r = wali
        .post(
            &format!("{page}/reject"),
            &[("reason", "tidak ada dasar hukum"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(state_of(&c, "rr-000000000001"), RestoreState::Rejected);
    assert_eq!(audit_entries(&c, "restore.reject").len(), 1);
    // Decided: no more approval form.
    assert!(!wali.get(page).await.body.contains("id=\"approve\""));

    // The operator cancels the other one from the console.
    add_user(&c, "operator", Some(NIP), vec![Role::Operator]);
    let mut op = Browser::new(&c);
    assert_eq!(op.login("operator", PASSWORD).await.status, 303);
    let csrf = op.csrf().await;
    let list = op.get("/console/restores").await;
    assert!(
        list.body.contains("id=\"file-restore\""),
        "operators get the filing form"
    );
    let r = op
        .post(
            "/console/restores/rr-000000000002/cancel",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(state_of(&c, "rr-000000000002"), RestoreState::Cancelled);
    // Filing for an unknown agent is refused with the restore module's reason.
    let r = op
        .post(
            "/console/restores",
            &[
                ("pd", PD),
                ("snapshot", "latest"),
                ("what", "whole"),
                ("agent", "nope"),
                ("target", "/srv/x"),
                ("reason", "uji"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert!(
        r.status >= 400 && r.status < 500,
        "{}: {}",
        r.status,
        r.body
    );
    c.stop().await;
}
