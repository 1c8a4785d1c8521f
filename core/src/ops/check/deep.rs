//! Reading packs whole: re-hash (keyless), compare the trailer with the
//! pack's real layout, and with the identity decrypt and verify every blob
//! on every core. What verified is recorded in the deep check's compact
//! [`Locations`] (a bit a listing), not in a set of every blob id; only the
//! blobs that failed are kept by id (damage, not the repository's size).

use std::collections::HashMap;

use tokio::task::JoinSet;

use super::locate::Locations;
use super::tree_read::Keys;
use super::{CheckReport, Indexed};
use crate::id::Id;
use crate::keys::{DataIdentity, RepoSecret};
use crate::pack::{self, BlobEntry};
use crate::pack_read::{PackRead, PackReads, PARALLEL_READS};
use crate::repository::Repository;

/// Blobs that did not decrypt or verify, and why (the intact ones are
/// marked in [`Locations`]).
pub(super) type Failed = HashMap<Id, String>;

/// One pack's outcome from a decrypting worker.
struct PackOutcome {
    ok: Vec<Id>,
    failed: Vec<(Id, String)>,
    problems: Vec<String>,
}

/// What the deep pass fills in, when there is one.
pub(super) struct Deep<'a> {
    pub keys: &'a Keys,
    pub locations: &'a mut Locations,
}

pub(super) async fn read_packs(
    repo: &Repository,
    names: Vec<String>,
    indexed: &Indexed,
    mut deep: Option<Deep<'_>>,
    r: &mut CheckReport,
) -> Failed {
    // Decrypting is the CPU-heavy part: as many workers as cores, fed by
    // PARALLEL_READS reads in flight.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let keys = deep
        .as_ref()
        .map(|d| (d.keys.identity.clone(), d.keys.secret.clone()));
    let mut problems = Vec::new();
    let mut failed = Failed::new();
    let mut workers: JoinSet<PackOutcome> = JoinSet::new();
    let mut reads = PackReads::new(repo.backend().clone(), names, PARALLEL_READS);
    while let Some((name, read)) = reads.next().await {
        let data = match read {
            PackRead::Whole(d) => d,
            PackRead::Damaged => {
                problems.push(format!(
                    "pack {name} is corrupt: its content does not match its name"
                ));
                continue;
            }
            PackRead::Unreadable(e) => {
                problems.push(format!("pack {name} cannot be read: {e}"));
                continue;
            }
        };
        let Some(blobs) = layout(&name, &data, &mut problems) else {
            continue;
        };
        // Indexed packs had their trailer compared with the index already
        // (ranged reads); a pack no index lists is counted here.
        if name
            .parse::<Id>()
            .is_ok_and(|id| !indexed.checked.contains(&id))
        {
            r.trailers_checked += 1;
        }
        let Some((identity, secret)) = &keys else {
            continue;
        };
        while workers.len() >= cores {
            let done = workers.join_next().await;
            collect(done, deep.as_mut(), &mut failed, &mut problems, r);
        }
        let (identity, secret) = (identity.clone(), secret.clone());
        workers.spawn_blocking(move || verify_pack(&name, &data, &blobs, &identity, &secret));
    }
    while let Some(done) = workers.join_next().await {
        collect(Some(done), deep.as_mut(), &mut failed, &mut problems, r);
    }
    // Reads and workers finish out of order; sorted, two runs over the same
    // damage print the same report.
    problems.sort();
    r.errors.extend(problems);
    failed
}

fn collect(
    done: Option<std::result::Result<PackOutcome, tokio::task::JoinError>>,
    deep: Option<&mut Deep<'_>>,
    failed: &mut Failed,
    problems: &mut Vec<String>,
    r: &mut CheckReport,
) {
    match done {
        Some(Ok(o)) => {
            r.blobs_verified += o.ok.len();
            if let Some(d) = deep {
                for id in &o.ok {
                    d.locations.mark_intact(id);
                }
            }
            failed.extend(o.failed);
            problems.extend(o.problems);
        }
        Some(Err(e)) => problems.push(format!("internal error: a pack verification task crashed ({e}); this is not damage in the repository, run the check again")),
        None => {}
    }
}

/// Parses the trailer of a whole pack and checks it describes the pack's
/// real plaintext exactly. Keyless. (The index was compared with the same
/// trailer through ranged reads: a pack that hashes to its name has one
/// trailer, so the comparison is not repeated here.)
fn layout(name: &str, data: &[u8], problems: &mut Vec<String>) -> Option<Vec<BlobEntry>> {
    let trailer = match pack::parse_trailer(data) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("pack {name}: {e}"));
            return None;
        }
    };
    let head = &data[..(trailer.age_length as usize).min(4096)];
    let plain =
        pack::age_payload_start(head).and_then(|p| pack::plaintext_len(p, trailer.age_length));
    let used: u64 = trailer.blobs.iter().map(|e| e.length as u64).sum();
    match plain {
        None => problems.push(format!("pack {name}: no readable age header")),
        Some(p) if p != used => problems.push(format!(
            "pack {name}: its trailer accounts for {used} bytes of a {p}-byte plaintext"
        )),
        Some(_) => {}
    }
    Some(trailer.blobs)
}

/// Decrypts a pack as a stream (never its whole plaintext at once) and
/// checks every blob against its id.
fn verify_pack(
    name: &str,
    data: &[u8],
    blobs: &[BlobEntry],
    identity: &DataIdentity,
    secret: &RepoSecret,
) -> PackOutcome {
    let mut out = PackOutcome {
        ok: Vec::new(),
        failed: Vec::new(),
        problems: Vec::new(),
    };
    let mut stream = match pack::open_stream(data, identity) {
        Ok(s) => s,
        Err(e) => {
            out.problems
                .push(format!("pack {name} does not decrypt: {e}"));
            out.failed.extend(
                blobs
                    .iter()
                    .map(|b| (b.id, format!("its pack {name} does not decrypt"))),
            );
            return out;
        }
    };
    let mut buf = Vec::new();
    for e in blobs {
        match pack::read_blob(&mut stream, e, &mut buf)
            .and_then(|s| pack::decode_blob(s, e, Some(secret)))
        {
            Ok(_) => out.ok.push(e.id),
            Err(err) => {
                out.problems.push(format!("pack {name}: {err}"));
                out.failed.push((e.id, format!("pack {name}: {err}")));
            }
        }
    }
    out
}
