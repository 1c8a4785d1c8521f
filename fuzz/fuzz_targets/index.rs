#![no_main]
//! libFuzzer target `index`: see `cadang_fuzz::decoders::index`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cadang_fuzz::decoders::index(data);
});
