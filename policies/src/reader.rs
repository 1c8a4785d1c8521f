//! Reading values out of a parsed TOML document while keeping their
//! location, and collecting every problem instead of stopping at the
//! first (which is why the loader does not use serde derive: serde gives
//! up at the first unknown key or wrong type).

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diagnostic::{Diagnostic, SourceFile, WithHint};
use crate::suggest;

/// A value with the byte range of its text in the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Located<T> {
    pub value: T,
    pub span: Range<usize>,
}

impl<T> Located<T> {
    pub fn new(value: T, span: Range<usize>) -> Located<T> {
        Located { value, span }
    }
}

/// The file being read and the problems found so far.
pub(crate) struct Ctx<'f> {
    pub file: &'f SourceFile,
    pub diags: &'f mut Vec<Diagnostic>,
}

impl Ctx<'_> {
    pub fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let d = self.file.at(span, message);
        self.diags.push(d);
    }

    pub fn error_hint(
        &mut self,
        span: &Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let d = self.file.at(span, message).with_hint(hint);
        self.diags.push(d);
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }
}

/// Key names that hold secrets. A policy is read by many people and kept
/// in version control; credentials live only in the controller's config.
const CREDENTIAL_WORDS: [&str; 8] = [
    "secret",
    "password",
    "passphrase",
    "passwd",
    "token",
    "access_key",
    "credential",
    "private_key",
];

pub(crate) fn is_credential_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    CREDENTIAL_WORDS.iter().any(|w| key.contains(w)) || key == "key_id" || key.ends_with("_key_id")
}

/// Reports every credential-looking key anywhere in the document, so a
/// secret pasted into a policy is refused even inside a table the loader
/// would otherwise reject as unknown.
pub(crate) fn refuse_credentials(cx: &mut Ctx, table: &DeTable) {
    for (key, value) in table.iter() {
        if is_credential_key(key.get_ref()) {
            cx.error_hint(
                &key.span(),
                format!("`{}` looks like a credential, and credentials never go in a policy file", key.get_ref()),
                "remove it (and rotate it if this file was shared or committed): store URLs and keys belong in the controller's config, which only the controller reads",
            );
        }
        match value.get_ref() {
            DeValue::Table(t) => refuse_credentials(cx, t),
            DeValue::Array(items) => {
                for item in items.iter() {
                    if let DeValue::Table(t) = item.get_ref() {
                        refuse_credentials(cx, t);
                    }
                }
            }
            _ => {}
        }
    }
}

