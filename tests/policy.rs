//! `cadang policy check` and `cadang policy explain` on the shipped
//! example regency and on broken copies of it.

mod common;

use std::path::{Path, PathBuf};

use common::{run, s, text};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies/examples/kabupaten-contoh")
}

/// A copy of the example in a temporary directory, with `edit` applied to
/// one PD file.
fn broken_copy(file: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&example(), dir.path());
    let path = dir.path().join(file);
    let original = std::fs::read_to_string(&path).unwrap();
    let edited = edit(original.clone());
    assert_ne!(original, edited, "the edit must change {file}");
    std::fs::write(&path, edited).unwrap();
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn shipped_example_is_valid() {
    let out = run(&["policy", "check", s(&example())]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "4 PDs, 5 hosts, 7 sources: valid"
    );
    let json = run(&["policy", "check", "--json", s(&example())]);
    assert_eq!(json.status.code(), Some(0), "{}", text(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v, serde_json::json!([]));
}

/// Three errors in two files: a bad cron, a typo'd key and a malformed NIP.
fn three_errors() -> tempfile::TempDir {
    let dir = broken_copy("pd/dinkes.toml", |t| {
        t.replace("schedule = \"30 23 * * *\"", "schedule = \"30 24 * * *\"")
            .replace("[verification]", "[verifikasi]")
    });
    let bpkad = dir.path().join("pd/bpkad.toml");
    let t = std::fs::read_to_string(&bpkad).unwrap();
    std::fs::write(
        &bpkad,
        t.replace("197908242005022003", "197908242005023003"),
    )
    .unwrap();
    dir
}

#[test]
fn broken_set_exits_1_with_every_error_located() {
    let dir = three_errors();
    let out = run(&["policy", "check", s(dir.path())]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let p = |f: &str| dir.path().join(f).display().to_string();
    // The example file grows; the table's line is read from it.
    let dinkes = std::fs::read_to_string(dir.path().join("pd/dinkes.toml")).unwrap();
    let table_line = 1 + dinkes
        .lines()
        .position(|l| l.starts_with("[verifikasi]"))
        .expect("the broken table is in the file");
    for located in [
        format!("{}:12:22: error: malformed NIP", p("pd/bpkad.toml")),
        format!("{}:7:16: error: bad `schedule`", p("pd/dinkes.toml")),
        format!(
            "{}:{table_line}:2: error: unknown key `verifikasi`",
            p("pd/dinkes.toml")
        ),
    ] {
        assert!(
            stdout.contains(&located),
            "missing `{located}` in:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("  |\n7 | schedule = \"30 24 * * *\"            # after office hours, inside the window\n  |                ^\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("= hint: did you mean `verification`?"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("3 errors"),
        "{}",
        text(&out)
    );
}

#[test]
fn broken_set_as_json() {
    let dir = three_errors();
    let out = run(&["policy", "check", "--json", s(dir.path())]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON array");
    let diags = v.as_array().expect("an array");
    assert_eq!(diags.len(), 3, "{v:#}");
    let nip = &diags[0];
    assert!(nip["file"].as_str().unwrap().ends_with("pd/bpkad.toml"));
    assert_eq!(
        (nip["line"].as_u64(), nip["column"].as_u64()),
        (Some(12), Some(22))
    );
    assert_eq!(nip["source_line"], "nip = \"197908242005023003\"");
    assert!(nip["message"].as_str().unwrap().contains("sex digit"));
    assert!(nip["hint"].is_string());
}

#[test]
fn explain_shows_local_and_utc_times() {
    let dir = example();
    let args = [
        "policy",
        "explain",
        "--dir",
        s(&dir),
        "DISDUKCAPIL",
        "--count",
        "2",
        "--now",
        "2026-12-03T10:00:00Z",
    ];
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("backup siak-db-01/siak  [0 2 * * *]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  2026-12-04 02:00 WITA  (2026-12-03 18:00 UTC)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  2026-12-05 02:00 WITA  (2026-12-04 18:00 UTC)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2026-12-03 22:00 WITA - 2026-12-04 05:00 WITA  (2026-12-03 14:00 UTC - 2026-12-03 21:00 UTC)"),
        "replication window: {stdout}"
    );
    for job in ["verification", "retention", "drill"] {
        assert!(
            stdout.contains(&format!("\n{job} ")),
            "{job} missing: {stdout}"
        );
    }
}

#[test]
fn explain_as_json() {
    let out = run(&[
        "policy",
        "explain",
        "--dir",
        s(&example()),
        "bpkad",
        "--count",
        "1",
        "--json",
        "--now",
        "2026-12-03T10:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["pd"], "BPKAD");
    assert_eq!(v["abbreviation"], "WITA");
    let backup = &v["jobs"][0];
    assert_eq!(backup["kind"], "backup");
    assert_eq!(backup["name"], "keuangan-db-01/keuangan");
    // `0 12,23 * * *` at 18:00 WITA on the 3rd: next is 23:00 WITA that day.
    assert_eq!(backup["runs"][0]["start"]["local"], "2026-12-03 23:00 WITA");
    assert_eq!(backup["runs"][0]["start"]["at"], "2026-12-03T15:00:00Z");
}

#[test]
fn explain_refuses_an_unknown_pd_and_a_broken_set() {
    let out = run(&["policy", "explain", "--dir", s(&example()), "DINSOS"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("its PDs are: BPKAD, DINKES, DISDUKCAPIL, DISKOMINFO"),
        "{}",
        text(&out)
    );
    let dir = three_errors();
    let out = run(&["policy", "explain", "--dir", s(dir.path()), "DINKES"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("error: malformed NIP"),
        "{}",
        text(&out)
    );
}
