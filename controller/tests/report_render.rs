//! HTML and PDF renderings: language, escaping, determinism, and that a
//! PDF verifies only as the exact rendering of its signed JSON.

mod report_common;

use std::time::Instant;

use cadang_controller::report::{
    render_html, render_pdf, verify_file, Lang, ReportError, SignedDocument,
};
use report_common::*;

fn doc(mismatches: usize, restore_seconds: u64) -> SignedDocument {
    SignedDocument::sign_drill(&drill(mismatches, restore_seconds), &key()).unwrap()
}

#[test]
fn html_is_in_bahasa_indonesia_by_default() {
    let html = render_html(&doc(0, 1800), Lang::default()).unwrap();
    for term in [
        "lang=\"id\"",
        "Laporan uji pemulihan",
        "LULUS",
        "Wali Data",
        "Target waktu pemulihan (RTO)",
        "Target titik pemulihan (RPO)",
        "Ditandatangani secara digital",
        "Verifikasi",
        "Dipulihkan dari",
        "30 menit",
    ] {
        assert!(html.contains(term), "missing {term:?}");
    }
    assert!(!html.contains("Restore drill report"));
    let failed = render_html(&doc(2, 5 * 3600), Lang::Id).unwrap();
    assert!(failed.contains("GAGAL"));
    assert!(failed.contains("2 berkas tidak cocok dengan snapshot"));
    assert!(failed.contains("melebihi target waktu pemulihan (RTO)"));
}

#[test]
fn html_is_in_english_on_request() {
    let html = render_html(&doc(2, 5 * 3600), Lang::En).unwrap();
    for term in [
        "lang=\"en\"",
        "Restore drill report",
        "FAILED",
        "Recovery-time objective (RTO)",
        "Digitally signed",
        "2 files do not match the snapshot",
    ] {
        assert!(html.contains(term), "missing {term:?}");
    }
}

#[test]
fn html_escapes_report_content_and_has_no_external_resources() {
    let html = render_html(&doc(0, 1800), Lang::Id).unwrap();
    assert!(html.contains("Siti Rahmawati &#60;Wali&#62;") || html.contains("&lt;Wali&gt;"));
    assert!(!html.contains("<Wali>"));
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<link"));
}

#[test]
fn summary_html_lists_each_pd_and_the_regency_total() {
    let d = SignedDocument::sign_summary(&summary(), &key()).unwrap();
    let html = render_html(&d, Lang::Id).unwrap();
    assert!(html.contains("Ringkasan kepatuhan"));
    assert!(html.contains("BAPPEDA") && html.contains("DISDUKCAPIL"));
    assert!(html.contains("Jumlah kabupaten"));
    assert!(html.contains("59 / 60"));
}

#[test]
fn a_report_renders_identically_twice() {
    let d = doc(5, 1800);
    assert_eq!(
        render_html(&d, Lang::Id).unwrap(),
        render_html(&d, Lang::Id).unwrap()
    );
    let a = render_pdf(&d, Lang::Id).unwrap();
    let b = render_pdf(&d, Lang::Id).unwrap();
    assert!(a.starts_with(b"%PDF-"));
    assert_eq!(a, b);
    // And from the JSON file, as a verifier would.
    let again = SignedDocument::parse(&d.to_bytes()).unwrap();
    assert_eq!(render_pdf(&again, Lang::Id).unwrap(), a);
}

#[test]
fn the_pdf_carries_the_signed_json_and_verifies() {
    let d = doc(0, 1800);
    let pdf = render_pdf(&d, Lang::Id).unwrap();
    let json = d.to_bytes();
    let inner = &json[..json.len() - 1];
    assert!(pdf.windows(inner.len()).any(|w| w == inner));
    let v = verify_file(&pdf, Some(&key().public())).unwrap();
    assert_eq!(v.pdf_lang, Some(Lang::Id));
    assert_eq!(v.document, d);
    let en = render_pdf(&d, Lang::En).unwrap();
    assert_eq!(verify_file(&en, None).unwrap().pdf_lang, Some(Lang::En));
    let s = SignedDocument::sign_summary(&summary(), &key()).unwrap();
    assert!(verify_file(&render_pdf(&s, Lang::Id).unwrap(), Some(&key().public())).is_ok());
}

