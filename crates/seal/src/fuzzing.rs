//! The fuzz harness of sealed files (`fuzz/fuzz_targets/sealed_file.rs`): `convrec decrypt` and
//! the history page open files from the object store or a download, outside bytes.

use std::sync::OnceLock;

use crate::{ChunkKind, OpenError, OpeningKey, Sealer, open_all};

/// The harness's X25519 key: its corpus holds files sealed for it, so the fuzzer starts past the
/// key unwrap. Only for fuzzing.
const FUZZ_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VuBCIEIEAH/4J1DFW0DjUJpJKCA6A+IC6Yq14ighkACjrDHPNR
-----END PRIVATE KEY-----
";

fn key() -> &'static OpeningKey {
    static KEY: OnceLock<OpeningKey> = OnceLock::new();
    KEY.get_or_init(|| OpeningKey::from_pem(FUZZ_KEY).expect("bug: the fuzzing key parses"))
}

/// Opens `data` as a sealed file: it never panics, gives out no more than the file holds, and
/// opens whole only when it ends with its final chunk.
#[doc(hidden)]
pub fn sealed_file(data: &[u8]) {
    let (plain, opened) = open_all(key(), data);
    assert!(plain.len() <= data.len(), "more plaintext than file");
    if opened.outcome.is_ok() {
        assert!(opened.chunks > 0, "a whole file has its final chunk");
    }
    if let Err(OpenError::Truncated { chunks }) = opened.outcome {
        assert_eq!(chunks, opened.chunks);
    }
}

/// A sealed file of `blocks` for the harness's key (seeds for its corpus).
#[doc(hidden)]
pub fn seed(blocks: &[&[u8]], indexed: bool) -> Vec<u8> {
    let mut sealer = Sealer::new(key().recipient()).expect("bug: the fuzzing key seals");
    let mut file = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let kind = if indexed && i + 1 == blocks.len() {
            ChunkKind::LastBlock
        } else {
            ChunkKind::Block
        };
        file.extend(sealer.seal(kind, block).expect("bug: sealing"));
    }
    if !indexed {
        file.extend(sealer.seal(ChunkKind::EndMark, &[]).expect("bug: sealing"));
    }
    file
}
