//! Frames, sender reports and time jumps into a publication recorder; the file it writes must
//! read back cleanly. The harness lives in `convrec_media::fuzzing` so CI replays the corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convrec_media::fuzzing::frame_input(data));
