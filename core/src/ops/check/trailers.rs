//! Index files against the store and against pack trailers, streamed: one
//! index file is parsed at a time and each pack it lists is compared, while
//! its trailer is read, with what the file records. Restore finds a blob
//! through the index (pack, offset, lengths, compression), so an index
//! entry that disagrees with what the pack itself records breaks that
//! restore even when every pack hashes to its name. Keyless: trailers are
//! plaintext.
//!
//! Memory: the set of indexed pack ids plus the index file being read and
//! the packs whose trailers are in flight, never the whole index (the old
//! in-memory map of every entry cost ~200 B a chunk; see bench/index.sh).

use std::collections::{HashMap, HashSet};

use tokio::task::JoinSet;

use super::locate::Locations;
use super::CheckReport;
use crate::backend::{BackendError, FileKind};
use crate::error::Result;
use crate::id::Id;
use crate::index::{IndexFile, IndexPack};
use crate::pack::BlobEntry;
use crate::repository::{read_trailer, Repository};

/// Trailer reads in flight (two small ranged reads each).
const PARALLEL_TRAILERS: usize = 8;

/// What the streamed pass learnt: which packs some index file lists (what a
/// restore can find), and the problems found, in a stable order.
#[derive(Default)]
pub(crate) struct Indexed {
    pub packs: HashSet<Id>,
    /// Packs whose trailer was read and compared.
    pub checked: HashSet<Id>,
    pub trailer_problems: Vec<String>,
    pub trailer_warnings: Vec<String>,
}

/// One pack of one index file, compared in a task.
struct PackJob {
    file: String,
    pack: IndexPack,
    /// Stored size from the listing.
    size: u64,
}

struct JobOutcome {
    pack: Id,
    errors: Vec<String>,
    warnings: Vec<String>,
}

/// Reads every index file, one at a time: each pack it lists must exist with
/// the recorded size, and its trailer must agree with every entry. With
/// `locations` (the deep check), every entry is also recorded there.
pub(super) async fn stream_index_files(
    repo: &Repository,
    packs: &HashMap<String, u64>,
    mut locations: Option<&mut Locations>,
    r: &mut CheckReport,
) -> Result<Indexed> {
    let b = repo.backend();
    let mut indexed = Indexed::default();
    let mut running: JoinSet<JobOutcome> = JoinSet::new();
    for f in b.list(FileKind::Index).await? {
        r.index_files += 1;
        let data = match b.read(FileKind::Index, &f.name).await {
            Ok(d) => d,
            Err(BackendError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let idx = match IndexFile::parse(&f.name, &data) {
            Ok(idx) => idx,
            Err(e) => {
                r.errors.push(e.to_string());
                continue;
            }
        };
        drop(data);
        for p in idx.packs {
            indexed.packs.insert(p.id);
            if let Some(l) = locations.as_deref_mut() {
                l.add_pack(&p)?;
            }
            let Some(size) = listed_size(packs, &f.name, &p, r) else {
                continue;
            };
            while running.len() >= PARALLEL_TRAILERS {
                collect(running.join_next().await, &mut indexed, r);
            }
            let backend = repo.backend().clone();
            let job = PackJob {
                file: f.name.clone(),
                pack: p,
                size,
            };
            running.spawn(async move { compare_job(&*backend, job).await });
        }
    }
    while let Some(done) = running.join_next().await {
        collect(Some(done), &mut indexed, r);
    }
    if let Some(l) = locations {
        l.finish();
    }
    // Tasks finish out of order; sorted, two runs over the same damage
    // print the same report.
    // A pack listed by two index files is read twice: its own damage
    // ("pack X: ...") is named once.
    indexed.trailer_problems.sort();
    indexed.trailer_problems.dedup();
    indexed.trailer_warnings.sort();
    Ok(indexed)
}

/// The store's size of a pack an index file lists, after comparing it with
/// the recorded one; `None` when the pack is missing.
fn listed_size(
    packs: &HashMap<String, u64>,
    file: &str,
    p: &IndexPack,
    r: &mut CheckReport,
) -> Option<u64> {
    match packs.get(&p.id.to_hex()) {
        None => {
            r.errors
                .push(format!("pack {} (listed in index/{file}) is missing", p.id));
            None
        }
        Some(&size) => {
            if size != p.size {
                r.errors.push(format!(
                    "pack {} has size {size}, but index/{file} records {}",
                    p.id, p.size
                ));
            }
            Some(size)
        }
    }
}

async fn compare_job(backend: &dyn crate::backend::Backend, job: PackJob) -> JobOutcome {
    let mut out = JobOutcome {
        pack: job.pack.id,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    match read_trailer(backend, &job.pack.id, job.size).await {
        Ok(trailer) => compare(
            &job.pack.id,
            &trailer,
            &job.file,
            &job.pack.blobs,
            &mut out.errors,
            &mut out.warnings,
        ),
        Err(e) => out.errors.push(format!("pack {}: {e}", job.pack.id)),
    }
    out
}

fn collect(
    done: Option<std::result::Result<JobOutcome, tokio::task::JoinError>>,
    indexed: &mut Indexed,
    r: &mut CheckReport,
) {
    match done {
        Some(Ok(o)) => {
            if indexed.checked.insert(o.pack) {
                r.trailers_checked += 1;
            }
            indexed.trailer_problems.extend(o.errors);
            indexed.trailer_warnings.extend(o.warnings);
        }
        Some(Err(e)) => indexed.trailer_problems.push(format!("internal error: a trailer read task crashed ({e}); this is not damage in the repository, run the check again")),
        None => {}
    }
}

/// Every entry index file `file` records for `pack` must be in its trailer
/// with the same type, offset, lengths and compression.
pub(super) fn compare(
    pack: &Id,
    trailer: &[BlobEntry],
    file: &str,
    entries: &[BlobEntry],
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let by_id: HashMap<Id, &BlobEntry> = trailer.iter().map(|e| (e.id, e)).collect();
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
