#![no_main]
//! libFuzzer target `policies`: see `cadang_fuzz::decoders::policies`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cadang_fuzz::decoders::policies(data);
});
