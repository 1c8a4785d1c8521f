//! Where a repository's files live in a store: the folders (kinds), the
//! rule for file names, and the key of each file (`packs/ab/NAME`,
//! `index/NAME`, ...). These names are part of the on-store format
//! (`docs/format.md` §1), so every backend takes them from here — the local
//! directory and the S3 bucket hold the same keys, and a repository can be
//! copied between them unchanged.

use std::fmt;

use super::{BackendError, BackendResult};

/// The longest file name a store accepts (ids are 64 hex digits; lock and
/// document names are a little longer).
pub const MAX_NAME_LEN: usize = 200;

/// The folders of a repository. The names are part of the on-store format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// The single file `config`.
    Config,
    Keys,
    Packs,
    Index,
    Snapshots,
    Locks,
    /// Prune's marks: packs scheduled for deletion (see `prune`).
    Pending,
    /// cadang's own documents beside the repository format (signed
    /// reports, audit segments), in the folder named (it may be nested,
    /// e.g. `reports/drill-report`). Repository code never reads them and
    /// replication does not copy them: the controller writes them to both
    /// sites itself (`docs/format.md` §11, §12).
    Documents(&'static str),
}

impl FileKind {
    /// The folder of the kind, relative to the repository's root (`""` for
    /// the config file, which sits at the root).
    pub fn dir(self) -> &'static str {
        match self {
            FileKind::Config => "",
            FileKind::Keys => "keys",
            FileKind::Packs => "packs",
            FileKind::Index => "index",
            FileKind::Snapshots => "snapshots",
            FileKind::Locks => "locks",
            FileKind::Pending => "pending",
            FileKind::Documents(dir) => dir,
        }
    }

    /// The folders a new repository is created with.
    pub const ALL_DIRS: [FileKind; 6] = [
        FileKind::Keys,
        FileKind::Packs,
        FileKind::Index,
        FileKind::Snapshots,
        FileKind::Locks,
        FileKind::Pending,
    ];
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileKind::Config => f.write_str("config"),
            k => f.write_str(k.dir()),
        }
    }
}

/// Names are plain, visible, bounded and free of separators, so a name
/// from anywhere (a listing, an index file, a snapshot) can never climb out
/// of its folder or hide as a temporary file.
pub fn check_name(name: &str) -> BackendResult<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(BackendError::InvalidName(name.to_string()))
    }
}

/// The shard folder of a pack: its first two characters. Packs are spread
/// over 256 folders so that no directory (or listing page) holds millions.
pub fn pack_shard(name: &str) -> Option<&str> {
    name.get(..2).filter(|_| name.len() >= 2)
}

/// The key of a file relative to the repository's root, with `/` between
/// parts: `config`, `packs/ab/abcd…`, `index/NAME`. The name is checked.
pub fn relative_key(kind: FileKind, name: &str) -> BackendResult<String> {
    if kind == FileKind::Config {
        return Ok("config".into());
    }
    check_name(name)?;
    Ok(match (kind, pack_shard(name)) {
        (FileKind::Packs, Some(shard)) => format!("{}/{shard}/{name}", kind.dir()),
        _ => format!("{}/{name}", kind.dir()),
    })
}

/// `kind/NAME`, or `config`, as messages name a file.
pub fn what(kind: FileKind, name: &str) -> String {
    if kind == FileKind::Config {
        "config".into()
    } else {
        format!("{kind}/{name}")
    }
}

/// The file name of a listed entry, given its path relative to the kind's
/// folder (`ab/abcd` for packs, `NAME` otherwise). Entries this layout
/// never writes (folder markers, deeper nesting, a pack outside its shard,
/// hidden or foreign names such as leftover temporary files) are skipped
/// rather than reported as files.
pub fn listed_name(kind: FileKind, rest: &str) -> Option<&str> {
    let name = match rest.split_once('/') {
        None => rest,
        Some((shard, name)) if kind == FileKind::Packs => {
            if shard.len() != 2 || !name.starts_with(shard) {
                return None;
            }
            name
        }
        Some(_) => return None,
    };
    if kind == FileKind::Packs && name.len() >= 2 && !rest.contains('/') {
        // A pack name of two characters or more always lives in its shard.
        return None;
    }
    check_name(name).ok().map(|()| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_every_kind() {
        assert_eq!(relative_key(FileKind::Config, "ignored").unwrap(), "config");
        assert_eq!(
            relative_key(FileKind::Packs, "abcdef").unwrap(),
            "packs/ab/abcdef"
        );
        assert_eq!(relative_key(FileKind::Packs, "a").unwrap(), "packs/a");
        assert_eq!(relative_key(FileKind::Index, "00ff").unwrap(), "index/00ff");
        assert_eq!(relative_key(FileKind::Keys, "k1").unwrap(), "keys/k1");
        assert_eq!(relative_key(FileKind::Pending, "p").unwrap(), "pending/p");
        assert_eq!(
            relative_key(FileKind::Documents("reports/drill-report"), "r1.json").unwrap(),
            "reports/drill-report/r1.json"
        );
    }

    #[test]
    fn names_that_could_escape_or_hide_are_refused() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in ["../escape", "a/b", "", ".hidden", "sp ace", "a\\b", &long] {
            assert!(
                matches!(
                    relative_key(FileKind::Index, bad),
                    Err(BackendError::InvalidName(_))
                ),
                "{bad:?}"
            );
        }
        assert!(check_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn listing_skips_entries_the_layout_never_writes() {
        assert_eq!(listed_name(FileKind::Packs, "ab/abcdef"), Some("abcdef"));
        assert_eq!(listed_name(FileKind::Packs, "a"), Some("a"));
        assert_eq!(listed_name(FileKind::Packs, "abcdef"), None);
        assert_eq!(listed_name(FileKind::Packs, "cd/abcdef"), None);
        assert_eq!(listed_name(FileKind::Packs, "ab/"), None);
        assert_eq!(listed_name(FileKind::Packs, "ab/x/abcdef"), None);
        assert_eq!(listed_name(FileKind::Packs, "ab/.tmp-1"), None);
        assert_eq!(listed_name(FileKind::Index, "00ff"), Some("00ff"));
        assert_eq!(listed_name(FileKind::Index, "sub/00ff"), None);
        assert_eq!(listed_name(FileKind::Index, ""), None);
        assert_eq!(listed_name(FileKind::Locks, ".tmp-1"), None);
    }

    /// Every key `relative_key` makes is listed back under its own name.
    #[test]
    fn keys_and_listings_agree() {
        for (kind, name) in [
            (FileKind::Packs, "abcdef"),
            (FileKind::Packs, "a"),
            (FileKind::Index, "00ff"),
            (FileKind::Snapshots, "x-1_2.json"),
        ] {
            let key = relative_key(kind, name).unwrap();
            let rest = key.strip_prefix(&format!("{}/", kind.dir())).unwrap();
            assert_eq!(listed_name(kind, rest), Some(name), "{key}");
        }
    }
}
