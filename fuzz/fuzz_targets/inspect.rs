//! Arbitrary bytes into `inspect`: it must answer, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convrec_media::fuzzing::inspect_bytes(data));
