//! Checks that span files: a PD code or a host used twice, and a drill
//! check naming a stream its PD does not produce.

use std::collections::HashMap;
use std::ops::Range;

use crate::diagnostic::{Diagnostic, SourceFile, WithHint};
use crate::model::{DrillCheck, SourceKind};
use crate::pd::PdFile;
use crate::reader::Located;

/// PD files with their source text.
pub(crate) type PdFiles<'a> = [(&'a SourceFile, PdFile)];

/// Two PD files with one code, or one host in two PDs (an agent belongs
/// to exactly one PD: its repository credentials are that PD's).
pub(crate) fn across_files(pds: &PdFiles, diags: &mut Vec<Diagnostic>) {
    let mut codes: HashMap<&str, (&SourceFile, &Range<usize>)> = HashMap::new();
    // By host: the file that lists it first, where, and that PD's code.
    let mut hosts: HashMap<&str, (&SourceFile, &Range<usize>, &str)> = HashMap::new();
    for (file, pd) in pds {
        let code = pd.code.as_ref().map_or("?", |c| c.value.as_str());
        if let Some(c) = &pd.code {
            if let Some((first_file, first)) = codes.get(c.value.as_str()) {
                let at = first_file.at(first, "").location();
                diags.push(
                    file.at(&c.span, format!("duplicate PD code `{}`", c.value))
                        .with_hint(format!("already used at {at}: every PD has its own code")),
                );
            } else {
                codes.insert(&c.value, (file, &c.span));
            }
        }
        for h in &pd.hosts {
            match hosts.get(h.name.value.as_str()) {
                Some((first_file, first, other)) if !std::ptr::eq(*first_file, *file) => {
                    let at = first_file.at(first, "").location();
                    diags.push(
                        file.at(
                            &h.name.span,
                            format!("host `{}` is already a host of PD `{other}`", h.name.value),
                        )
                        .with_hint(format!(
                            "see {at}: an agent backs up for one PD only; name the hosts apart"
                        )),
                    );
                }
                Some(_) => {} // Same file: reported by the PD file itself.
                None => {
                    hosts.insert(&h.name.value, (file, &h.name.span, code));
                }
            }
        }
    }
}

/// A PostgreSQL drill check restores one of the PD's dump streams: the
/// stream must be one its sources produce.
pub(crate) fn drill_stream(
    check: Option<&Located<DrillCheck>>,
    written_in: &SourceFile,
    pd: &PdFile,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(Located {
        value: DrillCheck::Postgres { stream, .. },
        span,
    }) = check
    else {
        return;
    };
    let streams: Vec<&str> = pd
        .hosts
        .iter()
        .flat_map(|h| &h.sources)
        .filter_map(|s| match &s.kind {
            SourceKind::Command { stream_name, .. } => Some(stream_name.as_str()),
            SourceKind::Paths(_) => None,
        })
        .collect();
    if streams.contains(&stream.as_str()) {
        return;
    }
    let code = pd.code.as_ref().map_or("?", |c| c.value.as_str());
    let hint = crate::suggest::did_you_mean(stream, streams.iter().copied()).unwrap_or_else(|| {
        if streams.is_empty() {
            format!("PD `{code}` has no command sources; a postgres check needs a `pg_dump` stream")
        } else {
            format!("streams of PD `{code}`: {}", streams.join(", "))
        }
    });
    diags.push(
        written_in
            .at(
                span,
                format!("drill check stream `{stream}` is not a stream of PD `{code}`"),
            )
            .with_hint(hint),
    );
}
