//! Signed JSON reports: signing, offline verification, the verdict.

mod report_common;

use cadang_controller::report::drill::FailReason;
use cadang_controller::report::{verify_file, ReportError, SignedDocument};
use report_common::*;

fn signed_json() -> Vec<u8> {
    SignedDocument::sign_drill(&drill(2, 1800), &key())
        .unwrap()
        .to_bytes()
}

#[test]
fn signed_drill_report_verifies_with_and_without_the_trusted_key() {
    let bytes = signed_json();
    let trusted = key().public();
    let v = verify_file(&bytes, Some(&trusted)).unwrap();
    assert!(v.trusted);
    assert_eq!(v.key_id, trusted.to_hex());
    assert_eq!(v.document.drill().unwrap(), drill(2, 1800));
    let v = verify_file(&bytes, None).unwrap();
    assert!(!v.trusted, "without a key only self-consistency is claimed");
}

#[test]
fn every_single_changed_byte_in_the_json_fails_verification() {
    let bytes = signed_json();
    let trusted = key().public();
    for i in 0..bytes.len() {
        let mut changed = bytes.clone();
        changed[i] ^= 0x01;
        assert!(
            verify_file(&changed, Some(&trusted)).is_err(),
            "byte {i} ({:?}) changed and still valid",
            bytes[i] as char
        );
    }
}

#[test]
fn a_changed_value_re_canonicalised_fails_the_signature() {
    // A forger who edits a field and writes the file canonically again.
    let mut doc = SignedDocument::sign_drill(&drill(0, 1800), &key()).unwrap();
    doc.body["verdict"]["passed"] = serde_json::Value::Bool(true);
    doc.body["restore_seconds"] = serde_json::json!(60);
    let err = verify_file(&doc.to_bytes(), None).unwrap_err();
    assert!(matches!(err, ReportError::BadSignature), "{err}");
}

#[test]
fn a_report_signed_by_another_key_is_refused_against_the_trusted_key() {
    let bytes = SignedDocument::sign_drill(&drill(0, 1800), &other_key())
        .unwrap()
        .to_bytes();
    let err = verify_file(&bytes, Some(&key().public())).unwrap_err();
    assert!(matches!(err, ReportError::UntrustedKey { .. }), "{err}");
    // Self-consistent, though: it names the key that signed it.
    assert_eq!(
        verify_file(&bytes, None).unwrap().key_id,
        other_key().public().to_hex()
    );
}

#[test]
fn swapping_the_key_id_for_the_trusted_one_breaks_the_signature() {
    let mut doc = SignedDocument::sign_drill(&drill(0, 1800), &other_key()).unwrap();
    doc.key_id = key().public().to_hex();
    let err = verify_file(&doc.to_bytes(), Some(&key().public())).unwrap_err();
    assert!(matches!(err, ReportError::BadSignature), "{err}");
}

#[test]
fn reformatted_json_is_refused_as_not_canonical() {
    let doc = SignedDocument::sign_drill(&drill(0, 1800), &key()).unwrap();
    let pretty = serde_json::to_vec_pretty(&doc).unwrap();
    let err = verify_file(&pretty, None).unwrap_err();
    assert!(matches!(err, ReportError::NotCanonical(_)), "{err}");
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for input in [
        &b""[..],
        b"{",
        b"null",
        b"%PDF-1.7 nothing",
        b"{\"body\":1}",
    ] {
        assert!(verify_file(input, None).is_err());
    }
}

#[test]
fn verdict_passes_within_objectives_and_fails_with_each_reason() {
    let ok = drill(0, 1800);
    assert!(ok.verdict.passed && ok.verdict.reasons.is_empty());
    let bad = drill(3, 5 * 3600);
    assert!(!bad.verdict.passed);
    assert!(bad
        .verdict
        .reasons
        .contains(&FailReason::Verification { mismatches: 3 }));
    assert!(bad.verdict.reasons.contains(&FailReason::OverRto {
        seconds: 5 * 3600,
        rto_seconds: 4 * 3600
    }));
    let mut old = drill(0, 1800);
    old.recovery_point_age_seconds = 30 * 3600;
    old.check.as_mut().unwrap().passed = false;
    let v = old.judge(vec![FailReason::DrDamaged {
        detail: "pack 3f… missing".into(),
    }]);
    assert_eq!(v.reasons.len(), 3, "{:?}", v.reasons);
    assert!(v.reasons.contains(&FailReason::CheckFailed));
}

#[test]
fn compliance_summary_signs_and_verifies() {
    let doc = SignedDocument::sign_summary(&summary(), &key()).unwrap();
    let v = verify_file(&doc.to_bytes(), Some(&key().public())).unwrap();
    let s = v.document.summary().unwrap();
    let total = s.regency_total();
    assert_eq!((total.backups_done, total.backups_scheduled), (59, 60));
    assert!(
        v.document.drill().is_err(),
        "a summary is not a drill report"
    );
}

#[test]
fn store_files_are_json_and_pdf_under_reports_kind_id() {
    let doc = SignedDocument::sign_drill(&drill(0, 1800), &key()).unwrap();
    let files = cadang_controller::report::store_files(&doc).unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "reports/drill-report/drill-DISDUKCAPIL-42.json",
            "reports/drill-report/drill-DISDUKCAPIL-42.pdf"
        ]
    );
    for (_, bytes) in &files {
        verify_file(bytes, Some(&key().public())).unwrap();
    }
    let mut hostile = drill(0, 1800);
    hostile.report_id = "../../keys/identity.age".into();
    let doc = SignedDocument::sign_drill(&hostile, &key()).unwrap();
    assert!(cadang_controller::report::store_files(&doc).is_err());
}
