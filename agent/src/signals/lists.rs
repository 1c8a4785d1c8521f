//! The lists of known ransomware extensions and ransom-note names: shipped
//! in the binary (`agent/data/*.txt`), replaceable by files an operator
//! updates without a new release.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::SignalsError;

const BUILTIN_EXTENSIONS: &str = include_str!("../../data/ransomware-extensions.txt");
const BUILTIN_NOTES: &str = include_str!("../../data/ransom-notes.txt");

/// Compiled lists; matching is case-insensitive on a file's name.
#[derive(Clone, Debug)]
pub struct Lists {
    extensions: GlobSet,
    notes: GlobSet,
    /// Names the lists in the signals ("builtin 2026-12", or the files').
    pub version: String,
}

impl Lists {
    /// The lists compiled into this agent.
    pub fn builtin() -> Lists {
        // The shipped files are checked by a test; a failure here is a
        // build defect, so fall back to empty lists rather than panic.
        let ext = compile(BUILTIN_EXTENSIONS, true, "built-in extensions")
            .unwrap_or_else(|_| GlobSet::empty());
        let notes = compile(BUILTIN_NOTES, false, "built-in ransom notes")
            .unwrap_or_else(|_| GlobSet::empty());
        Lists {
            extensions: ext,
            notes,
            version: format!(
                "builtin ext {} notes {}",
                list_version(BUILTIN_EXTENSIONS),
                list_version(BUILTIN_NOTES)
            ),
        }
    }

    /// Lists read from files; `None` keeps the built-in list for that one.
    pub fn from_files(
        extensions: Option<&Path>,
        notes: Option<&Path>,
    ) -> Result<Lists, SignalsError> {
        let builtin = Lists::builtin();
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| SignalsError::List {
                path: p.display().to_string(),
                reason: e.to_string(),
            })
        };
        let (ext, ext_v) = match extensions {
            Some(p) => {
                let text = read(p)?;
                (
                    compile(&text, true, &p.display().to_string())?,
                    list_version(&text),
                )
            }
            None => (builtin.extensions, list_version(BUILTIN_EXTENSIONS)),
        };
        let (notes, notes_v) = match notes {
            Some(p) => {
                let text = read(p)?;
                (
                    compile(&text, false, &p.display().to_string())?,
                    list_version(&text),
                )
            }
            None => (builtin.notes, list_version(BUILTIN_NOTES)),
        };
        Ok(Lists {
            extensions: ext,
            notes,
            version: format!("ext {ext_v} notes {notes_v}"),
        })
    }

    pub fn known_extension(&self, name: &[u8]) -> bool {
        self.extensions.is_match(std::ffi::OsStr::new(&lossy(name)))
    }

    pub fn ransom_note(&self, name: &[u8]) -> bool {
        self.notes.is_match(std::ffi::OsStr::new(&lossy(name)))
    }
}

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// The `# version X` line of a list, else a short hash of its text, so a
/// report says which list matched.
fn list_version(text: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("# version ").map(str::to_string))
        .unwrap_or_else(|| blake3::hash(text.as_bytes()).to_hex()[..12].to_string())
}

/// One pattern per line; `.ext` lines (extension lists) mean `*.ext`.
fn compile(text: &str, extensions: bool, origin: &str) -> Result<GlobSet, SignalsError> {
    let mut b = GlobSetBuilder::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let pattern = if extensions && line.starts_with('.') && !line.contains(['*', '?']) {
            format!("*{line}")
        } else {
            line.to_string()
        };
        let glob = GlobBuilder::new(&pattern)
            .case_insensitive(true)
            .literal_separator(true)
            .build()
            .map_err(|e| SignalsError::Pattern {
                origin: origin.to_string(),
                line: n + 1,
                reason: e.to_string(),
            })?;
        b.add(glob);
    }
    b.build().map_err(|e| SignalsError::Pattern {
        origin: origin.to_string(),
        line: 0,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_lists_compile_and_match_case_insensitively() {
        compile(BUILTIN_EXTENSIONS, true, "ext").unwrap();
        compile(BUILTIN_NOTES, false, "notes").unwrap();
        let l = Lists::builtin();
        assert!(l.known_extension(b"laporan.xlsx.LOCKED"));
        assert!(l.known_extension(b"data.lockbit"));
        assert!(!l.known_extension(b"laporan.xlsx"));
        assert!(
            !l.known_extension(b"Main.java"),
            "ordinary extensions stay off the list"
        );
        assert!(l.ransom_note(b"HOW_TO_DECRYPT.txt"));
        assert!(l.ransom_note(b"Restore-My-Files.txt"));
        assert!(
            !l.ransom_note(b"readme.txt"),
            "generic names stay off the list"
        );
        assert!(l.version.contains("2026-12"), "{}", l.version);
    }

    #[test]
    fn lists_from_files_replace_the_builtin_and_report_bad_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let ext = dir.path().join("ext.txt");
        std::fs::write(&ext, "# version uji-1\n.kunci\n").unwrap();
        let l = Lists::from_files(Some(&ext), None).unwrap();
        assert!(l.known_extension(b"a.docx.kunci"));
        assert!(
            !l.known_extension(b"a.locked"),
            "the file replaces the built-in list"
        );
        assert!(
            l.ransom_note(b"HOW_TO_DECRYPT.txt"),
            "notes keep the built-in list"
        );
        assert!(l.version.contains("uji-1"));
        std::fs::write(&ext, "a[\n").unwrap();
        let e = Lists::from_files(Some(&ext), None).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = Lists::from_files(Some(&dir.path().join("none")), None).unwrap_err();
        assert!(e.to_string().contains("none"), "{e}");
    }
}
