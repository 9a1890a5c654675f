//! Replays the committed fuzz corpus of the SDP offer target.

#[test]
fn sdp_offer_corpus_replays_cleanly() {
    convrec_testkit::replay_corpus("sdp_offer", convrec_rtc::fuzzing::sdp_offer);
}
