//! Frames a recorder might send over the entry point: refused cleanly or round-tripped exactly.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convrec_core::recorder_protocol::fuzz_decode(data));
