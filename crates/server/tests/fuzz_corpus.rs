//! Replays the committed fuzz corpora of the server's targets: config files and API bodies.

#[test]
fn config_file_corpus_replays_cleanly() {
    convrec_testkit::replay_corpus("config_file", convrec_server::config_file::fuzz_config_file);
}

#[test]
fn api_body_corpus_replays_cleanly() {
    convrec_testkit::replay_corpus("api_body", convrec_server::api::fuzzing::request_body);
}
