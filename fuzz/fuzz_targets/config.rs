#![no_main]
//! libFuzzer target `config`: see `cadang_fuzz::decoders::config`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cadang_fuzz::decoders::config(data);
});
