//! One day of ordinary work on the file server, after
//! `bench/mutate_dataset.py` (edits in place, appends, new and deleted
//! files, a fresh dump with rows in the middle) but different every day,
//! quieter at weekends, plus the bursts an office really has.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use crate::dataset::{self, Kind, Rng};

/// What happened on a day, for the figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Day {
    Ordinary,
    Weekend,
    /// Month-end: reports generated, many CSV exports refreshed.
    MonthEnd,
    /// Every application binary and library replaced by a new version.
    SoftwareUpdate,
    /// Hundreds of scanned letters imported at once.
    ScanImport,
}

impl Day {
    pub fn name(self) -> &'static str {
        match self {
            Day::Ordinary => "ordinary",
            Day::Weekend => "weekend",
            Day::MonthEnd => "month-end reports",
            Day::SoftwareUpdate => "software update",
            Day::ScanImport => "bulk scan import",
        }
    }
}

/// The calendar of the simulation: day 0 is a Thursday (1 Oct 2026);
/// bursts fall on fixed days so runs compare.
pub fn kind_of_day(day: u64, days: u64) -> Day {
    let weekday = (day + 3) % 7; // 0 = Monday
    let month_end = |d: u64| d == 29 || d == 60;
    if month_end(day) || (days < 30 && day == days.saturating_sub(4)) {
        Day::MonthEnd
    } else if day == 20 || (days < 30 && day == days / 2) {
        Day::SoftwareUpdate
    } else if day == 45 || (days < 30 && day == days.saturating_sub(2)) {
        Day::ScanImport
    } else if weekday >= 5 {
        Day::Weekend
    } else {
        Day::Ordinary
    }
}

fn edit_in_place(rng: &mut Rng, p: &Path) {
    let mut data = std::fs::read(p).unwrap();
    let n = data.len();
    let at = n / 4 + rng.below(n / 2 + 1);
    let cut = (n - at).min(rng.range(64, 2048));
    let len = cut + rng.below(400);
    let new = dataset::text(rng, len);
    data.splice(at..at + cut, new);
    std::fs::write(p, data).unwrap(); // same inode, like an editor saving in place
}

fn append(rng: &mut Rng, p: &Path) {
    use std::io::Write;
    let add = if dataset::kind_of(p) == Kind::Csv {
        {
            let n = rng.range(1024, 20 * 1024);
            dataset::csv_rows(rng, n)
        }
    } else {
        {
            let n = rng.range(1024, 20 * 1024);
            dataset::text(rng, n)
        }
    };
    let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
    f.write_all(&add).unwrap();
}

fn new_files(rng: &mut Rng, root: &Path, day: u64, n: usize, exts: &[&str], top: &str) {
    for i in 0..n {
        let unit = dataset::UNITS[rng.below(dataset::UNITS.len())];
        let ext = exts[rng.below(exts.len())];
        let p = root.join(format!("{top}/{unit}/2026/hari{day:03}_{i:04}.{ext}"));
        let data = dataset::content(rng, dataset::kind_of(&p), &p);
        dataset::write(&p, &data);
    }
}

fn of_kind(files: &[PathBuf], kinds: &[Kind]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|p| kinds.contains(&dataset::kind_of(p)) && !p.ends_with("db/dump_siak.sql"))
        .cloned()
        .collect()
}

/// Applies day `day`'s work to the dataset under `root`. The stages draw
/// from one random sequence in a fixed order, so a seed gives the same day.
pub fn apply(root: &Path, seed: u64, day: u64, kind: Day) {
    let mut rng = Rng::for_(seed, "day", day);
    let files = dataset::files(root);
    ordinary_work(&mut rng, root, &files, day, kind);
    special_work(&mut rng, root, &files, day, kind);
    rewrite_vm_blocks(&mut rng, root);
    grow_dump(&mut rng, root);
}

