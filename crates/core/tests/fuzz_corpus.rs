//! Replays the committed `entry_protocol` fuzz corpus through the harness the fuzz target runs.

#[test]
fn entry_protocol_corpus_replays_cleanly() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/entry_protocol");
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(!entries.is_empty(), "the corpus is empty");
    for path in entries {
        let data = std::fs::read(&path).expect("read corpus file");
        let outcome =
            std::panic::catch_unwind(|| convrec_core::recorder_protocol::fuzz_decode(&data));
        assert!(outcome.is_ok(), "panicked on {}", path.display());
    }
}
