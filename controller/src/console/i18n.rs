//! The console's words: two message catalogues, `i18n/id.toml` (Bahasa
//! Indonesia, the default) and `i18n/en.toml`, compiled in, with the terms
//! of the project glossary. The language comes from `?lang=` (which also
//! sets the `cadang-lang` cookie), else that cookie, else Indonesian.
//!
//! A key missing from a catalogue renders as `⟦key⟧`, visibly; the tests
//! check that both catalogues hold the same keys and that every key a
//! template or handler uses exists.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::HeaderMap;

pub use crate::report::Lang;

pub const ID_TOML: &str = include_str!("i18n/id.toml");
pub const EN_TOML: &str = include_str!("i18n/en.toml");
/// The language cookie (a preference, not a secret).
pub const LANG_COOKIE: &str = "cadang-lang";

/// One language's messages.
#[derive(Debug)]
pub struct Catalogue {
    pub lang: Lang,
    messages: BTreeMap<String, String>,
}

impl Catalogue {
    /// The message `key`, or `⟦key⟧` when it is missing.
    pub fn m(&self, key: &str) -> String {
        match self.messages.get(key) {
            Some(text) => text.clone(),
            None => {
                tracing::error!(key, lang = self.lang.code(), "console message missing");
                format!("⟦{key}⟧")
            }
        }
    }

    /// The message `key` when there is one, else `fallback` as it is: for
    /// keys made from data (a job state the catalogue does not know yet).
    pub fn m_or(&self, key: &str, fallback: &str) -> String {
        self.messages
            .get(key)
            .cloned()
            .unwrap_or_else(|| fallback.to_string())
    }

    /// The message with `{name}` placeholders filled.
    pub fn f(&self, key: &str, args: &[(&str, &str)]) -> String {
        let mut text = self.m(key);
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// Every key, for the catalogue tests.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.messages.keys().map(String::as_str)
    }

    pub fn code(&self) -> &'static str {
        self.lang.code()
    }
}

/// Flattens `[fleet] title = "..."` into `fleet.title`.
fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

/// Parses a catalogue; a broken one is reported in words (the tests parse
/// both, so this only fails during development).
pub fn parse(lang: Lang, text: &str) -> Result<Catalogue, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("console catalogue {}: {e}", lang.code()))?;
    let mut messages = BTreeMap::new();
    flatten("", &table, &mut messages);
    Ok(Catalogue { lang, messages })
}

/// The compiled-in catalogue of `lang`.
pub fn catalogue(lang: Lang) -> &'static Catalogue {
    static ID: OnceLock<Catalogue> = OnceLock::new();
    static EN: OnceLock<Catalogue> = OnceLock::new();
    let (cell, text) = match lang {
        Lang::Id => (&ID, ID_TOML),
        Lang::En => (&EN, EN_TOML),
    };
    cell.get_or_init(|| {
        parse(lang, text).unwrap_or_else(|e| {
            tracing::error!("{e}");
            Catalogue {
                lang,
                messages: BTreeMap::new(),
            }
        })
    })
}

/// The language a request asks for: `?lang=`, then the cookie, then `id`.
pub fn from_request(query: Option<&str>, headers: &HeaderMap) -> Lang {
    let from_query = query.and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "lang")
            .and_then(|(_, v)| Lang::parse(v))
    });
    from_query
        .or_else(|| super::session::cookie(headers, LANG_COOKIE).and_then(Lang::parse))
        .unwrap_or_default()
}

/// Whether the query names a language (then the answer sets the cookie).
pub fn asked_in_query(query: Option<&str>) -> Option<Lang> {
    query.and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "lang")
            .and_then(|(_, v)| Lang::parse(v))
    })
}
