//! The web API's request bodies: any JSON is taken or refused with a 422 naming what is wrong.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convrec_server::api::fuzzing::request_body(data));
