//! PDF rendering with krilla: A4 pages laid out from the same view as the
//! HTML, DejaVu Sans embedded (subset), the signed JSON embedded as an
//! uncompressed file `report.json`, the creation date the report's own
//! time and the document id a hash of the signed JSON. Nothing depends on
//! the clock or randomness, so the same JSON always gives the same bytes
//! and a verifier re-renders and compares.

use chrono::{DateTime, Datelike, Timelike, Utc};
use krilla::color::rgb;
use krilla::embed::{AssociationKind, EmbeddedFile, MimeType};
use krilla::geom::Point;
use krilla::metadata::{DateTime as PdfDate, Metadata};
use krilla::page::PageSettings;
use krilla::paint::Fill;
use krilla::text::{Font, TextDirection};
use krilla::{Document, SerializeSettings};

use super::i18n::Lang;
use super::signed::SignedDocument;
use super::view::{self, View};
use super::{ReportError, Result};

/// The PDF lists at most this many mismatched files, then counts the rest:
/// a drill of 100,000 files gives a few pages, not two thousand.
pub const PDF_MAX_ROWS: usize = 30;
/// The name of the embedded signed JSON.
pub const EMBEDDED_NAME: &str = "report.json";

static REGULAR: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/DejaVuSans-Bold.ttf");

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
/// DejaVu Sans is wide: ~0.6 em per character is a safe wrapping estimate.
const EM_PER_CHAR: f32 = 0.6;

/// One piece of text at a place: the layout, before any PDF is made.
struct Text {
    x: f32,
    y: f32,
    size: f32,
    bold: bool,
    color: (u8, u8, u8),
    text: String,
}

/// The PDF bytes of a signed document.
pub fn render_pdf(doc: &SignedDocument, lang: Lang) -> Result<Vec<u8>> {
    let view = view::build(doc, lang, PDF_MAX_ROWS)?;
    let pages = layout(&view);
    let json = doc.to_bytes();
    let time = generated(doc);
    write_pdf(&pages, &view.title, lang, &json, time)
}

