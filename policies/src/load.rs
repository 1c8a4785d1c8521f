//! Reading a policy directory into a [`PolicySet`], or every error in it.
//!
//! Layout: `DIR/regency.toml` and one file per PD in `DIR/pd/*.toml`.
//!
//! The stages: read the files, parse each as TOML (syntax errors of all
//! files are collected), read the regency file (zone, stores, defaults),
//! read each PD file against it, check what spans files (duplicate codes
//! and hosts), resolve each PD over its defaults, and fingerprint the text.
//! Diagnostics come back sorted by file and position, duplicates removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::de::DeTable;
use toml::Spanned;

use crate::diagnostic::{Diagnostic, SourceFile};
use crate::model::PolicySet;
use crate::pd::{self, PdFile};
use crate::reader::{self, Ctx};
use crate::regency::{self, RegencyFile};
use crate::resolve;
use crate::validate;

/// The regency file's name, in the directory and in [`load_sources`].
pub const REGENCY_FILE: &str = "regency.toml";
/// The directory of PD files under the policy directory.
pub const PD_DIR: &str = "pd";

/// Reads `dir/regency.toml` and `dir/pd/*.toml`.
pub fn load_dir(dir: &Path) -> Result<PolicySet, Vec<Diagnostic>> {
    let files = read_dir(dir)?;
    load_sources(&files)
}

/// The policy files of `dir`, regency first, PD files by name.
pub fn read_dir(dir: &Path) -> Result<Vec<(PathBuf, String)>, Vec<Diagnostic>> {
    let regency = dir.join(REGENCY_FILE);
    let pd_dir = dir.join(PD_DIR);
    let mut paths = vec![regency];
    match std::fs::read_dir(&pd_dir) {
        Ok(entries) => {
            let mut pds: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect();
            pds.sort();
            paths.extend(pds);
        }
        Err(e) => {
            return Err(vec![Diagnostic::whole_file(
                &pd_dir.display().to_string(),
                format!("cannot read the PD directory: {e}"),
                Some(format!("a policy directory holds {REGENCY_FILE} and one file per PD in {PD_DIR}/*.toml")),
            )]);
        }
    }
    let mut files = Vec::with_capacity(paths.len());
    let mut diags = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push((path, text)),
            Err(e) => diags.push(Diagnostic::whole_file(
                &path.display().to_string(),
                format!("cannot read this policy file: {e}"),
                None,
            )),
        }
    }
    if diags.is_empty() {
        Ok(files)
    } else {
        Err(diags)
    }
}

/// Loads a policy set from in-memory files: the one named `regency.toml`
/// is the regency file, every other `.toml` file a PD file.
pub fn load_sources(files: &[(PathBuf, String)]) -> Result<PolicySet, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let (regency_file, pd_files) = classify(files, &mut diags)?;
    let fingerprint = fingerprint(regency_file, &pd_files);
    let regency_src = SourceFile::new(display(&regency_file.0), regency_file.1.clone());
    let pd_srcs: Vec<SourceFile> = pd_files
        .iter()
        .map(|(p, t)| SourceFile::new(display(p), t.clone()))
        .collect();

    let regency = read_regency(&regency_src, &mut diags);
    let pds: Vec<(&SourceFile, PdFile)> = pd_srcs
        .iter()
        .filter_map(|src| read_pd(src, regency.as_ref(), &mut diags).map(|pd| (src, pd)))
        .collect();
    if pd_srcs.is_empty() {
        diags.push(Diagnostic::whole_file(
            &regency_src.name,
            "the policy set has no PD files",
            Some(format!(
                "add one file per PD in {PD_DIR}/, e.g. {PD_DIR}/disdukcapil.toml"
            )),
        ));
    }
    validate::across_files(&pds, &mut diags);
    let resolved = regency
        .as_ref()
        .map(|r| resolve_all(r, &regency_src, pds, &mut diags));
    let order: Vec<&str> = std::iter::once(&regency_src)
        .chain(&pd_srcs)
        .map(|s| s.name.as_str())
        .collect();
    sort(&mut diags, &order);
    finish(diags, regency, resolved, fingerprint)
}

/// A file's path and text, as given to [`load_sources`].
type NamedText = (PathBuf, String);

