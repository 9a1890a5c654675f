//! SDP offers as WHIP and WHEP bodies bring them: answered or refused, never a crash.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convrec_rtc::fuzzing::sdp_offer(data));
