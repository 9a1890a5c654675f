//! Replays the committed fuzz corpora of the core's targets.

use convrec_testkit::replay_corpus;

#[test]
fn entry_protocol_corpus_replays_cleanly() {
    replay_corpus(
        "entry_protocol",
        convrec_core::recorder_protocol::fuzz_decode,
    );
}

#[test]
fn configuration_corpus_replays_cleanly() {
    replay_corpus("configuration", convrec_core::config::fuzz_configuration);
}
