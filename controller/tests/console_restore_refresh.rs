//! A restore request's console page reloads itself (a `<meta
//! http-equiv="refresh">`, no script) exactly while the request moves —
//! pending approval, approved and waiting for the agent, running — and
//! never while it shows the Wali Data the approve and reject forms.

mod common;
mod console_common;

use cadang_controller::console::restores::REFRESH_SECONDS;
use cadang_controller::engine::Clock;
use cadang_controller::state::restores::{self, RestoreRecord};
use cadang_proto::api::Role;
use cadang_proto::restore::RestoreRequest;
use common::*;
use console_common::*;

const STATES: [(&str, bool); 8] = [
    ("pending", true),
    ("approved", true),
    ("running", true),
    ("rejected", false),
    ("cancelled", false),
    ("expired", false),
    ("done", false),
    ("failed", false),
];

/// A request of `pd` in `state`, straight into the state.
fn request(c: &Controller, id: &str, pd: &str, state: &str) {
    let now = c.clock.now();
    let request: RestoreRequest = serde_json::from_value(serde_json::json!({
        "id": id, "pd": pd, "snapshot": "a1b2c3d4e5f6a7b8", "what": {"type": "whole"},
        "agent_id": "agent-1", "agent_host": OTHER_HOST, "target": "/srv/pemulihan",
        "reason": "berkas terhapus", "expires": now + chrono::Duration::hours(24),
        "state": state, "filed": {"actor": NIP, "name": "operator", "at": now},
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

fn refreshes(body: &str) -> bool {
    let meta = format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">");
    match body.matches("http-equiv=\"refresh\"").count() {
        0 => false,
        1 => {
            assert!(body.contains(&meta), "an unexpected refresh: {body}");
            true
        }
        n => panic!("{n} refresh tags: {body}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_page_reloads_itself_exactly_while_the_request_moves() {
    let c = Controller::start().await;
    add_user(&c, "inspektorat", None, vec![Role::Auditor]);
    add_user(
        &c,
        "wali dinkes",
        Some(NIP),
        vec![Role::Custodian {
            pds: vec![OTHER_PD.into()],
        }],
    );
    for (i, (state, _)) in STATES.iter().enumerate() {
        request(&c, &format!("rr-00000000000{i}"), OTHER_PD, state);
    }
    let mut auditor = Browser::new(&c);
    assert_eq!(auditor.login("inspektorat", PASSWORD).await.status, 303);
    for (i, (state, expected)) in STATES.iter().enumerate() {
        let r = auditor
            .get(&format!("/console/restores/rr-00000000000{i}"))
            .await;
        assert_eq!(r.status, 200, "{state}: {}", r.body);
        assert_eq!(refreshes(&r.body), *expected, "state {state}");
    }
    // The list and the rest of the console do not reload themselves.
    assert!(!refreshes(&auditor.get("/console/restores").await.body));

    // The Wali Data deciding a pending request: the page stays put.
    let mut wali = Browser::new(&c);
    assert_eq!(wali.login("wali dinkes", PASSWORD).await.status, 303);
    let r = wali.get("/console/restores/rr-000000000000").await;
    assert!(r.body.contains("id=\"approve\""), "{}", r.body);
    assert!(!refreshes(&r.body), "a reload would wipe the passphrase");
    // Once approved (no form any more) it follows the request again.
    assert!(refreshes(
        &wali.get("/console/restores/rr-000000000001").await.body
    ));
    c.stop().await;
}
