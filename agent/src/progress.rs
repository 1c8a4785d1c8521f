//! Live counters of a backup for a progress display. Its own module: the
//! walker and the sources count into it, and the backup reads it, so none
//! of them imports another for it.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Progress {
    pub files: AtomicU64,
    pub dirs: AtomicU64,
    pub bytes: AtomicU64,
}

impl Progress {
    pub(crate) fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn file_done(&self) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn dir_done(&self) {
        self.dirs.fetch_add(1, Ordering::Relaxed);
    }
}