/// Ordinary work, as mutate_dataset.py: 2% edited, 1% appended, ~0.8%
/// new and deleted, a few office documents saved again.
fn ordinary_work(rng: &mut Rng, root: &Path, files: &[PathBuf], day: u64, kind: Day) {
    let n = files.len();
    let quiet = if kind == Day::Weekend { 0.2 } else { 1.0 };
    let texts = of_kind(files, &[Kind::Text, Kind::Csv, Kind::Json]);
    let office = of_kind(files, &[Kind::Office]);
    let scaled = |share: f64| ((n as f64 * share * quiet).round() as usize).max(1);
    for p in rng.sample(&texts, scaled(0.02)) {
        edit_in_place(rng, &p);
    }
    for p in rng.sample(&texts, scaled(0.01)) {
        append(rng, &p);
    }
    for p in rng.sample(&office, scaled(0.005)) {
        let data = dataset::content(rng, Kind::Office, &p);
        dataset::replace(&p, &data);
    }
    let deletable = of_kind(files, &[Kind::Text, Kind::Csv, Kind::Json, Kind::Office]);
    for p in rng.sample(&deletable, scaled(0.008)) {
        let _ = std::fs::remove_file(&p);
    }
    new_files(
        rng,
        root,
        day,
        scaled(0.008),
        &["txt", "txt", "csv", "json", "docx"],
        "dokumen",
    );
}

/// The work of a month's end, a software update or a scan import.
fn special_work(rng: &mut Rng, root: &Path, files: &[PathBuf], day: u64, kind: Day) {
    let n = files.len();
    match kind {
        Day::MonthEnd => {
            new_files(
                rng,
                root,
                day,
                n / 10,
                &["xlsx", "pdf", "docx"],
                "dokumen/laporan",
            );
            let csv = of_kind(files, &[Kind::Csv]);
            for p in rng.sample(&csv, csv.len() * 4 / 10) {
                let data = dataset::content(rng, Kind::Csv, &p);
                dataset::replace(&p, &data);
            }
        }
        Day::SoftwareUpdate => {
            for p in of_kind(files, &[Kind::Binary, Kind::Jar]) {
                let data = dataset::content(rng, dataset::kind_of(&p), &p);
                dataset::replace(&p, &data);
            }
        }
        Day::ScanImport => {
            new_files(rng, root, day, n / 4, &["pdf", "jpg"], "arsip/scan/impor");
        }
        Day::Ordinary | Day::Weekend => {}
    }
}

/// The VM image: a few blocks rewritten in place with random bytes.
fn rewrite_vm_blocks(rng: &mut Rng, root: &Path) {
    let vm = root.join("vm/srv-aplikasi-01.img");
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&vm) {
        use std::io::{Seek, SeekFrom, Write};
        let len = std::fs::metadata(&vm).map_or(0, |m| m.len()) as usize;
        for _ in 0..4 {
            let at = rng.below(len.saturating_sub(16 * 1024).max(1)) & !4095;
            f.seek(SeekFrom::Start(at as u64)).unwrap();
            f.write_all(&rng.bytes(16 * 1024)).unwrap();
        }
    }
}

/// The nightly dump: rows inserted where the first table ends, the file
/// written anew (a fresh dump replaces yesterday's).
fn grow_dump(rng: &mut Rng, root: &Path) {
    let dump = root.join("db/dump_siak.sql");
    if let Ok(data) = std::fs::read(&dump) {
        let mark = b"\\.\n--\n-- riwayat_layanan";
        let at = data
            .windows(mark.len())
            .position(|w| w == mark)
            .unwrap_or(data.len());
        let rows = dataset::csv_rows(rng, (data.len() / 100).max(4096));
        let mut out = Vec::with_capacity(data.len() + rows.len());
        out.extend_from_slice(&data[..at]);
        out.extend_from_slice(&rows);
        out.extend_from_slice(&data[at..]);
        dataset::replace(&dump, &out);
    }
}
