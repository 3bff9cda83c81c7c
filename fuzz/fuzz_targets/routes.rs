#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::routing::fuzzing::routes(data));
