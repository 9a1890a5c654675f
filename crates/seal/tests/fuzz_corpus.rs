//! Replays the committed corpus of the sealed-file fuzz target.

#[test]
fn sealed_file_corpus_replays_cleanly() {
    convrec_testkit::replay_corpus("sealed_file", convrec_seal::fuzzing::sealed_file);
}
