//! Located errors in policy files, rendered the way rustc renders its own:
//!
//! ```text
//! pd/dinkes.toml:12:12: error: unknown store `pusat-dat`
//!    |
//! 12 | onsite_store = "pusat-dat"
//!    |                ^
//!    = hint: did you mean `pusat-data`?
//! ```
//!
//! An operator fixing a policy at 3 a.m. gets the file, the line, the
//! column and what to do, for every error of the set in one run.

use std::fmt;
use std::ops::Range;

use serde::Serialize;

/// One error in one policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file as it was named to the loader (`DIR/pd/dinkes.toml`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters (not bytes).
    pub column: usize,
    pub message: String,
    /// What to do about it, when there is more to say than the message.
    pub hint: Option<String>,
    /// The text of the offending line, without its newline; empty when the
    /// error concerns the file as a whole (it cannot be read, it is missing).
    pub source_line: String,
}

impl Diagnostic {
    /// An error about a file as a whole, which has no line to show.
    pub fn whole_file(file: &str, message: impl Into<String>, hint: Option<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            line: 1,
            column: 1,
            message: message.into(),
            hint,
            source_line: String::new(),
        }
    }

    /// `file:line:column`, for one-line summaries and logs.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: error: {}", self.location(), self.message)?;
        if !self.source_line.is_empty() {
            let number = self.line.to_string();
            let gutter = " ".repeat(number.len());
            // Tabs keep their width so the caret lands under the right
            // character in a terminal.
            let pad: String = self
                .source_line
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{gutter} |")?;
            writeln!(f, "{number} | {}", self.source_line)?;
            writeln!(f, "{gutter} | {pad}^")?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "  = hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// A policy file's text with its name, able to turn byte offsets into
/// line and column.
pub(crate) struct SourceFile {
    pub name: String,
    pub text: String,
    /// Byte offset of the start of every line.
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: String, text: String) -> SourceFile {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            name,
            text,
            line_starts,
        }
    }

    /// A diagnostic pointing at the first character of `span`.
    pub fn at(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.at_offset(span.start, message)
    }

    /// A diagnostic pointing at byte `offset` (clamped to the text).
    pub fn at_offset(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        let offset = self.floor_char_boundary(offset.min(self.text.len()));
        let index = self
            .line_starts
            .partition_point(|start| *start <= offset)
            .saturating_sub(1);
        let start = self.line_starts[index];
        let end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let source_line = self.text[start..end].trim_end_matches('\r').to_string();
        Diagnostic {
            file: self.name.clone(),
            line: index + 1,
            column: self.text[start..offset].chars().count() + 1,
            message: message.into(),
            hint: None,
            source_line,
        }
    }

    fn floor_char_boundary(&self, mut offset: usize) -> usize {
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// The byte offset of character `char_index` inside the string value
    /// whose TOML text is at `span`, when the text is a plain basic or
    /// literal string (no escapes), so a caret can point into the value
    /// (the wrong part of a NIP, the wrong field of a cron expression).
    /// Falls back to the start of the span.
    pub fn offset_in_string(&self, span: &Range<usize>, value: &str, byte_index: usize) -> usize {
        let raw = self.text.get(span.clone()).unwrap_or("");
        let plain = raw.len() == value.len() + 2
            && (raw.starts_with('"') || raw.starts_with('\''))
            && &raw[1..raw.len() - 1] == value;
        if plain && byte_index <= value.len() {
            span.start + 1 + byte_index
        } else {
            span.start
        }
    }
}

/// Builder sugar: `file.at(span, "...").with_hint("...")`.
pub(crate) trait WithHint {
    fn with_hint(self, hint: impl Into<String>) -> Self;
}

impl WithHint for Diagnostic {
    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let f = SourceFile::new("a.toml".into(), "x = 1\nnamä = \"é\" # z\n".into());
        let offset = f.text.find("# z").unwrap();
        let d = f.at_offset(offset, "bad");
        assert_eq!((d.line, d.column), (2, 12));
        assert_eq!(d.source_line, "namä = \"é\" # z");
    }

    #[test]
    fn renders_like_rustc_with_caret_and_hint() {
        let f = SourceFile::new("pd/x.toml".into(), "a = 1\nstore = \"drx\"\n".into());
        let d = f
            .at_offset(14, "unknown store `drx`")
            .with_hint("did you mean `drc`?");
        let text = d.to_string();
        assert_eq!(
            text,
            "pd/x.toml:2:9: error: unknown store `drx`\n  |\n2 | store = \"drx\"\n  |         ^\n  = hint: did you mean `drc`?\n"
        );
    }

    #[test]
    fn offset_into_plain_string_values() {
        let f = SourceFile::new("a".into(), "nip = \"1234\"\nq = \"a\\tb\"\n".into());
        assert_eq!(f.offset_in_string(&(6..12), "1234", 2), 9);
        // An escaped string cannot be mapped: point at its start.
        assert_eq!(f.offset_in_string(&(17..23), "a\tb", 2), 17);
    }
}
