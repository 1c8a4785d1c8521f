//! The fuzz corpora as ordinary tests (stable toolchain, in CI): every file
//! under `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` goes
//! through the same decoder function the libFuzzer target calls
//! (`fuzz/src/decoders.rs`, included here), and none may panic. The
//! regressions are the inputs that once crashed a decoder; the corpora are
//! what `bash fuzz/run.sh` found and minimised.

#[path = "../fuzz/src/decoders.rs"]
mod decoders;

use std::collections::BTreeSet;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; none when the directory does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Feeds every file to `decode`; returns the panics (file, message) and how
/// many inputs the decoder accepted.
fn replay(decode: fn(&[u8]) -> bool, inputs: &[PathBuf]) -> (Vec<String>, usize) {
    let mut panics = Vec::new();
    let mut accepted = 0;
    for path in inputs {
        let data = fs::read(path).expect("corpus file is readable");
        match catch_unwind(AssertUnwindSafe(|| decode(&data))) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panics.push(format!("{}: {msg}", path.display()));
            }
        }
    }
    (panics, accepted)
}

#[test]
fn every_corpus_and_regression_input_decodes_without_panic() {
    let mut failures = Vec::new();
    for (name, decode) in decoders::TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        let regressions = files(&fuzz_dir().join("regressions").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name}/ is empty or missing: run `bash fuzz/run.sh` (or copy fuzz/seeds/{name}/ there)"
        );
        let (panics, accepted) = replay(*decode, &corpus);
        failures.extend(panics);
        // A corpus the decoder rejects outright would only exercise its
        // first check: at least one input must decode completely.
        assert!(
            accepted > 0,
            "no input of fuzz/corpus/{name}/ is accepted by its decoder; re-seed it with `bash fuzz/seed.sh`"
        );
        failures.extend(replay(*decode, &regressions).0);
    }
    assert!(
        failures.is_empty(),
        "decoders panicked on {} input(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_fuzz_target_has_a_decoder_and_a_corpus() {
    let targets: BTreeSet<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    let decoders: BTreeSet<String> = decoders::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(
        targets, decoders,
        "fuzz/fuzz_targets/*.rs and decoders::TARGETS must name the same targets"
    );
}

#[test]
fn a_zstd_bomb_blob_is_refused_without_inflating_it() {
    // 64 MiB of zeros compress to a few KiB; the entry claims 100 bytes. The
    // bounded decoder must stop one byte past the claim and refuse it.
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let bomb = zstd::bulk::compress(&zeros, 19).expect("zstd compresses");
    let mut input = 100u32.to_le_bytes().to_vec();
    input.push(1); // zstd, data blob
    input.extend_from_slice(&bomb);
    assert!(!decoders::blob(&input), "a bomb must not decode");
}
