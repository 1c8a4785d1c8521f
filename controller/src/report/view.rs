//! What a rendering shows, computed once from a signed document so the
//! HTML and the PDF say the same thing: a title, the verdict, and
//! sections of labelled values and tables.

use chrono::{DateTime, Utc};

use super::drill::{CheckKind, DrillReport};
use super::i18n::{duration, reason, Lang};
use super::signed::SignedDocument;
use super::summary::{percent, ComplianceSummary, PdFigures};
use super::Result;

pub struct View {
    pub lang: Lang,
    pub title: String,
    /// Drill reports only.
    pub verdict: Option<VerdictView>,
    pub reasons: Vec<String>,
    pub sections: Vec<Section>,
    /// The signature lines at the end.
    pub footer: Vec<String>,
}

pub struct VerdictView {
    pub passed: bool,
    /// The CSS class: `lulus` or `gagal`.
    pub class: &'static str,
    /// LULUS / GAGAL (PASSED / FAILED).
    pub word: String,
}

pub struct Section {
    pub title: String,
    pub rows: Vec<(String, String)>,
    pub table: Option<Table>,
}

pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// "N more ..." when rows were cut.
    pub more: Option<String>,
}

/// Builds the view of any signed document. `max_rows` bounds the long
/// tables (mismatched files): a drill of 100,000 files stays readable.
pub fn build(doc: &SignedDocument, lang: Lang, max_rows: usize) -> Result<View> {
    let mut view = if doc.kind == super::signed::KIND_SUMMARY {
        summary_view(&doc.summary()?, lang)
    } else {
        drill_view(&doc.drill()?, lang, max_rows)
    };
    let t = lang.messages();
    view.footer = vec![
        t.signed.to_string(),
        format!("{}: {}", t.key, doc.key_id),
        t.verify_hint.to_string(),
    ];
    Ok(view)
}

pub fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn row(label: &str, value: impl Into<String>) -> (String, String) {
    (label.to_string(), value.into())
}

fn drill_view(r: &DrillReport, lang: Lang, max_rows: usize) -> View {
    let t = lang.messages();
    let mut sections = vec![
        Section {
            title: t.drill_title.into(),
            rows: vec![
                row(t.report_id, &r.report_id),
                row(t.regency, &r.regency),
                row(t.pd, &r.pd),
                row(t.data_group, &r.data_group),
                row(
                    t.custodian,
                    format!("{} ({} {})", r.custodian.name, t.nip, r.custodian.nip),
                ),
                row(t.snapshot, &r.snapshot.id),
                row(t.snapshot_time, time(&r.snapshot.time)),
                row(t.source_host, &r.source_host),
                row(t.site, &r.site),
                row(t.files, r.files.to_string()),
                row(t.bytes, r.bytes.to_string()),
                row(t.restore_time, duration(lang, r.restore_seconds)),
                row(t.rto, duration(lang, r.rto_seconds)),
                row(t.rp_age, duration(lang, r.recovery_point_age_seconds)),
                row(t.rpo, duration(lang, r.rpo_seconds)),
                row(
                    t.runner,
                    format!("{} ({})", r.runner.agent_id, r.runner.host),
                ),
                row(t.started, time(&r.started)),
                row(t.finished, time(&r.finished)),
                row(t.generated, time(&r.generated)),
            ],
            table: None,
        },
        verification_section(r, lang, max_rows),
        check_section(r, lang),
    ];
    sections.push(Section {
        title: t.approvals.into(),
        rows: Vec::new(),
        table: Some(Table {
            header: vec![t.seq.into(), t.action.into(), "BLAKE3".into()],
            rows: r
                .approvals
                .iter()
                .map(|a| vec![a.seq.to_string(), a.action.clone(), a.hash.clone()])
                .collect(),
            more: None,
        }),
    });
    View {
        lang,
        title: format!("{} — {} / {}", t.drill_title, r.pd, r.data_group),
        verdict: Some(VerdictView {
            passed: r.verdict.passed,
            class: if r.verdict.passed { "lulus" } else { "gagal" },
            word: if r.verdict.passed { t.passed } else { t.failed }.to_string(),
        }),
        reasons: r.verdict.reasons.iter().map(|x| reason(lang, x)).collect(),
        sections,
        footer: Vec::new(),
    }
}

fn verification_section(r: &DrillReport, lang: Lang, max_rows: usize) -> Section {
    let t = lang.messages();
    let all = &r.verification.mismatches;
    let shown = all.len().min(max_rows);
    Section {
        title: t.verification.into(),
        rows: vec![
            row(t.files_checked, r.verification.files_checked.to_string()),
            row(t.mismatches, all.len().to_string()),
        ],
        table: (!all.is_empty()).then(|| Table {
            header: vec![t.files.into(), t.mismatches.into()],
            rows: all[..shown]
                .iter()
                .map(|m| vec![m.path.clone(), m.problem.clone()])
                .collect(),
            more: (all.len() > shown).then(|| format!("{} {}", all.len() - shown, t.mismatch_more)),
        }),
    }
}

fn check_section(r: &DrillReport, lang: Lang) -> Section {
    let t = lang.messages();
    let rows = match &r.check {
        None => vec![row(t.result, t.no_check)],
        Some(c) => vec![
            row(
                t.check,
                match c.kind {
                    CheckKind::Command => "command",
                    CheckKind::PostgresQuery => "PostgreSQL",
                },
            ),
            row(t.check_run, &c.run),
            row(t.expected, &c.expected),
            row(t.got, &c.got),
            row(t.result, if c.passed { t.passed } else { t.failed }),
            row(t.output, &c.output_excerpt),
        ],
    };
    Section {
        title: t.check.into(),
        rows,
        table: None,
    }
}

fn summary_view(s: &ComplianceSummary, lang: Lang) -> View {
    let t = lang.messages();
    let figures = |p: &PdFigures| {
        vec![
            p.pd.clone(),
            format!("{} / {}", p.backups_done, p.backups_scheduled),
            format!(
                "{} / {} ({})",
                p.rpo_met,
                p.rpo_checks,
                percent(p.rpo_met, p.rpo_checks)
            ),
            format!("{} / {}", p.drills_passed, p.drills_run),
            format!(
                "{} / {} / {}",
                p.restores_requested, p.restores_approved, p.restores_rejected
            ),
        ]
    };
    let mut rows: Vec<Vec<String>> = s.pds.iter().map(figures).collect();
    let mut total = figures(&s.regency_total());
    total[0] = t.total.into();
    rows.push(total);
    View {
        lang,
        title: format!("{} — {}", t.summary_title, s.regency),
        verdict: None,
        reasons: Vec::new(),
        sections: vec![Section {
            title: t.summary_title.into(),
            rows: vec![
                row(t.report_id, &s.summary_id),
                row(t.regency, &s.regency),
                row(
                    t.period,
                    format!("{} – {}", time(&s.period_start), time(&s.period_end)),
                ),
                row(t.generated, time(&s.generated)),
            ],
            table: Some(Table {
                header: vec![
                    t.pd.into(),
                    t.backups.into(),
                    t.rpo_met.into(),
                    t.drills_passed.into(),
                    format!("{} ({})", t.restores, t.requested_approved_rejected),
                ],
                rows,
                more: None,
            }),
        }],
        footer: Vec::new(),
    }
}
