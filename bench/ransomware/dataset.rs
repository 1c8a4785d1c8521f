//! A PD file server in miniature, deterministic from a seed: office
//! documents, CSV exports, scans, application binaries and a nightly SQL
//! dump. Contents follow `bench/gen_dataset.py` in spirit (Indonesian text,
//! population rows, already-compressed media) at a chosen scale.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// SplitMix64: tiny, fast and the same on every machine.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// A generator for one purpose on one day: independent streams, so
    /// adding a burst on day 20 does not change what day 21 does.
    pub fn for_(seed: u64, what: &str, day: u64) -> Rng {
        let h = blake3::hash(format!("{seed}/{what}/{day}").as_bytes());
        Rng(u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()))
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// `k` distinct items of `v`, in a deterministic order.
    pub fn sample<T: Clone>(&mut self, v: &[T], k: usize) -> Vec<T> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        let k = k.min(v.len());
        for i in 0..k {
            let j = i + self.below(v.len() - i);
            idx.swap(i, j);
        }
        idx[..k].iter().map(|&i| v[i].clone()).collect()
    }
}

const WORDS: &[&str] = &[
    "data",
    "penduduk",
    "laporan",
    "anggaran",
    "dinas",
    "kesehatan",
    "pendidikan",
    "kabupaten",
    "kecamatan",
    "desa",
    "kelurahan",
    "realisasi",
    "belanja",
    "pegawai",
    "surat",
    "keputusan",
    "bupati",
    "tahun",
    "bulan",
    "program",
    "kegiatan",
    "pelayanan",
    "publik",
    "rumah",
    "sakit",
    "puskesmas",
    "sekolah",
    "dasar",
    "menengah",
    "jalan",
    "jembatan",
    "irigasi",
    "pertanian",
    "nomor",
    "tanggal",
    "sesuai",
    "dengan",
    "peraturan",
    "daerah",
    "tentang",
    "yang",
    "dan",
    "untuk",
    "pada",
    "dari",
    "oleh",
    "dalam",
    "tidak",
    "telah",
    "akan",
    "sebagai",
    "kepala",
];

pub fn text(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        if rng.chance(0.08) {
            out.extend_from_slice(format!("{} ", rng.range(1, 99_999)).as_bytes());
        }
        out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
        out.push(if rng.chance(0.1) { b'\n' } else { b' ' });
    }
    out.truncate(n);
    out
}

pub fn csv_rows(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 128);
    while out.len() < n {
        let nik = 3_300_000_000_000_000u64 + rng.next() % 100_000_000_000_000;
        out.extend_from_slice(
            format!(
                "{nik},\"{} {}\",{},RT {:02} RW {:02},{}\n",
                WORDS[rng.below(WORDS.len())],
                WORDS[rng.below(WORDS.len())],
                1950 + rng.below(70),
                rng.range(1, 20),
                rng.range(1, 12),
                rng.range(10_000, 99_999)
            )
            .as_bytes(),
        );
    }
    out
}

/// What kind of file: decides its content and how it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Csv,
    Json,
    /// ZIP-based office document: signature, then compressed (random) bytes.
    Office,
    /// PDF or JPEG scan: signature, then compressed bytes.
    Scan,
    /// Executable: ELF header, then code-like bytes (low entropy).
    Binary,
    /// Java archive: ZIP signature, then compressed bytes.
    Jar,
}

pub fn kind_of(path: &Path) -> Kind {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "txt" | "md" => Kind::Text,
        "csv" => Kind::Csv,
        "json" => Kind::Json,
        "docx" | "xlsx" | "odt" => Kind::Office,
        "pdf" | "jpg" => Kind::Scan,
        "jar" => Kind::Jar,
        _ if path.components().any(|c| c.as_os_str() == "bin") => Kind::Binary,
        _ => Kind::Text,
    }
}

