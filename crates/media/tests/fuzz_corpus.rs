//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the same harnesses the
//! fuzz targets run, so every input that once found new coverage, or a crash, is checked on
//! each test run.

use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "the {target} corpus is empty");
    for path in &entries {
        let data = std::fs::read(path).expect("read corpus file");
        let outcome = std::panic::catch_unwind(|| harness(&data));
        assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
    }
}

#[test]
fn frame_input_corpus_replays_cleanly() {
    replay("frame_input", convrec_media::fuzzing::frame_input);
}

#[test]
fn inspect_corpus_replays_cleanly() {
    replay("inspect", convrec_media::fuzzing::inspect_bytes);
}
