//! HTML rendering: one self-contained page (inline CSS, no scripts, no
//! external resources), escaped by askama, in the reader's language.

use askama::Template;

use super::i18n::Lang;
use super::signed::SignedDocument;
use super::view::{self, View};
use super::{ReportError, Result};

/// At most this many mismatched files are listed; the rest are counted.
pub const HTML_MAX_ROWS: usize = 1000;

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!DOCTYPE html>
<html lang="{{ view.lang.code() }}">
<head>
<meta charset="utf-8">
<title>{{ view.title }}</title>
<style>
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em; color: #111; }
h1 { font-size: 1.4em; }
h2 { font-size: 1.1em; margin-top: 1.5em; border-bottom: 1px solid #999; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #bbb; padding: .2em .5em; text-align: left; vertical-align: top; }
th { background: #eee; }
.verdict { font-size: 1.3em; font-weight: bold; padding: .3em .6em; display: inline-block; }
.lulus { background: #d7f5d7; color: #064; }
.gagal { background: #f8d4d4; color: #900; }
pre { white-space: pre-wrap; margin: 0; }
footer { margin-top: 2em; font-size: .85em; color: #444; word-break: break-all; }
</style>
</head>
<body>
<h1>{{ view.title }}</h1>
{% if let Some(v) = view.verdict %}
<p class="verdict {{ v.class }}">{{ v.word }}</p>
{% endif %}
{% if !view.reasons.is_empty() %}
<ul class="reasons">
{% for r in view.reasons %}<li>{{ r }}</li>
{% endfor %}</ul>
{% endif %}
{% for section in view.sections %}
<h2>{{ section.title }}</h2>
{% if !section.rows.is_empty() %}
<table>
{% for (label, value) in section.rows %}<tr><th>{{ label }}</th><td><pre>{{ value }}</pre></td></tr>
{% endfor %}</table>
{% endif %}
{% if let Some(table) = section.table %}
<table>
<tr>{% for h in table.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for cells in table.rows %}<tr>{% for c in cells %}<td>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% if let Some(more) = table.more %}<p>{{ more }}</p>{% endif %}
{% endif %}
{% endfor %}
<footer>
{% for line in view.footer %}<p>{{ line }}</p>
{% endfor %}</footer>
</body>
</html>
"#
)]
struct Page<'a> {
    view: &'a View,
}

/// The HTML page of a signed drill report or compliance summary.
pub fn render_html(doc: &SignedDocument, lang: Lang) -> Result<String> {
    let view = view::build(doc, lang, HTML_MAX_ROWS)?;
    Page { view: &view }
        .render()
        .map_err(|e| ReportError::Render(e.to_string()))
}