/// TOML's name for a value's type, as an operator would say it.
fn type_name(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a decimal number",
        DeValue::Boolean(_) => "true/false",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// One TOML table being read, with its location and a name for messages.
#[derive(Clone)]
pub(crate) struct Table<'t, 'i> {
    pub table: &'t DeTable<'i>,
    /// The table's header (`[retention]`), or the whole file for the root.
    pub span: Range<usize>,
    /// `[replication]`, `[[hosts]] "db-01"`, ... for messages.
    pub name: String,
}

impl<'t, 'i> Table<'t, 'i> {
    pub fn new(table: &'t DeTable<'i>, span: Range<usize>, name: impl Into<String>) -> Self {
        Table {
            table,
            span,
            name: name.into(),
        }
    }

    /// Reports keys other than `allowed`, with the closest allowed key.
    pub fn check_keys(&self, cx: &mut Ctx, allowed: &[&str]) {
        for key in self.table.keys() {
            let k = key.get_ref().as_ref();
            if allowed.contains(&k) || is_credential_key(k) {
                continue;
            }
            let hint = suggest::did_you_mean(k, allowed.iter().copied()).unwrap_or_else(|| {
                format!("keys allowed in {}: {}", self.name, allowed.join(", "))
            });
            cx.error_hint(
                &key.span(),
                format!("unknown key `{k}` in {}", self.name),
                hint,
            );
        }
    }

    pub fn value(&self, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.table.get(key)
    }

    /// The span of `key`'s name, for errors about the key itself.
    pub fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.table.get_key_value(key).map(|(k, _)| k.span())
    }

    fn wrong_type(&self, cx: &mut Ctx, key: &str, v: &Spanned<DeValue>, expected: &str) {
        cx.error(
            &v.span(),
            format!(
                "`{key}` in {} must be {expected}, not {}",
                self.name,
                type_name(v.get_ref())
            ),
        );
    }

    pub fn string(&self, cx: &mut Ctx, key: &str) -> Option<Located<String>> {
        let v = self.value(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Located::new(s.to_string(), v.span())),
            _ => {
                self.wrong_type(cx, key, v, "a string in quotes");
                None
            }
        }
    }

    /// A string that must be there; a missing one is reported at the table.
    pub fn required_string(&self, cx: &mut Ctx, key: &str, what: &str) -> Option<Located<String>> {
        if self.value(key).is_none() {
            cx.error(&self.span, format!("{} has no `{key}` ({what})", self.name));
            return None;
        }
        let s = self.string(cx, key)?;
        if s.value.trim().is_empty() {
            cx.error(
                &s.span,
                format!("`{key}` in {} is empty ({what})", self.name),
            );
            return None;
        }
        Some(s)
    }

    pub fn integer(&self, cx: &mut Ctx, key: &str) -> Option<Located<i64>> {
        let v = self.value(key)?;
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(Located::new(n, v.span())),
                Err(_) => {
                    cx.error(&v.span(), format!("`{key}` in {} is too large", self.name));
                    None
                }
            },
            _ => {
                self.wrong_type(cx, key, v, "a whole number");
                None
            }
        }
    }

    /// A whole number from 0 to `max`.
    pub fn count(&self, cx: &mut Ctx, key: &str, max: u32) -> Option<Located<u32>> {
        let n = self.integer(cx, key)?;
        match u32::try_from(n.value) {
            Ok(v) if v <= max => Some(Located::new(v, n.span)),
            _ => {
                cx.error(
                    &n.span,
                    format!("`{key}` in {} must be between 0 and {max}", self.name),
                );
                None
            }
        }
    }

    pub fn boolean(&self, cx: &mut Ctx, key: &str) -> Option<bool> {
        let v = self.value(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(cx, key, v, "true or false");
                None
            }
        }
    }

    /// A string, or a bare integer read as its decimal text (`read_share
    /// = 5` as well as `"5%"`).
    pub fn string_or_integer(&self, cx: &mut Ctx, key: &str) -> Option<Located<String>> {
        let v = self.value(key)?;
        match v.get_ref() {
            DeValue::Integer(_) => self
                .integer(cx, key)
                .map(|n| Located::new(n.value.to_string(), n.span)),
            _ => self.string(cx, key),
        }
    }

    /// A list of strings; a single string is taken as a list of one.
    pub fn strings(&self, cx: &mut Ctx, key: &str) -> Option<Located<Vec<Located<String>>>> {
        let v = self.value(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Located::new(
                vec![Located::new(s.to_string(), v.span())],
                v.span(),
            )),
            DeValue::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => out.push(Located::new(s.to_string(), item.span())),
                        _ => self.wrong_type(cx, key, item, "a list of strings in quotes"),
                    }
                }
                Some(Located::new(out, v.span()))
            }
            _ => {
                self.wrong_type(cx, key, v, "a list of strings in quotes");
                None
            }
        }
    }

    /// A sub-table (`[retention]` or `retention = { ... }`).
    pub fn table(&self, cx: &mut Ctx, key: &str) -> Option<(&'t DeTable<'i>, Range<usize>)> {
        let v = self.value(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some((t, v.span())),
            _ => {
                self.wrong_type(cx, key, v, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[hosts]]`); a single table counts as one.
    pub fn tables(&self, cx: &mut Ctx, key: &str) -> Vec<(&'t DeTable<'i>, Range<usize>)> {
        let Some(v) = self.value(key) else {
            return Vec::new();
        };
        match v.get_ref() {
            DeValue::Table(t) => vec![(t, v.span())],
            DeValue::Array(items) => items
                .iter()
                .filter_map(|item| match item.get_ref() {
                    DeValue::Table(t) => Some((t, item.span())),
                    _ => {
                        self.wrong_type(cx, key, item, &format!("a list of tables (`[[{key}]]`)"));
                        None
                    }
                })
                .collect(),
            _ => {
                self.wrong_type(cx, key, v, &format!("a list of tables (`[[{key}]]`)"));
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_keys() {
        for k in [
            "access_key",
            "secret",
            "secret_access_key",
            "AWS_SECRET",
            "password",
            "token",
            "access-key-id",
            "key_id",
        ] {
            assert!(is_credential_key(k), "{k}");
        }
        for k in ["onsite_store", "retention", "name", "keys"] {
            assert!(!is_credential_key(k), "{k}");
        }
    }
}
