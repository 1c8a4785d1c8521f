#![no_main]
//! libFuzzer target `wire_enroll`: see `cadang_fuzz::decoders::wire_enroll`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cadang_fuzz::decoders::wire_enroll(data);
});
