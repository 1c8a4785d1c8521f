//! Reading one source (a file, or a command's output) into chunk jobs.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cadang_core::chunker::{ChunkError, Chunker};
use cadang_core::tree::Extent;
use crossbeam_channel::{Receiver, Sender};

use crate::progress::Progress;

pub(crate) type FileResult = Result<Vec<Extent>, String>;

/// A file whose chunks are being hashed and stored by the workers. It
/// completes when the reader and every chunk job have released it.
pub(crate) struct FileAcc {
    slots: Mutex<Vec<Option<Extent>>>,
    pending: AtomicUsize,
    failed: Mutex<Option<String>>,
    done: Mutex<Option<Sender<FileResult>>>,
}

impl FileAcc {
    pub(crate) fn new() -> (Arc<FileAcc>, Receiver<FileResult>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        (
            Arc::new(FileAcc {
                slots: Mutex::new(Vec::new()),
                pending: AtomicUsize::new(1),
                failed: Mutex::new(None),
                done: Mutex::new(Some(tx)),
            }),
            rx,
        )
    }

    fn push_hole(&self, len: u64) {
        if len > 0 {
            self.slots
                .lock()
                .expect("not poisoned")
                .push(Some(Extent::Hole(len)));
        }
    }

    fn next_slot(&self) -> usize {
        let mut s = self.slots.lock().expect("not poisoned");
        s.push(None);
        self.pending.fetch_add(1, Ordering::AcqRel);
        s.len() - 1
    }

    pub(crate) fn fill(&self, idx: usize, e: Extent) {
        self.slots.lock().expect("not poisoned")[idx] = Some(e);
        self.release();
    }

    pub(crate) fn fail(&self, msg: String) {
        self.failed.lock().expect("not poisoned").get_or_insert(msg);
        self.release();
    }

    pub(crate) fn release(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let result = match self.failed.lock().expect("not poisoned").take() {
            Some(m) => Err(m),
            None => Ok(
                std::mem::take(&mut *self.slots.lock().expect("not poisoned"))
                    .into_iter()
                    .map(|e| e.expect("every slot filled before completion"))
                    .collect(),
            ),
        };
        if let Some(tx) = self.done.lock().expect("not poisoned").take() {
            let _ = tx.send(result);
        }
    }
}

pub(crate) struct ChunkJob {
    pub file: Arc<FileAcc>,
    pub idx: usize,
    pub data: Vec<u8>,
}

/// Splits a file (or stream) into chunk jobs on the calling thread.
pub(crate) struct Reader<'a> {
    pub chunker: &'a mut Chunker,
    pub jobs: &'a Sender<ChunkJob>,
    pub progress: &'a Progress,
}

#[derive(Debug)]
pub(crate) enum ReadError {
    Io(std::io::Error),
    /// The workers are gone (a fatal error elsewhere).
    Stopped,
}

fn send(
    jobs: &Sender<ChunkJob>,
    progress: &Progress,
    acc: &Arc<FileAcc>,
    data: &[u8],
) -> Result<(), ReadError> {
    let idx = acc.next_slot();
    progress.add_bytes(data.len() as u64);
    jobs.send(ChunkJob {
        file: acc.clone(),
        idx,
        data: data.to_vec(),
    })
    .map_err(|_| {
        // Nobody will fill the slot: release it so the file still completes.
        acc.fail("backup stopped".into());
        ReadError::Stopped
    })
}

impl Reader<'_> {
    fn send(&self, acc: &Arc<FileAcc>, data: &[u8]) -> Result<(), ReadError> {
        send(self.jobs, self.progress, acc, data)
    }

    /// Chunks everything `r` yields; returns the byte count.
    pub(crate) fn stream(&mut self, acc: &Arc<FileAcc>, r: impl Read) -> Result<u64, ReadError> {
        let (jobs, progress) = (self.jobs, self.progress);
        self.chunker
            .chunk(r, |c| send(jobs, progress, acc, c))
            .map_err(|e| match e {
                ChunkError::Read(e) => ReadError::Io(e),
                ChunkError::Emit(e) => e,
            })
    }

    /// Reads a regular file. Small files are one chunk; sparse files are
    /// read extent by extent so holes are neither read nor stored.
    pub(crate) fn file(
        &mut self,
        acc: &Arc<FileAcc>,
        mut f: File,
        size: u64,
        sparse: bool,
    ) -> Result<u64, ReadError> {
        if sparse {
            return self.sparse(acc, f, size);
        }
        if size <= self.chunker.min_size() as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            f.read_to_end(&mut buf).map_err(ReadError::Io)?;
            if !buf.is_empty() {
                self.send(acc, &buf)?;
            }
            return Ok(buf.len() as u64);
        }
        self.stream(acc, f)
    }

    fn sparse(&mut self, acc: &Arc<FileAcc>, mut f: File, size: u64) -> Result<u64, ReadError> {
        let fd = f.as_raw_fd();
        let mut pos: u64 = 0;
        let mut total = 0u64;
        while pos < size {
            // SAFETY: plain lseek on a descriptor we own.
            let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
            if data < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENXIO) {
                    break; // only a hole remains
                }
                return Err(ReadError::Io(e));
            }
            let data = data as u64;
            // SAFETY: as above.
            let hole = unsafe { libc::lseek(fd, data as libc::off_t, libc::SEEK_HOLE) };
            let hole = if hole < 0 {
                size
            } else {
                (hole as u64).min(size)
            };
            acc.push_hole(data.saturating_sub(pos));
            total += data.saturating_sub(pos);
            f.seek(SeekFrom::Start(data)).map_err(ReadError::Io)?;
            let n = self.stream(acc, (&mut f).take(hole.saturating_sub(data)))?;
            total += n;
            pos = data + n;
            if n == 0 {
                break;
            }
        }
        if pos < size {
            acc.push_hole(size - pos);
            total += size - pos;
        }
        Ok(total)
    }
}
