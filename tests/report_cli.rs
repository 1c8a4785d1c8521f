//! `cadang report verify|render` and `cadang audit verify` as an auditor
//! runs them: exit 0 when valid, 1 with a message naming what failed.

#[path = "../controller/tests/audit_common/mod.rs"]
mod audit_common;
mod common;
#[path = "../controller/tests/report_common/mod.rs"]
mod report_common;

use cadang_controller::audit::{segment, Auditor, MemoryAuditLog};
use cadang_controller::report::SignedDocument;
use common::{run, s, text};

fn write_report(dir: &std::path::Path) -> std::path::PathBuf {
    let doc = SignedDocument::sign_drill(&report_common::drill(1, 5 * 3600), &report_common::key())
        .unwrap();
    let path = dir.join("laporan.json");
    std::fs::write(&path, doc.to_bytes()).unwrap();
    path
}

fn key_hex() -> String {
    report_common::key().public().to_hex()
}

#[test]
fn report_verify_json_with_key_without_key_and_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let json = write_report(tmp.path());
    let key = key_hex();
    let out = run(&["report", "verify", s(&json), "--key", &key]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("signed by the trusted key"),
        "{}",
        text(&out)
    );

    let out = run(&["report", "verify", s(&json)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("only self-consistency"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains(&key),
        "prints the key id: {}",
        text(&out)
    );

    let other = report_common::other_key().public().to_hex();
    let out = run(&["report", "verify", s(&json), "--key", &other]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("not by the trusted key"),
        "{}",
        text(&out)
    );

    let mut bytes = std::fs::read(&json).unwrap();
    let at = bytes.windows(5).position(|w| w == b"drc\",").unwrap();
    bytes[at] = b'x';
    std::fs::write(&json, bytes).unwrap();
    let out = run(&["report", "verify", s(&json), "--key", &key]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("signature does not match"),
        "{}",
        text(&out)
    );
}

#[test]
fn report_render_pdf_and_html_then_verify_the_pdf() {
    let tmp = tempfile::tempdir().unwrap();
    let json = write_report(tmp.path());
    let pdf = tmp.path().join("laporan.pdf");
    let html = tmp.path().join("laporan.html");
    let out = run(&[
        "report",
        "render",
        s(&json),
        "--format",
        "pdf",
        "-o",
        s(&pdf),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&[
        "report",
        "render",
        s(&json),
        "--format",
        "html",
        "--lang",
        "en",
        "-o",
        s(&html),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("Restore drill report"));

    let key = key_hex();
    let out = run(&["report", "verify", s(&pdf), "--key", &key]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("exactly the rendering"),
        "{}",
        text(&out)
    );

    let mut bytes = std::fs::read(&pdf).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x20;
    std::fs::write(&pdf, bytes).unwrap();
    let out = run(&["report", "verify", s(&pdf), "--key", &key]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("INVALID"), "{}", text(&out));
}

#[test]
fn audit_verify_segments_intact_and_edited() {
    let a = Auditor::new(MemoryAuditLog::default(), audit_common::key(), 10);
    audit_common::fill(&a);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    segment::write_dir(&dir, &a.segments_after(0).unwrap()).unwrap();
    let key = audit_common::key().public().to_hex();
    let out = run(&["audit", "verify", "--segments", s(&dir), "--key", &key]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("25 entries"), "{}", text(&out));

    let path = dir.join("11-20.json");
    let edited = std::fs::read_to_string(&path).unwrap().replacen(
        "DISDUKCAPIL/restore/15",
        "DISDUKCAPIL/restore/99",
        1,
    );
    std::fs::write(&path, edited).unwrap();
    let out = run(&["audit", "verify", "--segments", s(&dir), "--key", &key]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("at entry 15"), "{}", text(&out));

    let other = audit_common::other_key().public().to_hex();
    std::fs::write(&path, a.segments_after(10).unwrap()[0].to_bytes()).unwrap();
    let out = run(&["audit", "verify", "--segments", s(&dir), "--key", &other]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("not signed by the given key"),
        "{}",
        text(&out)
    );
}

#[test]
fn audit_verify_a_state_copy_intact_and_with_an_entry_removed() {
    use cadang_controller::audit::store::AUDIT_ENTRIES;
    use cadang_controller::audit::RedbAuditLog;
    use cadang_controller::state::State;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state-copy.redb");
    {
        let state = State::open(&path).unwrap();
        let a = Auditor::new(RedbAuditLog::open(state).unwrap(), audit_common::key(), 10);
        audit_common::fill(&a);
    }
    let key = audit_common::key().public().to_hex();
    let out = run(&["audit", "verify", "--state", s(&path), "--key", &key]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    {
        let state = State::open(&path).unwrap();
        state
            .write(|txn| {
                txn.open_table(AUDIT_ENTRIES)?.remove(17u64)?;
                Ok(())
            })
            .unwrap();
    }
    let out = run(&["audit", "verify", "--state", s(&path), "--key", &key]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("at entry 17"), "{}", text(&out));
}