/// The regency file and the PD files (sorted by name).
fn classify<'a>(
    files: &'a [(PathBuf, String)],
    diags: &mut Vec<Diagnostic>,
) -> Result<(&'a NamedText, Vec<&'a NamedText>), Vec<Diagnostic>> {
    let is_regency = |p: &Path| p.file_name().is_some_and(|n| n == REGENCY_FILE);
    let regencies: Vec<&(PathBuf, String)> = files.iter().filter(|(p, _)| is_regency(p)).collect();
    let mut pds: Vec<&(PathBuf, String)> = files
        .iter()
        .filter(|(p, _)| !is_regency(p) && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    pds.sort_by(|a, b| a.0.cmp(&b.0));
    match regencies.as_slice() {
        [one] => Ok((one, pds)),
        [] => {
            diags.push(Diagnostic::whole_file(
                REGENCY_FILE,
                format!("the policy set has no {REGENCY_FILE}"),
                Some("create it with the regency's name, zone and stores".to_string()),
            ));
            Err(std::mem::take(diags))
        }
        [_, more @ ..] => {
            for (p, _) in more {
                diags.push(Diagnostic::whole_file(
                    &display(p),
                    format!("a second {REGENCY_FILE}: a policy set has one"),
                    None,
                ));
            }
            Err(std::mem::take(diags))
        }
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// Parses the TOML text, reporting every syntax error of the file.
fn parse_toml<'t>(
    src: &'t SourceFile,
    diags: &mut Vec<Diagnostic>,
) -> Option<Spanned<DeTable<'t>>> {
    let (table, errors) = DeTable::parse_recoverable(&src.text);
    if errors.is_empty() {
        return Some(table);
    }
    for e in errors {
        let offset = e.span().map_or(0, |s| s.start);
        diags.push(src.at_offset(offset, format!("TOML syntax: {}", e.message())));
    }
    None
}

fn read_regency(src: &SourceFile, diags: &mut Vec<Diagnostic>) -> Option<RegencyFile> {
    let table = parse_toml(src, diags)?;
    let mut cx = Ctx { file: src, diags };
    reader::refuse_credentials(&mut cx, table.get_ref());
    Some(regency::parse(&mut cx, table.get_ref(), table.span()))
}

/// A PD file is read even when the regency file is broken (in UTC, store
/// names unchecked) so its own errors are reported in the same run.
fn read_pd(
    src: &SourceFile,
    regency: Option<&RegencyFile>,
    diags: &mut Vec<Diagnostic>,
) -> Option<PdFile> {
    let table = parse_toml(src, diags)?;
    let mut cx = Ctx { file: src, diags };
    reader::refuse_credentials(&mut cx, table.get_ref());
    let fallback = crate::settings::Env {
        zone: "UTC",
        stores: None,
    };
    let env = regency.map_or(fallback, RegencyFile::env);
    Some(pd::parse(&mut cx, table.get_ref(), table.span(), &env))
}

fn resolve_all(
    regency: &RegencyFile,
    regency_src: &SourceFile,
    pds: Vec<(&SourceFile, PdFile)>,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, crate::model::PdPolicy> {
    let mut out = BTreeMap::new();
    for (src, pd) in pds {
        let written_in = if pd.settings.drill.check.is_some() {
            src
        } else {
            regency_src
        };
        let group = pd.group.and_then(|g| regency.defaults.get(&Some(g)));
        let check = pd
            .settings
            .drill
            .check
            .as_ref()
            .or_else(|| group.and_then(|g| g.drill.check.as_ref()))
            .or_else(|| {
                regency
                    .defaults
                    .get(&None)
                    .and_then(|a| a.drill.check.as_ref())
            });
        validate::drill_stream(check, written_in, &pd, diags);
        if let Some(p) = resolve::resolve(src, pd, regency, diags) {
            out.insert(p.code.clone(), p);
        }
    }
    out
}

fn finish(
    diags: Vec<Diagnostic>,
    regency: Option<RegencyFile>,
    pds: Option<BTreeMap<String, crate::model::PdPolicy>>,
    fingerprint: String,
) -> Result<PolicySet, Vec<Diagnostic>> {
    if !diags.is_empty() {
        return Err(diags);
    }
    match (regency, pds) {
        (Some(r), Some(pds)) => Ok(PolicySet {
            regency: r.regency,
            pds,
            fingerprint,
        }),
        // Unreachable in practice: a missing part always left a diagnostic.
        _ => Err(vec![Diagnostic::whole_file(
            REGENCY_FILE,
            "the policy set could not be read",
            None,
        )]),
    }
}

/// Files in `order` (regency first), then line and column; the same
/// error reached twice (a bad default inherited by two PDs) once.
fn sort(diags: &mut Vec<Diagnostic>, order: &[&str]) {
    diags.sort_by(|a, b| {
        let rank = |d: &Diagnostic| order.iter().position(|f| *f == d.file);
        (rank(a), a.line, a.column, &a.message).cmp(&(rank(b), b.line, b.column, &b.message))
    });
    diags.dedup();
}

/// blake3 over each file's name (relative to the regency file's directory,
/// so a moved directory keeps its fingerprint) and text, in name order.
fn fingerprint(regency: &(PathBuf, String), pds: &[&(PathBuf, String)]) -> String {
    let base = regency.0.parent().unwrap_or(Path::new(""));
    let mut hasher = blake3::Hasher::new();
    for (path, text) in std::iter::once(regency).chain(pds.iter().copied()) {
        let name = path.strip_prefix(base).unwrap_or(path).to_string_lossy();
        for part in [name.as_bytes(), text.as_bytes()] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    }
    hasher.finalize().to_hex().to_string()
}
