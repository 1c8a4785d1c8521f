//! Every decoder of bytes that cadang does not control, called as the code
//! calls it on store bytes, policy files or wire messages.
//!
//! One function per fuzz target. The libFuzzer targets in `fuzz_targets/`
//! call these, and the stable-toolchain test `tests/fuzz_corpora.rs` (root
//! crate) includes this same file with `#[path]` and replays every committed
//! corpus and regression input through them, so CI checks what the fuzzer
//! found without a nightly toolchain.
//!
//! A function must never panic: an `Err` from the decoder is the expected
//! answer to garbage. Each returns whether the decoder accepted the input,
//! so the replay test can tell a corpus that reaches past the first check
//! from one the decoder rejects outright. Where a decoder's result feeds arithmetic on numbers
//! from the input (trailer entries, index entries), the follow-up the real
//! readers do is run too, because that is where a crafted number would bite.

use std::path::{Path, PathBuf};

use cadang_core::config::RepoConfig;
use cadang_core::export::Manifest;
use cadang_core::index::{IndexFile, MasterIndex};
use cadang_core::keys::{AgentKey, Credentials};
use cadang_core::pack::{self, BlobEntry, BlobKind, Compression};
use cadang_core::snapshot::Snapshot;
use cadang_core::tree::Tree;
use cadang_core::Id;
use cadang_proto::agent::{EnrollRequest, PollRequest, ReportBatch, ReportKind};
use cadang_proto::signals::BackupSignals;
use cadang_proto::EnrollmentToken;

