#![no_main]
//! libFuzzer target `pack_trailer`: see `cadang_fuzz::decoders::pack_trailer`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cadang_fuzz::decoders::pack_trailer(data);
});