#[test]
fn a_changed_byte_anywhere_in_the_pdf_fails_verification() {
    let d = doc(0, 1800);
    let pdf = render_pdf(&d, Lang::Id).unwrap();
    let json = d.to_bytes();
    let json_at = pdf
        .windows(8)
        .position(|w| w == b"{\"body\":")
        .expect("embedded JSON");
    // Positions spread over the whole file, and some inside the JSON.
    let mut positions: Vec<usize> = (0..40).map(|i| i * (pdf.len() - 1) / 39).collect();
    positions.extend([
        json_at,
        json_at + 100,
        json_at + json.len() / 2,
        json_at + json.len() - 3,
    ]);
    for i in positions {
        let mut changed = pdf.clone();
        changed[i] ^= 0x01;
        assert!(
            verify_file(&changed, Some(&key().public())).is_err(),
            "byte {i} of {} changed and the PDF still verifies",
            pdf.len()
        );
    }
}

#[test]
fn a_pdf_rendered_from_another_report_with_this_json_spliced_in_fails() {
    // A forger renders a passing report and slips the real signed JSON in:
    // the bytes are not the rendering of the JSON they carry.
    let real = doc(3, 5 * 3600);
    let fake = render_pdf(&doc(0, 60), Lang::Id).unwrap();
    let mut spliced = fake.clone();
    spliced.extend_from_slice(&real.to_bytes());
    let err = verify_file(&spliced, Some(&key().public())).unwrap_err();
    assert!(matches!(err, ReportError::PdfMismatch), "{err}");
}

#[test]
fn the_pdf_of_100000_mismatches_summarises_them() {
    let d = doc(100_000, 1800);
    let pdf = render_pdf(&d, Lang::Id).unwrap();
    // The JSON (about 7 MB) is embedded; the pages list 30 rows, so the PDF is
    // barely bigger than the JSON.
    assert!(
        pdf.len() < d.to_bytes().len() + 200_000,
        "{} bytes",
        pdf.len()
    );
    let html = render_html(&d, Lang::Id).unwrap();
    assert!(html.contains("99000 berkas lain yang tidak cocok"));
}

/// Timing of JSON + HTML + PDF for a drill of 100,000 files, every one a
/// mismatch (the worst case). Not part of the suite; run with
/// `cargo test -p cadang-controller --release --test report_render -- --ignored --nocapture`.
#[test]
#[ignore = "timing: run by hand in release (command above)"]
fn timing_render_100000_files() {
    let report = drill(100_000, 1800);
    let start = Instant::now();
    let d = SignedDocument::sign_drill(&report, &key()).unwrap();
    let json = d.to_bytes();
    let t_json = start.elapsed();
    let html = render_html(&d, Lang::Id).unwrap();
    let t_html = start.elapsed() - t_json;
    let pdf = render_pdf(&d, Lang::Id).unwrap();
    let t_pdf = start.elapsed() - t_json - t_html;
    let total = start.elapsed();
    println!(
        "100000 files: json {:?} ({} B), html {:?} ({} B), pdf {:?} ({} B), total {:?}",
        t_json,
        json.len(),
        t_html,
        html.len(),
        t_pdf,
        pdf.len(),
        total
    );
    let v_start = Instant::now();
    verify_file(&pdf, Some(&key().public())).unwrap();
    println!("verify pdf {:?}", v_start.elapsed());
}

/// Writes sample renderings (JSON, HTML id/en, PDF) of a failed drill and
/// a summary into `$CADANG_REPORT_SAMPLES` to look at:
/// `CADANG_REPORT_SAMPLES=/tmp/s cargo test -p cadang-controller --test report_render -- --ignored write_samples`.
#[test]
#[ignore = "writes the sample reports for the docs: run by hand (command above)"]
fn write_samples() {
    let Some(dir) = std::env::var_os("CADANG_REPORT_SAMPLES") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let docs = [
        ("drill", doc(40, 5 * 3600)),
        (
            "summary",
            SignedDocument::sign_summary(&summary(), &key()).unwrap(),
        ),
    ];
    for (name, d) in docs {
        std::fs::write(dir.join(format!("{name}.json")), d.to_bytes()).unwrap();
        for lang in [Lang::Id, Lang::En] {
            let base = format!("{name}-{}", lang.code());
            std::fs::write(
                dir.join(format!("{base}.html")),
                render_html(&d, lang).unwrap(),
            )
            .unwrap();
            std::fs::write(
                dir.join(format!("{base}.pdf")),
                render_pdf(&d, lang).unwrap(),
            )
            .unwrap();
        }
    }
}
