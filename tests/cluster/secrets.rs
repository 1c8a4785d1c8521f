//! Looking for a custodian's identity where it must never be: the
//! controller's process memory, its log and its state file.

use std::io::{Read, Seek, SeekFrom};

use base64::Engine;
use cadang_core::keys::DataIdentity;

use super::{Cluster, PASSPHRASE};

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The PD's identity, unwrapped from the base64 key file the approval
/// material carries (what a custodian's machine does).
pub fn unwrap_identity(wrapped_base64: &str) -> DataIdentity {
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(wrapped_base64)
        .unwrap();
    DataIdentity::unwrap(&wrapped, PASSPHRASE).unwrap()
}

/// The 32 secret bytes of an `AGE-SECRET-KEY-1...` (bech32).
pub fn raw_identity(text: &str) -> Vec<u8> {
    const CHARSET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let lower = text.to_ascii_lowercase();
    let data = &lower[lower.rfind('1').unwrap() + 1..];
    let values: Vec<u8> = data
        .chars()
        .map(|ch| CHARSET.find(ch).unwrap() as u8)
        .collect();
    let values = &values[..values.len() - 6];
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for v in values {
        acc = (acc << 5) | u32::from(*v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    assert_eq!(out.len(), 32, "an X25519 secret is 32 bytes");
    out
}

/// Every readable mapping of `pid`'s memory, searched for each needle.
pub fn memory_holds(pid: u32, needles: &[&[u8]]) -> Option<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut regions = 0;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (range, perms) = (parts.next().unwrap(), parts.next().unwrap());
        if !perms.starts_with('r') || line.contains("[vvar]") || line.contains("[vsyscall]") {
            continue;
        }
        let (a, b) = range.split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        let mut buf = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        regions += 1;
        for n in needles {
            if contains(&buf, n) {
                return Some(format!("found in {line}"));
            }
        }
    }
    assert!(
        regions > 10,
        "only {regions} regions of the controller could be read"
    );
    None
}

/// The identity (text and raw bytes) is in neither the running
/// controller's memory nor its log; then, with the controller stopped,
/// not in its state file. Stops the controller.
pub fn assert_controller_never_held(c: &mut Cluster, secret_text: &str) {
    let raw = raw_identity(secret_text);
    // The generic `AGE-SECRET-KEY` text is in the binary's own messages, so
    // memory is searched for this identity only.
    let needles: [&[u8]; 2] = [secret_text.as_bytes(), &raw];
    let pid = c.controller_pid().unwrap();
    assert_eq!(
        memory_holds(pid, &needles),
        None,
        "the controller's memory holds the identity"
    );
    let log = c.controller_log();
    assert!(
        !log.contains(secret_text) && !log.contains("AGE-SECRET-KEY"),
        "the controller's log holds an identity"
    );
    c.kill_controller();
    let state = std::fs::read(c.dir().join("ctl/state.redb")).unwrap();
    for n in needles.iter().chain([&b"AGE-SECRET-KEY"[..]].iter()) {
        assert!(!contains(&state, n), "the state file holds an identity");
    }
}
