//! Index entries against pack trailers. Restore finds a blob through the
//! index (pack, offset, lengths, compression), so an index entry that
//! disagrees with what the pack itself records breaks that restore even
//! when every pack hashes to its name. Keyless: trailers are plaintext.

use std::collections::{HashMap, HashSet};

use tokio::task::JoinSet;

use super::{CheckReport, Indexed};
use crate::error::Result;
use crate::id::Id;
use crate::pack::BlobEntry;
use crate::repository::{read_trailer, Repository};

/// Trailer reads in flight (two small ranged reads each).
const PARALLEL_TRAILERS: usize = 8;

/// Compares, for every indexed pack present in the store and not read
/// whole (`read_whole`), its trailer with every index file naming it.
pub(super) async fn cross_check_ranged(
    repo: &Repository,
    packs: &HashMap<String, u64>,
    indexed: &Indexed,
    read_whole: &HashSet<&String>,
    r: &mut CheckReport,
) -> Result<()> {
    let mut todo: Vec<(Id, u64)> = indexed
        .by_pack
        .keys()
        .filter_map(|id| {
            let name = id.to_hex();
            let size = *packs.get(&name)?;
            (!read_whole.contains(&name)).then_some((*id, size))
        })
        .collect();
    todo.sort();
    let mut queue = todo.into_iter();
    let mut running = JoinSet::new();
    let mut problems = Vec::new();
    loop {
        while running.len() < PARALLEL_TRAILERS {
            let Some((id, size)) = queue.next() else {
                break;
            };
            let backend = repo.backend().clone();
            running.spawn(async move { (id, read_trailer(&*backend, &id, size).await) });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (id, trailer) = match done {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("internal error: a trailer read task crashed ({e}); this is not damage in the repository, run the check again"));
                continue;
            }
        };
        r.trailers_checked += 1;
        match trailer {
            Ok(blobs) => compare(&id, &blobs, indexed, &mut problems, &mut r.warnings),
            Err(e) => problems.push(format!("pack {id}: {e}")),
        }
    }
    problems.sort();
    r.errors.extend(problems);
    Ok(())
}

/// Every entry an index file records for `pack` must be in its trailer with
/// the same type, offset, lengths and compression.
pub(super) fn compare(
    pack: &Id,
    trailer: &[BlobEntry],
    indexed: &Indexed,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let Some(files) = indexed.by_pack.get(pack) else {
        return;
    };
    let by_id: HashMap<Id, &BlobEntry> = trailer.iter().map(|e| (e.id, e)).collect();
    for (file, _, entries) in files {
        let mut listed = 0usize;
        for e in entries {
            match by_id.get(&e.id) {
                None => errors.push(format!(
                    "index/{file} says pack {pack} holds blob {}, but the pack's own trailer does not list it",
                    e.id
                )),
                Some(t) => {
                    listed += 1;
                    let diffs = differences(e, t);
                    if !diffs.is_empty() {
                        errors.push(format!(
                            "index/{file} disagrees with the trailer of pack {pack} about blob {}: {}",
                            e.id,
                            diffs.join(", ")
                        ));
                    }
                }
            }
        }
        if listed < trailer.len() {
            warnings.push(format!(
                "index/{file} lists {listed} of the {} blobs pack {pack} holds",
                trailer.len()
            ));
        }
    }
}

/// "offset 10 (trailer: 0)" for each field that differs.
fn differences(index: &BlobEntry, trailer: &BlobEntry) -> Vec<String> {
    let mut d = Vec::new();
    let mut field = |name: &str, i: String, t: String| {
        if i != t {
            d.push(format!("{name} {i} (trailer: {t})"));
        }
    };
    field(
        "type",
        format!("{:?}", index.kind),
        format!("{:?}", trailer.kind),
    );
    field(
        "offset",
        index.offset.to_string(),
        trailer.offset.to_string(),
    );
    field(
        "length",
        index.length.to_string(),
        trailer.length.to_string(),
    );
    field(
        "raw length",
        index.raw_length.to_string(),
        trailer.raw_length.to_string(),
    );
    field(
        "compression",
        format!("{:?}", index.compression),
        format!("{:?}", trailer.compression),
    );
    d
}
