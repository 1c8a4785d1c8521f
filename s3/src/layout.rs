//! Object keys of a repository: the same names as the local backend's files,
//! so a repository can be copied between a directory and a bucket unchanged
//! (`config`, `keys/NAME`, `packs/ab/NAME`, `index/NAME`, ...).

use cadang_core::backend::{BackendError, BackendResult, FileKind};

/// The rule of `cadang_core::backend::check_name` (crate-private there):
/// names are plain, visible, bounded and free of separators.
pub(crate) fn check_name(name: &str) -> BackendResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
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

/// The key of a file relative to the repository prefix.
pub(crate) fn relative_key(kind: FileKind, name: &str) -> BackendResult<String> {
    if kind == FileKind::Config {
        return Ok("config".into());
    }
    check_name(name)?;
    Ok(if kind == FileKind::Packs && name.len() >= 2 {
        format!("{}/{}/{name}", kind.dir(), &name[..2])
    } else {
        format!("{}/{name}", kind.dir())
    })
}

/// `kind/NAME`, or `config`, for messages.
pub(crate) fn what(kind: FileKind, name: &str) -> String {
    if kind == FileKind::Config {
        "config".into()
    } else {
        format!("{kind}/{name}")
    }
}

/// The file name of a listed key, given the key relative to the kind's folder
/// (`ab/abcd` for packs, `NAME` otherwise). Keys that this layout never
/// writes (folder markers, deeper nesting, hidden or foreign names) are
/// skipped rather than reported as files.
pub(crate) fn listed_name(kind: FileKind, rest: &str) -> Option<&str> {
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
        // A long pack name always lives in its shard folder.
        return None;
    }
    check_name(name).ok().map(|()| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_local_layout() {
        assert_eq!(relative_key(FileKind::Config, "ignored").unwrap(), "config");
        assert_eq!(
            relative_key(FileKind::Packs, "abcdef").unwrap(),
            "packs/ab/abcdef"
        );
        assert_eq!(relative_key(FileKind::Packs, "a").unwrap(), "packs/a");
        assert_eq!(relative_key(FileKind::Index, "00ff").unwrap(), "index/00ff");
        assert_eq!(relative_key(FileKind::Keys, "k1").unwrap(), "keys/k1");
        assert_eq!(relative_key(FileKind::Pending, "p").unwrap(), "pending/p");
        for bad in ["../escape", "a/b", "", ".hidden", "sp ace"] {
            assert!(
                matches!(
                    relative_key(FileKind::Index, bad),
                    Err(BackendError::InvalidName(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn listing_skips_keys_the_layout_never_writes() {
        assert_eq!(listed_name(FileKind::Packs, "ab/abcdef"), Some("abcdef"));
        assert_eq!(listed_name(FileKind::Packs, "a"), Some("a"));
        assert_eq!(listed_name(FileKind::Packs, "abcdef"), None);
        assert_eq!(listed_name(FileKind::Packs, "cd/abcdef"), None);
        assert_eq!(listed_name(FileKind::Packs, "ab/"), None);
        assert_eq!(listed_name(FileKind::Packs, "ab/x/abcdef"), None);
        assert_eq!(listed_name(FileKind::Index, "00ff"), Some("00ff"));
        assert_eq!(listed_name(FileKind::Index, "sub/00ff"), None);
        assert_eq!(listed_name(FileKind::Index, ""), None);
        assert_eq!(listed_name(FileKind::Locks, ".tmp-1"), None);
    }
}
