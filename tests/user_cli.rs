//! `cadang user` with the real binary on a controller's state: the first
//! admin's password after `controller init`, adding people with roles (an
//! operator without NIP refused), list, disable, roles, every change in
//! the audit log; refused while the state is held by a running controller.

mod common;

use cadang_controller::audit::{AuditLog, RedbAuditLog};
use cadang_controller::state::{users, State};
use common::*;

const NIP: &str = "198111072008042001";
const PASSWORD: &str = "kata sandi yang panjang";

fn user_cmd(args: &[&str]) -> std::process::Output {
    cadang(args)
        .env("CADANG_USER_PASSWORD", PASSWORD)
        .env("USER", "ops")
        .output()
        .expect("cadang runs")
}

#[test]
fn people_are_managed_on_the_stopped_controllers_state_and_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ctl");
    let d = dir.to_str().unwrap();
    let init = ok(&[
        "controller",
        "init",
        "--dir",
        d,
        "--listen",
        "127.0.0.1:0",
        "--admin-name",
        "Admin Kominfo",
        "--admin-nip",
        NIP,
        "--regency",
        "Uji",
    ]);
    assert!(init.contains("cadang user reset"), "{init}");
    assert!(
        init.contains("'Admin Kominfo'"),
        "the name quoted for the shell: {init}"
    );
    let config = dir.join("controller.toml");
    let c = config.to_str().unwrap();

    let out = user_cmd(&["user", "reset", "--config", c, "Admin Kominfo"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = user_cmd(&[
        "user", "add", "--config", c, "--name", "siti", "--role", "operator",
    ]);
    assert!(!out.status.success(), "an operator without an NIP");
    assert!(text(&out).contains("NIP"), "{}", text(&out));
    let out = user_cmd(&[
        "user",
        "add",
        "--config",
        c,
        "--name",
        "siti",
        "--nip",
        NIP,
        "--role",
        "operator",
        "--role",
        "custodian:dukcapil",
        "--token",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("cadang-api-1."),
        "the token is printed with --token"
    );
    let out = user_cmd(&[
        "user", "add", "--config", c, "--name", "x", "--nip", "123", "--role", "auditor",
    ]);
    assert!(!out.status.success(), "a malformed NIP is refused");
    let out = user_cmd(&["user", "disable", "--config", c, "siti"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = user_cmd(&["user", "roles", "--config", c, "siti", "--role", "auditor"]);
    assert!(out.status.success(), "{}", text(&out));
    let list = user_cmd(&["user", "list", "--config", c]);
    let list_text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.status.success());
    assert!(
        list_text.contains("siti") && list_text.contains("disabled"),
        "{list_text}"
    );

    // What the state holds now, and the audit trail of it.
    let state = State::open(&dir.join("state.redb")).unwrap();
    let admin = state
        .read(|t| users::get(t, "Admin Kominfo"))
        .unwrap()
        .unwrap();
    let hash = admin.password.clone().unwrap();
    assert!(hash.starts_with("argon2id$"), "{hash}");
    assert!(cadang_controller::console::password::verify(
        PASSWORD, &hash
    ));
    let siti = state.read(|t| users::get(t, "siti")).unwrap().unwrap();
    assert!(siti.disabled && siti.has("auditor") && !siti.has("operator"));
    let log = RedbAuditLog::open(state.clone()).unwrap();
    let actions: Vec<(String, String)> = log
        .entries(1, u64::MAX)
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.actor))
        .collect();
    for action in ["user.password", "user.add", "user.disable", "user.roles"] {
        assert!(
            actions
                .iter()
                .any(|(a, who)| a == action && who == "cli:ops"),
            "{action} missing: {actions:?}"
        );
    }
    // Held by another process (as by a running controller): refused, unchanged.
    let out = user_cmd(&["user", "enable", "--config", c, "siti"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("running controller"), "{}", text(&out));
    drop(log);
    drop(state);
}
