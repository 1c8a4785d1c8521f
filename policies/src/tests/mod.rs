//! Loader tests over whole policy sets: the shipped example, a set with
//! one of every error, defaults, and explain.

mod anomaly;
mod broken;
mod defaults;
mod examples;
mod explain;

use std::path::PathBuf;

use crate::diagnostic::Diagnostic;
use crate::model::PolicySet;

/// The example regency shipped in `policies/examples/`.
pub(crate) fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/kabupaten-contoh")
}

/// A minimal valid regency file, for sets built in a test.
pub(crate) const REGENCY: &str = r#"name = "Kabupaten Uji"
zone = "Asia/Makassar"
[stores.pusat-data]
site = "onsite"
[stores.drc]
site = "dr"
[defaults.all]
onsite_store = "pusat-data"
dr_store = "drc"
schedule = "0 1 * * *"
retention_schedule = "0 6 * * *"
[defaults.all.retention]
daily = 7
[defaults.all.verification]
schedule = "0 4 * * 0"
"#;

/// A valid PD file with code `code` and one path source on host `host`.
pub(crate) fn pd(code: &str, host: &str, extra: &str) -> String {
    format!(
        r#"code = "{code}"
name = "Dinas {code}"
group = "pelayanan"
{extra}
[wali_data]
name = "Wali {code}"
nip = "198503122010011004"
[[hosts]]
name = "{host}"
[[hosts.sources]]
name = "berkas"
paths = ["/srv/berkas"]
"#
    )
}

pub(crate) fn load(files: &[(&str, &str)]) -> Result<PolicySet, Vec<Diagnostic>> {
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    crate::load_sources(&files)
}

/// Loads a set that must be valid, showing the diagnostics if not.
pub(crate) fn valid(files: &[(&str, &str)]) -> PolicySet {
    match load(files) {
        Ok(set) => set,
        Err(diags) => panic!("expected a valid set:\n{}", render(&diags)),
    }
}

pub(crate) fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(ToString::to_string).collect()
}
