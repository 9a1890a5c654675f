//! Replays the committed fuzz corpora of the SDP offer and media path targets.

#[test]
fn sdp_offer_corpus_replays_cleanly() {
    convrec_testkit::replay_corpus("sdp_offer", convrec_rtc::fuzzing::sdp_offer);
}

#[test]
fn media_path_corpus_replays_cleanly() {
    convrec_testkit::replay_corpus("media_path", convrec_rtc::fuzzing::media_path);
}

/// A media path program as the fuzzer reads it: `subscriber` byte, then for each of the
/// fixture's first access units and Opus packets a video op, an audio op and 40 ms passing,
/// with `datagram`s injected at the room and at the subscriber between them.
fn program(recorder: bool, datagram: Option<&[u8]>) -> Vec<u8> {
    let sized = |op: u8, bytes: &[u8]| {
        let mut out = vec![op];
        out.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(bytes);
        out
    };
    let mut program = vec![u8::from(recorder)];
    let audio = convrec_testkit::opus_fixture();
    for (unit, packet) in convrec_testkit::video_fixture("cbp-320x240-30fps.h264")
        .iter()
        .zip(&audio)
        .take(10)
    {
        program.extend(sized(2, &unit.data));
        program.extend(sized(3, packet));
        if let Some(datagram) = datagram {
            program.extend(sized(0, datagram));
            program.extend(sized(1, datagram));
        }
        program.extend([4, 10]);
    }
    program
}

/// The harness reaches past the handshake: frames arrive, so the fuzzer works on a live path,
/// and injected datagrams (STUN-, DTLS-, RTP- and RTCP-looking) never add any.
#[test]
fn the_media_path_harness_delivers_frames_and_injected_datagrams_add_none() {
    for recorder in [false, true] {
        let (video, audio) = convrec_rtc::fuzzing::media_path_frames(&program(recorder, None));
        assert!(
            video > 5 && audio > 5,
            "{video} video and {audio} audio frames arrived"
        );
        for datagram in [
            &b"\x00\x01\x00\x00\x21\x12\xa4\x42abcdefghijkl"[..],
            b"\x16\xfe\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05hello",
            b"\x80\x60\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01payload",
            b"\x81\xc8\x00\x06\x00\x00\x00\x01senderreport....",
        ] {
            let (v, a) =
                convrec_rtc::fuzzing::media_path_frames(&program(recorder, Some(datagram)));
            assert!(
                v <= 10 && a <= 10,
                "{v} video and {a} audio frames from 10 sent"
            );
            assert!(
                v > 5 && a > 5,
                "the call goes on: {v} video and {a} audio frames"
            );
        }
    }
}
