//! One PD file (`pd/disdukcapil.toml`): the PD's identity, its Wali Data,
//! its hosts and their sources, and any settings that override the
//! defaults of its data group.
//!
//! ```toml
//! code = "DISDUKCAPIL"
//! name = "Dinas Kependudukan dan Pencatatan Sipil"
//! group = "kependudukan"
//!
//! [wali_data]
//! name = "Andi Pratama"
//! nip = "198503122010011004"
//!
//! [[hosts]]
//! name = "siak-db"
//! [[hosts.sources]]
//! name = "siak"
//! command = "pg_dump -Fc siak"
//! stream = "siak.dump"
//! ```

use std::collections::HashMap;
use std::ops::Range;

use toml::de::DeTable;

use crate::diagnostic::WithHint;
use crate::model::{AnomalyPolicy, DataGroup, SourceKind, WaliData};
use crate::nip;
use crate::reader::{Ctx, Located, Table};
use crate::schedule::Schedule;
use crate::settings::{self, Env, Settings, SETTINGS_KEYS};
use crate::suggest;

const IDENTITY_KEYS: [&str; 5] = ["code", "name", "group", "wali_data", "hosts"];
const HOST_KEYS: [&str; 2] = ["name", "sources"];
const SOURCE_KEYS: [&str; 8] = [
    "name", "paths", "exclude", "command", "stream", "schedule", "tags", "anomaly",
];

/// A PD file, read; defaults not yet applied.
pub(crate) struct PdFile {
    pub code: Option<Located<String>>,
    pub name: Option<String>,
    pub group: Option<DataGroup>,
    pub wali_data: Option<WaliData>,
    pub hosts: Vec<RawHost>,
    pub settings: Settings,
}

pub(crate) struct RawHost {
    pub name: Located<String>,
    pub sources: Vec<RawSource>,
}

pub(crate) struct RawSource {
    pub name: String,
    /// The `[[hosts.sources]]` header.
    pub span: Range<usize>,
    pub kind: SourceKind,
    pub schedule: Option<Located<Schedule>>,
    pub excludes: Vec<String>,
    pub tags: Vec<String>,
    /// `[hosts.sources.anomaly]`.
    pub anomaly: AnomalyPolicy,
}

pub(crate) fn parse(cx: &mut Ctx, root: &DeTable, root_span: Range<usize>, env: &Env) -> PdFile {
    let t = Table::new(root, root_span, "this PD file");
    let allowed: Vec<&str> = IDENTITY_KEYS
        .iter()
        .chain(SETTINGS_KEYS.iter())
        .copied()
        .collect();
    t.check_keys(cx, &allowed);
    let hosts = t
        .tables(cx, "hosts")
        .into_iter()
        .filter_map(|(table, span)| host(cx, Table::new(table, span, "[[hosts]]"), env))
        .collect::<Vec<_>>();
    let listed = t.value("hosts").map(|v| v.get_ref());
    let no_hosts = match listed {
        None => true,
        Some(toml::de::DeValue::Array(items)) => items.is_empty(),
        Some(_) => false,
    };
    if no_hosts {
        cx.error_hint(
            &t.span,
            "this PD has no hosts",
            "add the servers to back up: [[hosts]] name = \"...\" with [[hosts.sources]] under it",
        );
    }
    report_duplicate_hosts(cx, &hosts);
    PdFile {
        code: code(cx, &t),
        name: t
            .required_string(cx, "name", "the PD's full name")
            .map(|n| n.value),
        group: group(cx, &t),
        wali_data: wali_data(cx, &t),
        hosts,
        settings: settings::parse(cx, &t, env),
    }
}

