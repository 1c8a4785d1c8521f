//! Phase 3: each needed pack read once, decoded on a blocking thread, and
//! written by one writer thread. Two lanes take packs from one queue: while
//! one lane reads a pack, the other decodes; the writer writes what both
//! decoded. Memory is bounded: two stored packs (16 MiB each by default,
//! each lane's buffer reused from pack to pack), the chunk each lane is
//! decoding, and [`IN_FLIGHT`] decoded chunks queued for each writer.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

use cadang_core::backend::FileKind;
use cadang_core::keys::RepoSecret;
use cadang_core::repository::BlobReader;
use cadang_core::Id;

use super::decode::{self, PackBytes, PackOutcome};
use super::files::{Piece, Writer};
use super::plan::Chunk;
use super::{blocking, Reporter, RestoreError};

/// Decoded chunks waiting for each writer (chunks are ~1 MiB on average, at
/// most 8 MiB with the default chunker). Three and two spares instead of
/// four and four: the same restore CPU on the dense bench, peak RSS ~112
/// instead of ~116–133 MiB (restic's: 121–134 MiB on the same data).
const IN_FLIGHT: usize = 3;
/// Written chunks' buffers kept for the lanes to decode into: reusing them
/// saves the page faults (and glibc's trimming) of a fresh buffer per chunk.
const SPARE_BUFFERS: usize = 2;

/// What phase 3 did, reading and writing.
#[derive(Default)]
pub(super) struct DataOutcome {
    pub errors: Vec<String>,
    pub damaged: HashSet<u32>,
}

/// Shared by the pack lanes.
struct Lanes<'r, 'a> {
    reader: &'r BlobReader<'a>,
    queue: Mutex<std::vec::IntoIter<(Id, Vec<Chunk>)>>,
    paths: Arc<Vec<PathBuf>>,
    secret: Arc<RepoSecret>,
    progress: &'r Reporter,
    tx: Vec<Sender<Piece>>,
    spare: Receiver<Vec<u8>>,
    outcome: Mutex<DataOutcome>,
}

/// Writer threads: file creation and page-cache copies are kernel work
/// worth a core of their own on a many-file restore; two writers (each
/// owning every other file) keep one slow create from holding up the rest.
const WRITERS: usize = 2;

/// Runs phase 3 and returns the writer (every file finished, metadata set).
pub(super) async fn write_data(
    reader: &BlobReader<'_>,
    chunks: Vec<Chunk>,
    writer: Writer,
    progress: &Reporter,
) -> Result<(Writer, DataOutcome), RestoreError> {
    let paths: Arc<Vec<PathBuf>> = Arc::new(writer.slots.iter().map(|s| s.path.clone()).collect());
    let (give_back, spare) = crossbeam_channel::bounded::<Vec<u8>>(SPARE_BUFFERS);
    let mut tx = Vec::new();
    let mut writing = Vec::new();
    for mut w in writer.split(WRITERS) {
        let (t, rx) = crossbeam_channel::bounded::<Piece>(IN_FLIGHT);
        let give_back = give_back.clone();
        tx.push(t);
        writing.push(tokio::task::spawn_blocking(move || {
            for piece in rx {
                if let Some(buf) = w.take(piece) {
                    let _ = give_back.try_send(buf); // enough spares: dropped
                }
            }
            w.finish_all();
            w
        }));
    }
    drop(give_back);
    let lanes = Lanes {
        reader,
        queue: Mutex::new(by_pack(chunks).into_iter()),
        paths,
        secret: Arc::new(reader.secret().clone()),
        progress,
        tx,
        spare,
        outcome: Mutex::new(DataOutcome::default()),
    };
    let (a, b) = tokio::join!(lane(&lanes), lane(&lanes));
    // The last sender goes with the lanes: the writer sees the end.
    let outcome = lanes.outcome.into_inner().expect("not poisoned");
    drop(lanes.tx);
    let mut done = Vec::new();
    for w in writing {
        done.push(
            w.await
                .map_err(|e| RestoreError::Internal(format!("a file writer failed: {e}")))?,
        );
    }
    let writer = Writer::merge(done);
    a?;
    b?;
    Ok((writer, outcome))
}

