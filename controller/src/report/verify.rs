//! Offline verification of a report file, JSON or PDF.

use serde_json::Value;

use super::i18n::Lang;
use super::pdf::render_pdf;
use super::signed::SignedDocument;
use super::{PublicKey, ReportError, Result};

/// What a successful verification established.
#[derive(Debug, Clone)]
pub struct Verified {
    pub document: SignedDocument,
    /// The key that signed it (hex).
    pub key_id: String,
    /// Whether it was checked against a trusted key, or only for
    /// self-consistency (signature valid for the key it names).
    pub trusted: bool,
    /// For a PDF: the language it was rendered in.
    pub pdf_lang: Option<Lang>,
}

/// Verifies a signed JSON report, or a PDF: its embedded signed JSON, and
/// that its bytes are exactly a rendering of that JSON.
pub fn verify_file(bytes: &[u8], trusted: Option<&PublicKey>) -> Result<Verified> {
    if bytes.starts_with(b"%PDF-") {
        verify_pdf(bytes, trusted)
    } else {
        let document = SignedDocument::parse(bytes)?;
        document.verify(trusted)?;
        Ok(verified(document, trusted, None))
    }
}

fn verified(
    document: SignedDocument,
    trusted: Option<&PublicKey>,
    pdf_lang: Option<Lang>,
) -> Verified {
    Verified {
        key_id: document.key_id.clone(),
        document,
        trusted: trusted.is_some(),
        pdf_lang,
    }
}

/// Every embedded candidate is tried: the PDF is accepted only if it is
/// byte-for-byte the rendering of a validly signed document it carries,
/// so whatever else a forger adds to the file cannot pass.
fn verify_pdf(bytes: &[u8], trusted: Option<&PublicKey>) -> Result<Verified> {
    let candidates = embedded_documents(bytes);
    if candidates.is_empty() {
        return Err(ReportError::NoEmbeddedReport);
    }
    let mut first_error = None;
    for doc in candidates {
        if let Err(e) = doc.verify(trusted) {
            first_error.get_or_insert(e);
            continue;
        }
        for lang in [Lang::Id, Lang::En] {
            if render_pdf(&doc, lang)? == bytes {
                return Ok(verified(doc, trusted, Some(lang)));
            }
        }
        first_error.get_or_insert(ReportError::PdfMismatch);
    }
    Err(first_error.unwrap_or(ReportError::NoEmbeddedReport))
}

/// The canonical signed documents found in the PDF's bytes. The embedded
/// file is stored uncompressed and canonical JSON starts with `{"body":`,
/// so a search and a JSON parse find it without a PDF parser.
fn embedded_documents(bytes: &[u8]) -> Vec<SignedDocument> {
    const START: &[u8] = b"{\"body\":";
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(pos) = find(&bytes[from..], START) {
        let at = from + pos;
        let mut stream = serde_json::Deserializer::from_slice(&bytes[at..]).into_iter::<Value>();
        if let Some(Ok(_)) = stream.next() {
            let end = at + stream.byte_offset();
            // The file is the canonical JSON and a newline.
            let mut candidate = bytes[at..end].to_vec();
            candidate.push(b'\n');
            if let Ok(doc) = SignedDocument::parse(&candidate) {
                found.push(doc);
            }
        }
        from = at + 1;
    }
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
