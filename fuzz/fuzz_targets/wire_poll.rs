#![no_main]
//! libFuzzer target `wire_poll`: see `cadang_fuzz::decoders::wire_poll`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cadang_fuzz::decoders::wire_poll(data);
});
