//! Replays the committed fuzz corpora of the SDP offer and media path targets.

#[test]
fn sdp_offer_corpus_replays_cleanly() {
    convrec_testkit::replay_corpus("sdp_offer", convrec_rtc::fuzzing::sdp_offer);
}

#[test]
fn media_path_corpus_replays_cleanly() {
    convrec_testkit::replay_corpus("media_path", convrec_rtc::fuzzing::media_path);
}

/// The seeds reach past the handshake: their frames arrive, so the fuzzer starts on a live path.
#[test]
fn the_media_path_seeds_deliver_frames() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/media_path");
    for seed in ["seed-frames", "seed-datagrams"] {
        let data = std::fs::read(dir.join(seed)).expect("a committed seed");
        let (video, audio) = convrec_rtc::fuzzing::media_path_frames(&data);
        assert!(video > 0, "{seed}: no video frame arrived");
        if seed == "seed-frames" {
            assert!(audio > 0, "{seed}: no audio frame arrived");
        }
    }
}
