//! Replays the committed fuzz corpora of the media core's targets.

use convrec_testkit::replay_corpus;

#[test]
fn frame_input_corpus_replays_cleanly() {
    replay_corpus("frame_input", convrec_media::fuzzing::frame_input);
}

#[test]
fn inspect_corpus_replays_cleanly() {
    replay_corpus("inspect", convrec_media::fuzzing::inspect_bytes);
}
