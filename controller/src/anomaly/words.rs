//! The reasons in words, English and Bahasa Indonesia (terms from the
//! project glossary: "dugaan serangan ransomware", "cadangan bersih
//! terakhir", "penahanan retensi").

use cadang_proto::signals::BackupSignals;

use super::{ReasonKind, Verdict};

fn pct(v: f64, id: bool) -> String {
    let s = format!("{:.1}%", v * 100.0);
    if id {
        s.replace('.', ",")
    } else {
        s
    }
}

fn normal(baseline: Option<f64>, id: bool) -> String {
    match (baseline, id) {
        (Some(b), false) => format!("; normal for this source is {}", pct(b, false)),
        (Some(b), true) => format!("; biasanya {}", pct(b, true)),
        (None, _) => String::new(),
    }
}

/// (English, Indonesian) for one reason.
pub(crate) fn reason(
    kind: ReasonKind,
    value: f64,
    files: u64,
    limit: f64,
    baseline: Option<f64>,
    s: &BackupSignals,
) -> (String, String) {
    let before = s.files_before;
    let (en_norm, id_norm) = (normal(baseline, false), normal(baseline, true));
    match kind {
        ReasonKind::EntropyTransitions => (
            format!(
                "{} of the files ({files} of {before}) changed from structured to random-looking content in this backup, as encryption does{en_norm} (limit {})",
                pct(value, false),
                pct(limit, false)
            ),
            format!(
                "{} berkas ({files} dari {before}) berubah dari isi terstruktur menjadi acak pada pencadangan ini, ciri enkripsi{id_norm} (batas {})",
                pct(value, true),
                pct(limit, true)
            ),
        ),
        ReasonKind::SlowEncryption => (
            format!(
                "over the last nights {} of the files ({files}) turned random-looking, a slow encryption spread over several backups{en_norm} per night (limit {} in total)",
                pct(value, false),
                pct(limit, false)
            ),
            format!(
                "dalam beberapa malam terakhir {} berkas ({files}) berubah menjadi acak, enkripsi perlahan yang tersebar di beberapa pencadangan{id_norm} per malam (batas {} seluruhnya)",
                pct(value, true),
                pct(limit, true)
            ),
        ),
        ReasonKind::ExtensionChanges => (
            format!(
                "{files} files ({}) were renamed or replaced under another extension{en_norm} (limit {})",
                pct(value, false),
                pct(limit, false)
            ),
            format!(
                "{files} berkas ({}) berganti nama atau diganti dengan ekstensi lain{id_norm} (batas {})",
                pct(value, true),
                pct(limit, true)
            ),
        ),
        ReasonKind::KnownExtensions => (
            format!("{files} new file names end in an extension known from ransomware families (e.g. .locked)"),
            format!("{files} nama berkas baru berakhiran ekstensi yang dikenal dari keluarga ransomware (mis. .locked)"),
        ),
        ReasonKind::RansomNotes => (
            format!(
                "{files} new files named like ransom notes appeared in {} directories",
                value as u64
            ),
            format!(
                "{files} berkas baru bernama seperti catatan tebusan muncul di {} direktori",
                value as u64
            ),
        ),
        ReasonKind::MassReplacement => (
            format!(
                "{files} files ({}) were deleted and {} random-looking new files appeared",
                pct(value, false),
                s.new_files_random
            ),
            format!(
                "{files} berkas ({}) dihapus dan muncul {} berkas baru berisi acak",
                pct(value, true),
                s.new_files_random
            ),
        ),
        ReasonKind::ManyChanges => (
            format!(
                "also: {} of the files changed ({files}){en_norm}",
                pct(value, false)
            ),
            format!("juga: {} berkas berubah ({files}){id_norm}", pct(value, true)),
        ),
        ReasonKind::IncompressibleData => (
            format!(
                "also: {} of the new data did not compress{en_norm}",
                pct(value, false)
            ),
            format!(
                "juga: {} data baru tidak dapat dimampatkan{id_norm}",
                pct(value, true)
            ),
        ),
    }
}

pub(crate) fn summary(v: &Verdict, id: bool) -> String {
    if !v.flagged {
        return if id {
            "tidak ada tanda serangan ransomware".into()
        } else {
            "no sign of ransomware".into()
        };
    }
    let reasons: Vec<&str> = v
        .reasons
        .iter()
        .map(|r| {
            if id {
                r.indonesian.as_str()
            } else {
                r.english.as_str()
            }
        })
        .collect();
    if id {
        format!("dugaan serangan ransomware: {}", reasons.join("; "))
    } else {
        format!("ransomware suspected: {}", reasons.join("; "))
    }
}
