//! cadang-agent: what runs on a PD server. It reads the server's files and
//! database dumps into a repository (backup) and writes them back (restore).
//! It depends on the repository format (`cadang-core`), never on the
//! controller.

pub mod backup;
pub mod browse;
pub mod cache;
pub mod daemon;
pub mod progress;
pub mod restore;
pub mod signals;
mod source;
mod walk;

pub use backup::{
    backup, backup_with_signals, BackupError, BackupOptions, BackupSummary, Progress, Source,
};
