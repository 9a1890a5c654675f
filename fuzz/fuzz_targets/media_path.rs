//! RTP, RTCP, STUN and DTLS from outside through a connected call (room, publisher,
//! subscriber on a virtual network): hostile datagrams and payloads never panic, never become
//! media.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convrec_rtc::fuzzing::media_path(data));
