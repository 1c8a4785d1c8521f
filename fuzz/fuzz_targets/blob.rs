#![no_main]
//! libFuzzer target `blob`: see `cadang_fuzz::decoders::blob`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cadang_fuzz::decoders::blob(data);
});
