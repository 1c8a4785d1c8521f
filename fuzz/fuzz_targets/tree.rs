#![no_main]
//! libFuzzer target `tree`: see `cadang_fuzz::decoders::tree`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cadang_fuzz::decoders::tree(data);
});