/// The chunks grouped by pack, each pack's sorted by offset (a stream
/// read front to back).
fn by_pack(chunks: Vec<Chunk>) -> Vec<(Id, Vec<Chunk>)> {
    let mut by_pack: BTreeMap<Id, Vec<Chunk>> = BTreeMap::new();
    for c in chunks {
        by_pack.entry(c.loc.pack).or_default().push(c);
    }
    let mut packs: Vec<(Id, Vec<Chunk>)> = by_pack.into_iter().collect();
    for (_, chunks) in &mut packs {
        chunks.sort_unstable_by_key(|c| c.loc.offset);
    }
    packs
}

/// Reads a whole pack when most of it is needed, else only the needed parts
/// with ranged reads: restoring one file from an S3 store does not fetch
/// whole 16 MiB packs. The whole pack is not hashed against its name here:
/// as for the ranged reads, integrity rests on age's authenticated segments
/// and on every chunk's keyed id, both checked while decoding (hashing every
/// pack as well was a tenth of a restore's CPU).
///
/// `spare` is the lane's buffer of the pack before: a whole pack is read
/// into it (see [`cadang_core::backend::Backend::read_into`]).
async fn read_pack(
    reader: &BlobReader<'_>,
    pack: &Id,
    chunks: &[Chunk],
    spare: Vec<u8>,
) -> cadang_core::Result<PackBytes> {
    let needed: u64 = chunks.iter().map(|c| c.loc.length as u64).sum();
    match reader.index.pack_size(pack) {
        Some(size) if needed * 4 < size => {
            let entries: Vec<_> = chunks.iter().map(|c| c.loc.entry(c.id)).collect();
            Ok(PackBytes::AgePart(reader.pack_parts(pack, &entries).await?))
        }
        _ => {
            let backend = reader.repo().backend();
            Ok(PackBytes::Whole(
                backend
                    .read_into(FileKind::Packs, &pack.to_hex(), spare)
                    .await?,
            ))
        }
    }
}

async fn lane(l: &Lanes<'_, '_>) -> Result<(), RestoreError> {
    // One stored blob at a time, the buffer kept by the lane (see decode_pack).
    let mut scratch: Vec<u8> = Vec::new();
    // The stored pack, kept from pack to pack for the same reason.
    let mut pack_buf: Vec<u8> = Vec::new();
    loop {
        let next = l.queue.lock().expect("not poisoned").next();
        let Some((pack, chunks)) = next else {
            return Ok(());
        };
        let read = read_pack(l.reader, &pack, &chunks, std::mem::take(&mut pack_buf)).await;
        let to_writer = decode::ToWriter {
            paths: l.paths.clone(),
            tx: l.tx.clone(),
            spare: l.spare.clone(),
        };
        let (secret, identity) = (l.secret.clone(), l.reader.identity().clone());
        // Sending to the writer may wait for it: on a blocking thread.
        let mut buf = std::mem::take(&mut scratch);
        let (result, buf, stored) = blocking(move || match read {
            Ok(bytes) => {
                let r = decode::decode_pack(
                    &pack, &bytes, &identity, chunks, &secret, &to_writer, &mut buf,
                );
                (r, buf, bytes.into_whole())
            }
            Err(e) => {
                let r = decode::unreadable(&pack, &e.to_string(), chunks, &to_writer);
                (r, buf, None)
            }
        })
        .await?;
        let result: PackOutcome = result?;
        scratch = buf;
        pack_buf = stored.unwrap_or_default();
        l.progress.pack_done(result.bytes);
        let mut out = l.outcome.lock().expect("not poisoned");
        out.errors.extend(result.errors);
        out.damaged.extend(result.damaged);
    }
}
