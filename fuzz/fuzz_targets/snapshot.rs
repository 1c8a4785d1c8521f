#![no_main]
//! libFuzzer target `snapshot`: see `cadang_fuzz::decoders::snapshot`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cadang_fuzz::decoders::snapshot(data);
});