pub fn content(rng: &mut Rng, kind: Kind, path: &Path) -> Vec<u8> {
    let signed = |sig: &[u8], rng: &mut Rng, lo: usize, hi: usize| {
        let n = rng.range(lo, hi);
        let mut v = sig.to_vec();
        // Real formats carry a structured header of a few hundred bytes.
        v.extend_from_slice(&text(rng, 300));
        v.extend(rng.bytes(n));
        v
    };
    match kind {
        Kind::Text => {
            let n = rng.range(2_000, 40_000);
            text(rng, n)
        }
        Kind::Csv => {
            let mut v = b"nik,nama,tahun_lahir,alamat,kode_pos\n".to_vec();
            let n = rng.range(3_000, 60_000);
            v.extend(csv_rows(rng, n));
            v
        }
        Kind::Json => {
            let body = {
                let n = rng.range(2_000, 12_000);
                text(rng, n)
            };
            format!(
                "{{\"dokumen\": \"{}\"}}\n",
                String::from_utf8_lossy(&body).replace(['\n', '"'], " ")
            )
            .into_bytes()
        }
        Kind::Office => signed(b"PK\x03\x04", rng, 8_000, 60_000),
        Kind::Scan => {
            let sig: &[u8] = if path.extension().is_some_and(|e| e == "pdf") {
                b"%PDF-1.7\n"
            } else {
                b"\xFF\xD8\xFF\xE0\0\x10JFIF"
            };
            signed(sig, rng, 30_000, 200_000)
        }
        Kind::Jar => signed(b"PK\x03\x04", rng, 20_000, 120_000),
        Kind::Binary => {
            let mut v = b"\x7FELF\x02\x01\x01\0".to_vec();
            let n = rng.range(20_000, 150_000);
            while v.len() < n {
                // Code: a small alphabet of opcodes with zero runs.
                let op = [0x48u8, 0x89, 0xE5, 0x8B, 0x45, 0xFC, 0xC3, 0x0F, 0x1F][rng.below(9)];
                v.push(op);
                if rng.chance(0.05) {
                    v.extend(std::iter::repeat_n(0u8, rng.range(4, 64)));
                }
            }
            v
        }
    }
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(path, data).unwrap();
}

/// Writes beside and renames over, as office suites and package managers
/// save: a new inode under the old name.
pub fn replace(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("cadang-sim-tmp");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub const UNITS: &[&str] = &[
    "sekretariat",
    "keuangan",
    "kepegawaian",
    "pelayanan",
    "perencanaan",
];

/// Creates the day-0 dataset with about `files` files under `root`.
pub fn create(root: &Path, files: usize, seed: u64) {
    let mut rng = Rng::for_(seed, "create", 0);
    let plan: &[(f64, &str, &[&str])] = &[
        (0.40, "dokumen", &["txt", "txt", "json"]),
        (0.15, "dokumen", &["csv"]),
        (0.15, "dokumen", &["docx", "xlsx"]),
        (0.18, "arsip/scan", &["pdf", "jpg"]),
        (0.07, "aplikasi/bin", &[""]),
        (0.05, "aplikasi/lib", &["jar"]),
    ];
    for (share, top, exts) in plan {
        let n = (files as f64 * share).round() as usize;
        for i in 0..n {
            let unit = UNITS[i % UNITS.len()];
            let ext = exts[rng.below(exts.len())];
            let sub = format!("{top}/{unit}/{}", 2020 + i % 6);
            let name = if ext.is_empty() {
                format!("prog_{i:05}")
            } else {
                format!("berkas_{i:05}.{ext}")
            };
            let p = root.join(sub).join(name);
            let data = content(&mut rng, kind_of(&p), &p);
            write(&p, &data);
        }
    }
    write(&root.join("db/dump_siak.sql"), &dump(&mut rng, files * 400));
    // A VM disk image: mostly zeros and text; days rewrite blocks of it
    // with random bytes (as mutate_dataset.py does), so now and then its
    // sampled middle turns random: ordinary noise in the signals.
    let mut vm = vec![0u8; files * 1024];
    for at in (0..vm.len()).step_by(64 * 1024) {
        let t = text(&mut rng, 8 * 1024);
        let end = (at + t.len()).min(vm.len());
        vm[at..end].copy_from_slice(&t[..end - at]);
    }
    write(&root.join("vm/srv-aplikasi-01.img"), &vm);
}

pub fn dump(rng: &mut Rng, bytes: usize) -> Vec<u8> {
    let mut v = b"-- PostgreSQL database dump\nCOPY penduduk FROM stdin;\n".to_vec();
    v.extend(csv_rows(rng, bytes / 2));
    v.extend_from_slice(b"\\.\n--\n-- riwayat_layanan\nCOPY riwayat_layanan FROM stdin;\n");
    v.extend(csv_rows(rng, bytes / 2));
    v
}

/// Every regular file under `root`, sorted.
pub fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Name → BLAKE3 of the content, for "restores byte-identical".
pub fn digest(root: &Path) -> Vec<(PathBuf, blake3::Hash)> {
    files(root)
        .into_iter()
        .map(|p| {
            let h = blake3::hash(&std::fs::read(&p).unwrap());
            (p.strip_prefix(root).unwrap().to_path_buf(), h)
        })
        .collect()
}
