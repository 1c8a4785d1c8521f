//! The role table, the OpenAPI document and policy reload.

mod common;

use cadang_controller::api::auth::{Access, ROLE_NAMES, ROUTES};
use cadang_proto::api::{ReloadResponse, Role};
use common::*;

fn concrete(path: &str) -> String {
    path.replace("{host}", HOST).replace("{pd}", PD)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_roles_outside_the_table_and_callers_without_a_token() {
    let c = Controller::start().await;
    let mut tokens = vec![("admin", c.admin_token.clone())];
    for (name, role) in [
        ("operator", Role::Operator),
        (
            "custodian",
            Role::Custodian {
                pds: vec![PD.into()],
            },
        ),
        ("auditor", Role::Auditor),
    ] {
        tokens.push((name, c.user(&format!("user {name}"), role).await));
    }
    assert_eq!(tokens.len(), ROLE_NAMES.len());
    let mut checked = 0;
    for route in ROUTES {
        let Access::People(allowed) = route.access else {
            continue;
        };
        let path = concrete(route.path);
        let body = (route.method == "POST").then(|| b"{}".to_vec());
        let (status, _) = c
            .anonymous()
            .raw(route.method, &path, body.clone())
            .await
            .unwrap();
        assert_eq!(
            status, 401,
            "{} {} without a token",
            route.method, route.path
        );
        let (status, _) = c
            .person("cadang-api-1.bogus")
            .raw(route.method, &path, body.clone())
            .await
            .unwrap();
        assert_eq!(
            status, 401,
            "{} {} with an unknown token",
            route.method, route.path
        );
        for (role, token) in &tokens {
            let (status, text) = c
                .person(token)
                .raw(route.method, &path, body.clone())
                .await
                .unwrap();
            if allowed.contains(role) {
                assert!(
                    status != 401 && status != 403,
                    "{role} may call {} {}: {status} {}",
                    route.method,
                    route.path,
                    String::from_utf8_lossy(&text)
                );
            } else {
                assert_eq!(
                    status, 403,
                    "{role} must not call {} {}",
                    route.method, route.path
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 40);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custodian_sees_and_registers_only_their_pds() {
    let c = Controller::start().await;
    let other = c
        .user(
            "wali dinkes",
            Role::Custodian {
                pds: vec![OTHER_PD.into()],
            },
        )
        .await;
    let (status, _) = c
        .person(&other)
        .raw("GET", &format!("/api/v1/pds/{PD}/snapshots"), None)
        .await
        .unwrap();
    assert_eq!(status, 403);
    let fleet: cadang_proto::api::FleetStatus =
        c.person(&other).get("/api/v1/fleet").await.unwrap();
    assert!(fleet.pds.iter().all(|p| p.pd == OTHER_PD), "{fleet:?}");
    let creds = init_repository(&c.config, OTHER_PD).await;
    let req = cadang_proto::api::RegisterPd {
        pd: PD.into(),
        repo_id: creds.repo_id.to_string(),
        data_recipient: creds.data_recipient.clone(),
        repo_secret_json: String::from_utf8(creds.repo_secret.to_json()).unwrap_or_default(),
    };
    let r: cadang_controller::Result<serde_json::Value> =
        c.person(&other).post("/api/v1/pds", &req).await;
    assert_eq!(status_of(r), 403);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_needs_an_nip() {
    let c = Controller::start().await;
    let r: cadang_controller::Result<serde_json::Value> = c
        .admin()
        .post(
            "/api/v1/users",
            &cadang_proto::api::CreateUser {
                name: "op".into(),
                nip: None,
                role: Role::Operator,
            },
        )
        .await;
    assert_eq!(status_of(r), 400);
    c.stop().await;
}

#[test]
fn the_openapi_document_covers_every_route_and_nothing_else() {
    let doc = cadang_controller::api::openapi::spec();
    let json: serde_json::Value = serde_json::from_str(&doc.to_json().unwrap()).unwrap();
    assert!(json["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = json["paths"].as_object().unwrap();
    for route in ROUTES {
        let item = paths
            .get(route.path)
            .unwrap_or_else(|| panic!("{} missing from the OpenAPI document", route.path));
        assert!(
            item.get(route.method.to_lowercase()).is_some(),
            "{} {} missing",
            route.method,
            route.path
        );
    }
    let documented: usize = paths
        .values()
        .map(|p| {
            p.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "delete", "patch"].contains(&k.as_str()))
                .count()
        })
        .sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "the document lists an operation no route has"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_router_is_in_the_table() {
    // The authorisation layer refuses a route missing from the table with
    // 403 before any handler runs, so a route that answers anything but that
    // refusal to an admin is in the table; walk the document's paths.
    let c = Controller::start().await;
    let doc = cadang_controller::api::openapi::spec();
    for (path, item) in doc.paths.paths.iter() {
        for (method, present) in [("GET", item.get.is_some()), ("POST", item.post.is_some())] {
            if !present {
                continue;
            }
            let (status, text) = c
                .admin()
                .raw(method, &concrete(path), Some(b"{}".to_vec()))
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&text);
            assert!(
                !text.contains("not in the authorisation table"),
                "{method} {path}: {status} {text}"
            );
            assert!(
                !text.contains("no such route"),
                "{method} {path} is documented but not routed: {status} {text}"
            );
        }
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_reload_is_refused_and_the_running_set_stays() {
    let c = Controller::start().await;
    let before = c.app.policies().unwrap().fingerprint.clone();
    let dir = c.dir.join("policies");
    std::fs::write(
        dir.join("pd/dukcapil.toml"),
        pd_file(PD, HOST, "99 1 * * *"),
    )
    .unwrap();
    let (status, body) = c
        .admin()
        .raw("POST", "/api/v1/policies/reload", None)
        .await
        .unwrap();
    assert_eq!(status, 422);
    let err: cadang_proto::api::ApiError = serde_json::from_slice(&body).unwrap();
    assert!(
        err.details.iter().any(|d| d.contains("dukcapil.toml:")),
        "{err:?}"
    );
    assert_eq!(c.app.policies().unwrap().fingerprint, before);
    // A valid change is taken.
    std::fs::write(dir.join("pd/dukcapil.toml"), pd_file(PD, HOST, "0 3 * * *")).unwrap();
    let ok: ReloadResponse = c
        .admin()
        .post("/api/v1/policies/reload", &())
        .await
        .unwrap();
    assert_ne!(ok.fingerprint, before);
    assert_eq!(c.app.policies().unwrap().fingerprint, ok.fingerprint);
    c.stop().await;
}