/// Upper-case letters, digits, `-` and `_`: the code names repositories
/// and appears in URLs.
fn code(cx: &mut Ctx, t: &Table) -> Option<Located<String>> {
    let code = t.required_string(
        cx,
        "code",
        "a short upper-case code such as \"DISDUKCAPIL\"",
    )?;
    let valid = code.value.len() <= 32
        && code
            .value
            .starts_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit())
        && code
            .value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        cx.error_hint(
            &code.span,
            format!("PD code `{}` is not a valid code", code.value),
            format!(
                "use up to 32 upper-case letters, digits, `-` or `_`, e.g. `{}`",
                code.value.to_ascii_uppercase().replace(' ', "-")
            ),
        );
        return None;
    }
    Some(code)
}

fn group(cx: &mut Ctx, t: &Table) -> Option<DataGroup> {
    let group = t.required_string(cx, "group", "the PD's data group, e.g. \"kependudukan\"")?;
    if let Some(g) = DataGroup::from_key(&group.value) {
        return Some(g);
    }
    let keys = DataGroup::ALL.iter().map(|(_, k)| *k);
    let hint = suggest::did_you_mean(&group.value, keys.clone())
        .unwrap_or_else(|| format!("data groups: {}", keys.collect::<Vec<_>>().join(", ")));
    cx.error_hint(
        &group.span,
        format!("unknown data group `{}`", group.value),
        hint,
    );
    None
}

fn wali_data(cx: &mut Ctx, t: &Table) -> Option<WaliData> {
    if t.value("wali_data").is_none() {
        cx.error_hint(
            &t.span,
            "this PD has no Wali Data",
            "every PD names its data custodian: [wali_data] name = \"...\" and nip = \"<18 digits>\"",
        );
        return None;
    }
    let (table, span) = t.table(cx, "wali_data")?;
    let w = Table::new(table, span, "[wali_data]");
    w.check_keys(cx, &["name", "nip"]);
    let name = w.required_string(cx, "name", "the Wali Data's full name");
    let nip = w.required_string(cx, "nip", "the Wali Data's 18-digit NIP")?;
    if let Err(e) = nip::parse(&nip.value) {
        let offset = cx.file.offset_in_string(&nip.span, &nip.value, e.offset);
        let d = cx
            .file
            .at_offset(offset, format!("malformed NIP of the Wali Data: {e}"))
            .with_hint("a NIP is 18 digits: birth date YYYYMMDD, appointment YYYYMM, sex 1 or 2, serial 001-999; copy it from the SK or SIMPEG");
        cx.push(d);
        return None;
    }
    Some(WaliData {
        name: name?.value,
        nip: nip.value,
    })
}

fn host(cx: &mut Ctx, h: Table, env: &Env) -> Option<RawHost> {
    h.check_keys(cx, &HOST_KEYS);
    let name = h.required_string(cx, "name", "the host name its agent enrolls with");
    let label = format!(
        "[[hosts.sources]] of host `{}`",
        name.as_ref().map_or("?", |n| n.value.as_str())
    );
    let sources: Vec<RawSource> = h
        .tables(cx, "sources")
        .into_iter()
        .filter_map(|(table, span)| source(cx, Table::new(table, span, label.clone()), env))
        .collect();
    if h.value("sources").is_none() {
        cx.error_hint(
            &h.span,
            "this host has no sources",
            "add [[hosts.sources]] with `paths` or `command` + `stream`",
        );
    }
    report_duplicate_sources(cx, &sources);
    Some(RawHost {
        name: name?,
        sources,
    })
}

fn source(cx: &mut Ctx, s: Table, env: &Env) -> Option<RawSource> {
    s.check_keys(cx, &SOURCE_KEYS);
    let name = s.required_string(cx, "name", "a name for this source, unique on the host");
    let schedule = settings::schedule(cx, &s, "schedule", env.zone);
    let tags = s
        .strings(cx, "tags")
        .map(|l| l.value.into_iter().map(|t| t.value).collect())
        .unwrap_or_default();
    let anomaly = settings::sub_table(cx, &s, "anomaly", &crate::anomaly::ANOMALY_KEYS)
        .map(|a| crate::anomaly::parse(cx, &a))
        .unwrap_or_default();
    let kind = source_kind(cx, &s)?;
    let excludes = s
        .strings(cx, "exclude")
        .map(|l| l.value.into_iter().map(|e| e.value).collect())
        .unwrap_or_default();
    Some(RawSource {
        name: name?.value,
        span: s.span.clone(),
        kind,
        schedule,
        excludes,
        tags,
        anomaly,
    })
}