/// A decoder under test: the target's name (its corpus directory) and entry.
pub type Target = (&'static str, fn(&[u8]) -> bool);

/// Every target, by the name of its directory under `fuzz/corpus/` and
/// `fuzz/regressions/`.
pub const TARGETS: &[Target] = &[
    ("pack_trailer", pack_trailer),
    ("blob", blob),
    ("index", index),
    ("snapshot", snapshot),
    ("tree", tree),
    ("config", config),
    ("credentials", credentials),
    ("manifest", manifest),
    ("policies", policies),
    ("wire_poll", wire_poll),
    ("wire_reports", wire_reports),
    ("wire_enroll", wire_enroll),
];

/// A whole stored pack: the trailer, then the arithmetic a reader does with
/// its entries (payload start, segment ranges, the last segment) before it
/// fetches a byte of ciphertext.
pub fn pack_trailer(data: &[u8]) -> bool {
    let Ok(t) = pack::parse_trailer(data) else {
        return false;
    };
    let head = &data[..data.len().min(4096)];
    if let Some(start) = pack::age_payload_start(head) {
        let _ = pack::plaintext_len(start, t.age_length);
        let _ = pack::segment_ranges(&t.blobs, start, t.age_length);
        let _ = pack::last_segment_range(start, t.age_length);
    }
    true
}

/// One blob as it comes out of a decrypted pack, with the entry numbers the
/// index or trailer claims: `raw_length` (u32 LE), a flag byte (bit 0: zstd,
/// bit 1: tree), then the stored bytes. `decode_blob` checks the numbers and
/// decompresses with a bound; a zstd bomb must fail, not allocate.
pub fn blob(data: &[u8]) -> bool {
    let Some((head, stored)) = data.split_first_chunk::<5>() else {
        return false;
    };
    let Ok(length) = u32::try_from(stored.len()) else {
        return false;
    };
    let entry = BlobEntry {
        id: Id([0; 32]),
        kind: if head[4] & 2 != 0 {
            BlobKind::Tree
        } else {
            BlobKind::Data
        },
        offset: 0,
        length,
        raw_length: u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
        compression: if head[4] & 1 != 0 {
            Compression::Zstd
        } else {
            Compression::None
        },
    };
    let _ = pack::blob_slice(data, &entry);
    pack::decode_blob(stored, &entry, None).is_ok()
}

/// An index file under its own name (an index file is named by its hash, so
/// a store can only serve bytes that hash to the name it lists), merged into
/// a master index, every entry checked against its pack's size as check does.
pub fn index(data: &[u8]) -> bool {
    let name = Id::of_bytes(data).to_hex();
    let Ok(file) = IndexFile::parse(&name, data) else {
        return false;
    };
    for p in &file.packs {
        for e in &p.blobs {
            let _ = pack::check_entry(e, p.size);
        }
        let _ = pack::check_trailer_layout(&p.blobs, p.size);
    }
    let mut master = MasterIndex::default();
    master.add_file(Id::of_bytes(data), &file);
    master.blob_count() > 0 || file.packs.is_empty()
}

/// A snapshot file. The first byte picks what the rest is: `0`, a whole
/// snapshot file under its own name (hostile store bytes); anything else, a
/// payload that a writer holding an agent key signed (a rogue agent), so the
/// fuzzer reaches the payload decoder behind the signature check.
pub fn snapshot(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let file = if mode == 0 {
        rest.to_vec()
    } else {
        let Ok(payload) = std::str::from_utf8(rest) else {
            return false;
        };
        signed_snapshot_file(payload)
    };
    let name = Id::of_bytes(&file).to_hex();
    Snapshot::parse(&name, &file).is_ok()
}

/// A snapshot file around `payload`, signed by a fixed key.
fn signed_snapshot_file(payload: &str) -> Vec<u8> {
    let key = AgentKey::from_hex(&"11".repeat(32)).expect("a fixed valid ed25519 seed");
    serde_json::to_vec(&serde_json::json!({
        "signature": hex::encode(key.sign(payload.as_bytes())),
        "signer": key.public().to_hex(),
        "payload": payload,
    }))
    .expect("serialisable")
}

/// A decrypted tree blob, then the name check restore applies to each entry.
pub fn tree(data: &[u8]) -> bool {
    let Ok(t) = Tree::decode(data) else {
        return false;
    };
    for n in &t.nodes {
        let _ = n.name.is_safe_component();
        let _ = n.name.to_string();
    }
    true
}

/// The keyless `config` file, then the data recipient it names (every open
/// for writing parses it).
pub fn config(data: &[u8]) -> bool {
    let Ok(c) = RepoConfig::from_json(data) else {
        return false;
    };
    cadang_core::keys::DataRecipient::parse(&c.data_recipient).is_ok()
}

/// An agent credential file, then every key in it, as `backup` and `check`
/// read them.
pub fn credentials(data: &[u8]) -> bool {
    let Ok(c) = Credentials::from_json(data) else {
        return false;
    };
    let keys_ok = c.recipient().is_ok() && c.agent_key().is_ok();
    let anchor_ok = match &c.custodian_key {
        Some(k) => cadang_core::certify::TrustAnchors::default()
            .add_hex(k)
            .is_ok(),
        None => true,
    };
    keys_ok && anchor_ok
}

/// An export's `manifest.json` (a medium carried by hand: hostile names).
pub fn manifest(data: &[u8]) -> bool {
    let Ok(m) = Manifest::parse(Path::new("export/manifest.json"), data) else {
        return false;
    };
    let _ = m.covered();
    true
}

/// Separates the regency file from the PD files in a policy input.
pub const POLICY_SPLIT: &str = "\n#--8<-- pd --8<--\n";

/// A policy set: the text up to the first [`POLICY_SPLIT`] is
/// `regency.toml`, each following part one `pd/<n>.toml`, loaded with
/// `policies::load_sources` as `policy check` and the controller do. Policy
/// files are read as UTF-8 text, so other bytes never reach the parser.
pub fn policies(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut parts = text.split(POLICY_SPLIT);
    let regency = parts.next().unwrap_or_default();
    let mut files = vec![(PathBuf::from("p/regency.toml"), regency.to_string())];
    for (i, pd) in parts.enumerate() {
        files.push((PathBuf::from(format!("p/pd/pd{i}.toml")), pd.to_string()));
    }
    cadang_policies::load_sources(&files).is_ok()
}

/// `POST /api/v1/agent/poll`'s body, as axum's `Json` extractor reads it.
pub fn wire_poll(data: &[u8]) -> bool {
    serde_json::from_slice::<PollRequest>(data).is_ok()
}

/// `POST /api/v1/agent/reports`'s body, then each report's ransomware
/// signals as the controller reads them.
pub fn wire_reports(data: &[u8]) -> bool {
    let Ok(batch) = serde_json::from_slice::<ReportBatch>(data) else {
        return false;
    };
    for r in &batch.reports {
        if let ReportKind::Backup {
            signals: Some(v), ..
        } = &r.kind
        {
            let _ = BackupSignals::from_json(v);
        }
    }
    true
}

/// `POST /api/v1/agent/enroll`'s body, then the request checks the
/// controller makes before it touches its state (token secret, signing key).
pub fn wire_enroll(data: &[u8]) -> bool {
    let Ok(req) = serde_json::from_slice::<EnrollRequest>(data) else {
        return false;
    };
    let token_ok = EnrollmentToken::parse_secret(&req.token).is_ok();
    token_ok && cadang_core::keys::AgentPublicKey::from_hex(&req.signing_public_key).is_ok()
}
