//! Configuration changes as the API receives them: refused with an error or taken whole.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convrec_core::config::fuzz_configuration(data));