fn source_kind(cx: &mut Ctx, s: &Table) -> Option<SourceKind> {
    let paths = s.strings(cx, "paths");
    let command = s.string(cx, "command");
    match (paths, command) {
        (Some(_), Some(c)) => {
            cx.error_hint(
                &c.span,
                "a source has either `paths` or `command`, not both",
                "split it into two [[hosts.sources]] entries",
            );
            None
        }
        (Some(paths), None) => {
            for p in paths.value.iter().filter(|p| !p.value.starts_with('/')) {
                cx.error(
                    &p.span,
                    format!(
                        "path `{}` is not absolute: write the full path from `/`",
                        p.value
                    ),
                );
            }
            if paths.value.is_empty() {
                cx.error(
                    &paths.span,
                    "`paths` is empty: list the directories or files to back up",
                );
            }
            Some(SourceKind::Paths(
                paths.value.into_iter().map(|p| p.value).collect(),
            ))
        }
        (None, Some(command)) => {
            if let Some(span) = s.key_span("exclude") {
                cx.error(
                    &span,
                    "`exclude` applies to `paths` sources, not to a `command` stream",
                );
            }
            let stream = s.required_string(
                cx,
                "stream",
                "the name the command's output is stored under, e.g. \"siak.dump\"",
            )?;
            Some(SourceKind::Command {
                stream_name: stream.value,
                command: command.value,
            })
        }
        (None, None) => {
            cx.error_hint(&s.span, "this source has neither `paths` nor `command`", "files: paths = [\"/srv/data\"]; a database dump: command = \"pg_dump -Fc db\" and stream = \"db.dump\"");
            None
        }
    }
}

fn report_duplicate_hosts(cx: &mut Ctx, hosts: &[RawHost]) {
    let mut seen: HashMap<&str, &Range<usize>> = HashMap::new();
    for h in hosts {
        if let Some(first) = seen.insert(&h.name.value, &h.name.span) {
            let line = cx.file.at(first, "").line;
            cx.error_hint(
                &h.name.span,
                format!("duplicate host `{}` in this PD", h.name.value),
                format!("first listed on line {line}: merge their sources into one [[hosts]]"),
            );
        }
    }
}

/// Same host + same source name, same path twice, or the same stream
/// twice: each would make two jobs write one thing.
fn report_duplicate_sources(cx: &mut Ctx, sources: &[RawSource]) {
    let mut names: HashMap<&str, &Range<usize>> = HashMap::new();
    let mut outputs: HashMap<String, (&str, &Range<usize>)> = HashMap::new();
    for s in sources {
        if let Some(first) = names.insert(&s.name, &s.span) {
            let line = cx.file.at(first, "").line;
            cx.error_hint(
                &s.span,
                format!("duplicate source `{}` on this host", s.name),
                format!("first defined on line {line}: give each source its own name"),
            );
        }
        let outputs_of: Vec<String> = match &s.kind {
            SourceKind::Paths(paths) => paths.iter().map(|p| normalise_path(p)).collect(),
            SourceKind::Command { stream_name, .. } => vec![format!("stream:{stream_name}")],
        };
        for output in outputs_of {
            if let Some((other, first)) = outputs.get(&output) {
                let line = cx.file.at(first, "").line;
                let what = output
                    .strip_prefix("stream:")
                    .map_or(format!("path `{output}`"), |st| format!("stream `{st}`"));
                cx.error_hint(&s.span, format!("duplicate source: {what} is already backed up by source `{other}` on this host"), format!("see line {line}: back each path or stream up once"));
            } else {
                outputs.insert(output, (&s.name, &s.span));
            }
        }
    }
}

/// `/srv/data/` and `/srv/data` are the same directory.
fn normalise_path(p: &str) -> String {
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}
