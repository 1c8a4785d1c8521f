#![no_main]
//! libFuzzer target `wire_reports`: see `cadang_fuzz::decoders::wire_reports`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cadang_fuzz::decoders::wire_reports(data);
});
