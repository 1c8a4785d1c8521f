#![no_main]
//! libFuzzer target `manifest`: see `cadang_fuzz::decoders::manifest`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cadang_fuzz::decoders::manifest(data);
});
