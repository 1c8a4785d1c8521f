//! Trees: one directory's entries, serialised deterministically so an
//! unchanged directory gets the same id and is stored once. Trees are blobs
//! like file chunks: compressed and encrypted in (tree) packs.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

/// A file name or path as raw bytes. Linux names need not be UTF-8; such names
/// are stored as `{"hex": "..."}`, all others as plain strings.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileName(pub Vec<u8>);

impl FileName {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// True for a single, harmless path component: not empty, not `.` or
    /// `..`, no `/` and no NUL. Restore refuses anything else.
    pub fn is_safe_component(&self) -> bool {
        !self.0.is_empty()
            && self.0 != b"."
            && self.0 != b".."
            && !self.0.contains(&b'/')
            && !self.0.contains(&0)
    }
}

impl fmt::Debug for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl From<&[u8]> for FileName {
    fn from(b: &[u8]) -> Self {
        FileName(b.to_vec())
    }
}

impl Serialize for FileName {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("hex", &hex::encode(&self.0))?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for FileName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or {\"hex\": ...}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<FileName, E> {
                Ok(FileName(v.as_bytes().to_vec()))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<FileName, A::Error> {
                let mut out = None;
                while let Some(k) = m.next_key::<String>()? {
                    if k == "hex" {
                        let h: String = m.next_value()?;
                        out = Some(FileName(hex::decode(h).map_err(de::Error::custom)?));
                    } else {
                        return Err(de::Error::unknown_field(&k, &["hex"]));
                    }
                }
                out.ok_or_else(|| de::Error::missing_field("hex"))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Chardev,
    Blockdev,
}

/// A piece of a file's content: a chunk (by id) or a hole of a sparse file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Extent {
    Chunk(Id),
    Hole(u64),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: FileName,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits including setuid/setgid/sticky (not the file type).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    #[serde(default)]
    pub size: u64,
    /// Hard-link bookkeeping: files with `links > 1` and the same
    /// (device, inode) are restored as one file with several names.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub links: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub device: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inode: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sparse: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Extent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<FileName>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sorts by name so the encoding (and so the tree's id) is deterministic.
    pub fn encode(mut self) -> Vec<u8> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        serde_json::to_vec(&self).expect("serialisable")
    }

    pub fn decode(data: &[u8]) -> Result<Tree> {
        serde_json::from_slice(data).map_err(|e| Error::Corrupt(format!("tree is unreadable: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_names_round_trip() {
        let n = FileName(vec![b'a', 0xff, 0xfe, b'z']);
        let j = serde_json::to_string(&n).unwrap();
        assert_eq!(j, r#"{"hex":"61fffe7a"}"#);
        assert_eq!(serde_json::from_str::<FileName>(&j).unwrap(), n);
        let u = FileName(b"laporan keuangan.pdf".to_vec());
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            r#""laporan keuangan.pdf""#
        );
    }

    #[test]
    fn unsafe_components_are_recognised() {
        for bad in [
            &b""[..],
            b".",
            b"..",
            b"../etc",
            b"a/b",
            b"/abs",
            b"nul\0byte",
        ] {
            assert!(!FileName(bad.to_vec()).is_safe_component(), "{bad:?}");
        }
        assert!(FileName(b"..hidden".to_vec()).is_safe_component());
    }

    #[test]
    fn extents_serialise_compactly() {
        let e = vec![Extent::Chunk(Id([7; 32])), Extent::Hole(4096)];
        let j = serde_json::to_string(&e).unwrap();
        assert!(j.ends_with(",4096]"));
        assert_eq!(serde_json::from_str::<Vec<Extent>>(&j).unwrap(), e);
    }
}
