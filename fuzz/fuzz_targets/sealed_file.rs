//! Sealed (encrypted) recording files as `convrec decrypt` opens them: any bytes open up to the
//! damage and say what it is, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convrec_seal::fuzzing::sealed_file(data));
