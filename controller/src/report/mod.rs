//! Reports for auditors: drill reports and compliance summaries, signed
//! with the controller's ed25519 report key, rendered to HTML and PDF
//! deterministically from the signed JSON, and verified offline.
//!
//! The flow a caller follows:
//! 1. build a [`DrillReport`] (or a [`ComplianceSummary`]) from what happened;
//! 2. [`SignedDocument::sign_drill`] / [`SignedDocument::sign_summary`] with the
//!    controller's key, [`SignedDocument::to_bytes`] is the JSON file;
//! 3. [`render_html`] / [`render_pdf`] from the signed document;
//! 4. anyone: [`verify_file`] (JSON or PDF) with or without a trusted key.
//!
//! Pure: no I/O here, times come from the caller.

pub mod canonical;
pub mod compliance;
pub mod drill;
pub mod html;
pub mod i18n;
pub mod pdf;
pub mod signed;
pub mod stored;
pub mod summary;
pub mod verify;
pub mod view;

pub use drill::{DrillReport, Verdict};
pub use html::render_html;
pub use i18n::Lang;
pub use pdf::render_pdf;
pub use signed::{SignedDocument, DOCUMENT_FORMAT, DOCUMENT_VERSION};
pub use summary::ComplianceSummary;
pub use verify::{verify_file, Verified};

/// The public key reports and checkpoints are verified with.
pub type PublicKey = cadang_core::keys::AgentPublicKey;
/// The controller's report-signing key (`config.signing_key`).
pub type SigningKey = cadang_core::keys::AgentKey;

/// What went wrong with a report: each message names what failed and
/// what the reader can do.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("not a cadang signed report: {0}")]
    Format(String),
    #[error("the report is not in canonical form (a byte was changed, or the file was re-formatted): {0}")]
    NotCanonical(String),
    #[error("the signature does not match the report: the report was changed after signing, or signed by another key")]
    BadSignature,
    #[error("the report was signed by key {found}, not by the trusted key {trusted}: it does not come from this controller")]
    UntrustedKey { found: String, trusted: String },
    #[error("the PDF carries no signed report (no embedded cadang-signed-document JSON found)")]
    NoEmbeddedReport,
    #[error("the PDF is not the rendering of the signed report it carries (its bytes differ from a fresh rendering): the PDF was changed after it was made")]
    PdfMismatch,
    #[error("the report body cannot be read as a {kind}: {message}")]
    Body { kind: String, message: String },
    #[error("cannot render the report: {0}")]
    Render(String),
    #[error("the controller signing key {path} cannot be read: {message}; check `signing_key` in controller.toml")]
    Key { path: String, message: String },
}

pub type Result<T, E = ReportError> = std::result::Result<T, E>;

/// Reads the controller's report-signing key as `controller init` wrote it
/// (64 hex digits and a newline, mode 0600).
pub fn load_signing_key(path: &std::path::Path) -> Result<SigningKey> {
    let key_error = |message: String| ReportError::Key {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
    SigningKey::from_hex(text.trim()).map_err(|e| key_error(e.to_string()))
}

/// Parses a public key given as 64 hex digits (`--key`).
pub fn parse_public_key(hex: &str) -> Result<PublicKey> {
    PublicKey::from_hex(hex.trim()).map_err(|e| ReportError::Format(format!("--key: {e}")))
}

/// The files a signed document is stored as inside the PD's repository
/// (`docs/format.md` §11): `reports/<kind>/<id>.json` and `.pdf`
/// (Bahasa Indonesia). The drill flow puts each into both stores.
pub fn store_files(doc: &SignedDocument) -> Result<Vec<(String, Vec<u8>)>> {
    let id_field = if doc.kind == signed::KIND_SUMMARY {
        "summary_id"
    } else {
        "report_id"
    };
    let id = doc
        .body
        .get(id_field)
        .and_then(|v| v.as_str())
        .filter(|id| is_safe_name(id))
        .ok_or_else(|| {
            ReportError::Format(format!(
                "{id_field} is missing or not a safe file name (letters, digits, '-', '_', '.')"
            ))
        })?;
    let base = format!("reports/{}/{id}", doc.kind);
    Ok(vec![
        (format!("{base}.json"), doc.to_bytes()),
        (format!("{base}.pdf"), render_pdf(doc, Lang::Id)?),
    ])
}

/// A report id becomes a file name in the stores: nothing that could
/// climb out of `reports/` or hide (`..`, `/`, a leading dot).
fn is_safe_name(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