fn generated(doc: &SignedDocument) -> DateTime<Utc> {
    // Both kinds carry `generated`: the PDF's only date.
    doc.body
        .get("generated")
        .and_then(|v| v.as_str())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Lays the view out on pages (top-down y, krilla's coordinates).
fn layout(view: &View) -> Vec<Vec<Text>> {
    let mut l = Layout::default();
    l.line(&view.title, 15.0, true, BLACK, MARGIN);
    if let Some(v) = &view.verdict {
        let color = if v.passed { GREEN } else { RED };
        l.line(&v.word, 14.0, true, color, MARGIN);
    }
    for r in &view.reasons {
        l.wrapped(
            &format!("• {r}"),
            10.0,
            false,
            RED,
            MARGIN,
            PAGE_W - 2.0 * MARGIN,
        );
    }
    for s in &view.sections {
        l.gap(8.0);
        l.line(&s.title, 12.0, true, BLACK, MARGIN);
        for (label, value) in &s.rows {
            l.pair(label, value);
        }
        if let Some(t) = &s.table {
            l.table(&t.header, &t.rows);
            if let Some(more) = &t.more {
                l.wrapped(more, 9.0, false, BLACK, MARGIN, PAGE_W - 2.0 * MARGIN);
            }
        }
    }
    l.gap(12.0);
    for line in &view.footer {
        l.wrapped(line, 8.0, false, GREY, MARGIN, PAGE_W - 2.0 * MARGIN);
    }
    l.finish()
}

const BLACK: (u8, u8, u8) = (0, 0, 0);
const GREY: (u8, u8, u8) = (70, 70, 70);
const GREEN: (u8, u8, u8) = (0, 110, 50);
const RED: (u8, u8, u8) = (160, 0, 0);

#[derive(Default)]
struct Layout {
    pages: Vec<Vec<Text>>,
    current: Vec<Text>,
    y: f32,
}

impl Layout {
    fn ensure(&mut self, height: f32) {
        if self.y < MARGIN {
            self.y = MARGIN;
        }
        if self.y + height > PAGE_H - MARGIN {
            self.pages.push(std::mem::take(&mut self.current));
            self.y = MARGIN;
        }
    }

    fn gap(&mut self, h: f32) {
        self.y += h;
    }

    fn line(&mut self, text: &str, size: f32, bold: bool, color: (u8, u8, u8), x: f32) {
        let h = size * 1.35;
        self.ensure(h);
        self.y += size;
        self.current.push(Text {
            x,
            y: self.y,
            size,
            bold,
            color,
            text: text.to_string(),
        });
        self.y += h - size;
    }

    fn wrapped(&mut self, text: &str, size: f32, bold: bool, color: (u8, u8, u8), x: f32, w: f32) {
        for part in wrap(text, w, size) {
            self.line(&part, size, bold, color, x);
        }
    }

    /// A label and its (possibly multi-line) value side by side.
    fn pair(&mut self, label: &str, value: &str) {
        const SIZE: f32 = 9.0;
        let label_w = 170.0;
        let value_lines = wrap(value, PAGE_W - 2.0 * MARGIN - label_w, SIZE);
        let label_lines = wrap(label, label_w - 6.0, SIZE);
        let n = value_lines.len().max(label_lines.len());
        for i in 0..n {
            let h = SIZE * 1.35;
            self.ensure(h);
            self.y += SIZE;
            let mut put = |x: f32, bold: bool, t: Option<&String>| {
                if let Some(t) = t {
                    self.current.push(Text {
                        x,
                        y: self.y,
                        size: SIZE,
                        bold,
                        color: BLACK,
                        text: t.clone(),
                    });
                }
            };
            put(MARGIN, true, label_lines.get(i));
            put(MARGIN + label_w, false, value_lines.get(i));
            self.y += h - SIZE;
        }
    }

    fn table(&mut self, header: &[String], rows: &[Vec<String>]) {
        const SIZE: f32 = 8.0;
        let cols = header.len().max(1);
        let col_w = (PAGE_W - 2.0 * MARGIN) / cols as f32;
        let draw_row = |l: &mut Layout, cells: &[String], bold: bool| {
            let wrapped: Vec<Vec<String>> =
                cells.iter().map(|c| wrap(c, col_w - 6.0, SIZE)).collect();
            let n = wrapped.iter().map(Vec::len).max().unwrap_or(1);
            for i in 0..n {
                let h = SIZE * 1.35;
                l.ensure(h);
                l.y += SIZE;
                for (c, lines) in wrapped.iter().enumerate() {
                    if let Some(t) = lines.get(i) {
                        l.current.push(Text {
                            x: MARGIN + c as f32 * col_w,
                            y: l.y,
                            size: SIZE,
                            bold,
                            color: BLACK,
                            text: t.clone(),
                        });
                    }
                }
                l.y += h - SIZE;
            }
            l.y += 2.0;
        };
        draw_row(self, header, true);
        for r in rows {
            draw_row(self, r, false);
        }
    }

    fn finish(mut self) -> Vec<Vec<Text>> {
        self.pages.push(self.current);
        self.pages
    }
}

/// Splits `text` into lines that fit `width` points at `size`: at spaces
/// where possible, inside long words (hashes, paths) where not, and at
/// the newlines the text has (command output).
fn wrap(text: &str, width: f32, size: f32) -> Vec<String> {
    let max = ((width / (size * EM_PER_CHAR)) as usize).max(8);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split(' ') {
            let mut word: Vec<char> = word.chars().collect();
            let len = line.chars().count();
            if len > 0 && len + 1 + word.len() > max {
                out.push(std::mem::take(&mut line));
            }
            while word.len() > max {
                let rest = word.split_off(max);
                if !line.is_empty() {
                    out.push(std::mem::take(&mut line));
                }
                out.push(word.into_iter().collect());
                word = rest;
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.extend(word);
        }
        out.push(line);
    }
    out
}

fn pdf_date(t: DateTime<Utc>) -> PdfDate {
    PdfDate::new(t.year().clamp(0, 9999) as u16)
        .month(t.month() as u8)
        .day(t.day() as u8)
        .hour(t.hour() as u8)
        .minute(t.minute() as u8)
        .second(t.second() as u8)
        .utc_offset_hour(0)
        .utc_offset_minute(0)
}

fn write_pdf(
    pages: &[Vec<Text>],
    title: &str,
    lang: Lang,
    json: &[u8],
    time: DateTime<Utc>,
) -> Result<Vec<u8>> {
    let render_err = |m: &str| ReportError::Render(m.to_string());
    let regular = Font::new(REGULAR.into(), 0)
        .ok_or_else(|| render_err("the embedded font cannot be read"))?;
    let bold =
        Font::new(BOLD.into(), 0).ok_or_else(|| render_err("the embedded font cannot be read"))?;
    let settings = SerializeSettings {
        // No tag tree is built; tagging would only add an empty one.
        enable_tagging: false,
        ..SerializeSettings::default()
    };
    let mut document = Document::new_with(settings);
    document.set_metadata(
        Metadata::new()
            .title(title.to_string())
            .language(lang.code().to_string())
            .creator("cadang".into())
            .producer("cadang".into())
            .creation_date(pdf_date(time))
            .document_id(blake3::hash(json).to_hex().to_string()),
    );
    for texts in pages {
        let mut page = document.start_page_with(
            PageSettings::from_wh(PAGE_W, PAGE_H).ok_or_else(|| render_err("page size"))?,
        );
        let mut surface = page.surface();
        for t in texts {
            surface.set_fill(Some(Fill {
                paint: rgb::Color::new(t.color.0, t.color.1, t.color.2).into(),
                ..Fill::default()
            }));
            let font = if t.bold {
                bold.clone()
            } else {
                regular.clone()
            };
            surface.draw_text(
                Point::from_xy(t.x, t.y),
                font,
                t.size,
                &t.text,
                false,
                TextDirection::Auto,
            );
        }
        surface.finish();
        page.finish();
    }
    document
        .embed_file(EmbeddedFile {
            path: EMBEDDED_NAME.into(),
            mime_type: MimeType::new("application/json"),
            description: Some("cadang signed report (verify: cadang report verify)".into()),
            association_kind: AssociationKind::Source,
            data: json.to_vec().into(),
            modification_date: Some(pdf_date(time)),
            // Uncompressed: the verifier finds the JSON without a PDF parser.
            compress: Some(false),
            location: None,
        })
        .ok_or_else(|| render_err("the signed JSON could not be embedded"))?;
    document
        .finish()
        .map_err(|e| ReportError::Render(format!("{e:?}")))
}
