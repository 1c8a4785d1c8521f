#![no_main]
//! libFuzzer target `credentials`: see `cadang_fuzz::decoders::credentials`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cadang_fuzz::decoders::credentials(data);
});
