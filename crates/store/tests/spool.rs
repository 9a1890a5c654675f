//! The spool with real recording blocks: every acknowledged block is on disk and the file plays;
//! bad, misplaced and missing blocks are refused without touching the file; a torn write after a
//! crash is cut off and appending goes on. Sealed (encrypted) spools hold no plaintext, open to the
//! blocks they took, and recover to whole chunks.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use convrec_media::inspect::inspect;
use convrec_seal::{OpenError, OpeningKey, Scheme, Sealer, open_all};
use convrec_store::spool::{SpoolError, SpoolFile, create_dir_durable};
use convrec_testkit::*;
use proptest::prelude::*;

/// The blocks of a 5-second recording: init, fragments, index.
fn blocks() -> Vec<Vec<u8>> {
    let rec = record(&Scenario::new("cbp-320x240-30fps.h264", 5.0));
    let mut start = 0;
    rec.block_ends
        .iter()
        .map(|&end| {
            let block = rec.file[start..end].to_vec();
            start = end;
            block
        })
        .collect()
}

#[test]
fn acknowledged_blocks_are_on_disk_and_the_file_plays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.mp4");
    let blocks = blocks();
    let mut spool = SpoolFile::create(&path, None).unwrap();
    let mut expected_len = 0;
    for (seq, block) in blocks.iter().enumerate() {
        let ack = spool.append(seq as u64, block).unwrap();
        expected_len += block.len() as u64;
        assert_eq!(ack.durable_len, expected_len);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            expected_len,
            "written when acknowledged (that fsync came first cannot be observed without cutting power)"
        );
    }
    assert!(spool.is_finished());
    assert_eq!(std::fs::read(&path).unwrap(), blocks.concat());
    assert_eq!(ffmpeg_decode_errors(&path), "");
    assert!(
        inspect(std::fs::File::open(&path).unwrap())
            .unwrap()
            .index_present
    );
    // Creating over an existing recording is refused.
    assert!(matches!(
        SpoolFile::create(&path, None),
        Err(SpoolError::Io { .. })
    ));
}

#[test]
fn bad_misplaced_and_missing_blocks_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.mp4");
    let blocks = blocks();
    let mut spool = SpoolFile::create(&path, None).unwrap();
    let err = spool.append(0, &blocks[1]).unwrap_err();
    assert!(
        err.to_string()
            .contains("the first block must be ftyp+moov"),
        "{err}"
    );
    spool.append(0, &blocks[0]).unwrap();
    let err = spool.append(2, &blocks[2]).unwrap_err();
    assert!(
        matches!(
            err,
            SpoolError::Gap {
                seq: 2,
                expected: 1
            }
        ),
        "{err}"
    );
    let err = spool.append(1, &blocks[0]).unwrap_err();
    assert!(
        err.to_string().contains("ftyp+moov may only come first"),
        "{err}"
    );
    let torn = &blocks[1][..blocks[1].len() - 10];
    let err = spool.append(1, torn).unwrap_err();
    assert!(
        err.to_string()
            .contains("block 1 refused: truncated at byte"),
        "{err}"
    );
    // An mdat claiming to run "to the end of the file" would swallow every later block.
    let mut to_end = blocks[1].clone();
    let moof_size = u32::from_be_bytes(to_end[..4].try_into().unwrap()) as usize;
    to_end[moof_size..moof_size + 4].copy_from_slice(&[0, 0, 0, 0]);
    let err = spool.append(1, &to_end).unwrap_err();
    assert!(err.to_string().contains("size 0"), "{err}");
    let err = spool.append(1, b"definitely not a box").unwrap_err();
    assert!(matches!(err, SpoolError::BadBlock { seq: 1, .. }), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        blocks[0],
        "nothing refused reached the file"
    );
    // A block already durable is acknowledged again without being written twice.
    spool.append(1, &blocks[1]).unwrap();
    let again = spool.append(1, &blocks[1]).unwrap();
    assert_eq!(
        again.durable_len,
        (blocks[0].len() + blocks[1].len()) as u64
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), again.durable_len);
    // After the index nothing more.
    for (seq, block) in blocks.iter().enumerate().skip(2) {
        spool.append(seq as u64, block).unwrap();
    }
    let err = spool.append(blocks.len() as u64, &blocks[1]).unwrap_err();
    assert!(matches!(err, SpoolError::Finished { .. }), "{err}");
}

#[test]
fn a_torn_write_is_cut_off_on_recovery_and_appending_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.mp4");
    let blocks = blocks();
    {
        let mut spool = SpoolFile::create(&path, None).unwrap();
        for (seq, block) in blocks.iter().enumerate().take(3) {
            spool.append(seq as u64, block).unwrap();
        }
    }
    // The machine died while block 3 was being written: half of it reached the disk.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&blocks[3][..blocks[3].len() / 2]);
    std::fs::write(&path, &bytes).unwrap();

    let (mut spool, recovery) = SpoolFile::recover(&path).unwrap();
    assert_eq!(recovery.blocks, 3);
    assert_eq!(recovery.discarded_bytes, (blocks[3].len() / 2) as u64);
    assert!(!recovery.finished);
    assert_eq!(spool.next_seq(), 3);
    assert_eq!(
        ffmpeg_decode_errors(&path),
        "",
        "what was acknowledged plays"
    );
    for (seq, block) in blocks.iter().enumerate().skip(3) {
        spool.append(seq as u64, block).unwrap();
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        blocks.concat(),
        "the file is whole again"
    );
    let (_, recovery) = SpoolFile::recover(&path).unwrap();
    assert!(recovery.finished);
    assert_eq!(recovery.discarded_bytes, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Cut anywhere, a spool recovers to the last whole block before the cut, and that reads back.
    #[test]
    fn recovery_after_a_cut_anywhere_keeps_the_whole_blocks(cut_per_mille in 0u64..=1000) {
        let blocks = blocks();
        let file = blocks.concat();
        let cut = (file.len() as u64 * cut_per_mille / 1000) as usize;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.mp4");
        std::fs::write(&path, &file[..cut]).unwrap();
        let (spool, recovery) = SpoolFile::recover(&path).unwrap();
        let mut boundary = 0;
        let mut whole = 0;
        for block in &blocks {
            if boundary + block.len() > cut {
                break;
            }
            boundary += block.len();
            whole += 1;
        }
        prop_assert_eq!(recovery.blocks, whole);
        prop_assert_eq!(spool.len(), boundary as u64);
        prop_assert_eq!(std::fs::read(&path).unwrap(), &file[..boundary]);
        if whole > 0 {
            prop_assert!(inspect(std::fs::File::open(&path).unwrap()).is_ok());
        }
    }
}

/// A spool file sealed for a fresh X25519 key, and the key.
fn sealed_spool(path: &std::path::Path) -> (SpoolFile, OpeningKey) {
    let key = OpeningKey::generate(Scheme::X25519).unwrap();
    let sealer = Sealer::new(key.recipient()).unwrap();
    (SpoolFile::create(path, Some(sealer)).unwrap(), key)
}

#[test]
fn a_sealed_spool_holds_no_plaintext_and_opens_to_the_file_that_plays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.mp4");
    let blocks = blocks();
    let (mut spool, key) = sealed_spool(&path);
    for (seq, block) in blocks.iter().enumerate() {
        let ack = spool.append(seq as u64, block).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), ack.durable_len);
    }
    assert!(spool.is_finished() && spool.is_sealed());
    // The index is the final chunk: closing adds nothing.
    assert_eq!(spool.close().unwrap(), spool.len());
    let sealed = std::fs::read(&path).unwrap();
    assert!(
        !sealed
            .windows(4)
            .any(|w| w == b"moof" || w == b"mdat" || w == b"avc1")
    );
    let (plain, opened) = open_all(&key, &sealed);
    assert_eq!(opened.outcome, Ok(()));
    assert_eq!(plain, blocks.concat());
    let opened_path = dir.path().join("opened.mp4");
    std::fs::write(&opened_path, plain).unwrap();
    assert_eq!(ffmpeg_decode_errors(&opened_path), "");
    let (_, recovery) = SpoolFile::recover(&path).unwrap();
    assert!(recovery.sealed && recovery.finished);
    assert_eq!(recovery.blocks, blocks.len() as u64);
}

#[test]
fn a_sealed_file_without_its_index_ends_with_a_mark_and_a_recovered_one_takes_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.mp4");
    let blocks = blocks();
    let (mut spool, key) = sealed_spool(&path);
    for (seq, block) in blocks.iter().enumerate().take(3) {
        spool.append(seq as u64, block).unwrap();
    }
    let before = spool.len();
    assert!(spool.close().unwrap() > before, "the end mark is written");
    let (plain, opened) = open_all(&key, &std::fs::read(&path).unwrap());
    assert_eq!(opened.outcome, Ok(()));
    assert_eq!(plain, blocks[..3].concat());
    let (mut recovered, recovery) = SpoolFile::recover(&path).unwrap();
    assert_eq!((recovery.blocks, recovery.finished), (3, false));
    assert_eq!(recovery.discarded_bytes, 0);
    let err = recovered.append(3, &blocks[3]).unwrap_err();
    assert!(matches!(err, SpoolError::KeyLost { seq: 3 }), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A sealed spool cut anywhere recovers to its last whole chunk; that opens to the blocks
    /// before the cut, which play, and says the file was cut short.
    #[test]
    fn a_sealed_spool_cut_anywhere_recovers_to_whole_chunks(cut_per_mille in 0u64..=1000) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.mp4");
        let blocks = blocks();
        let (mut spool, key) = sealed_spool(&path);
        let mut ends = Vec::new();
        for (seq, block) in blocks.iter().enumerate() {
            ends.push(spool.append(seq as u64, block).unwrap().durable_len);
        }
        let file = std::fs::read(&path).unwrap();
        let cut = file.len() as u64 * cut_per_mille / 1000;
        std::fs::write(&path, &file[..cut as usize]).unwrap();
        let (spool, recovery) = SpoolFile::recover(&path).unwrap();
        let whole = ends.iter().filter(|&&end| end <= cut).count();
        prop_assert_eq!(recovery.blocks, whole as u64);
        prop_assert_eq!(spool.len(), if whole == 0 { 0 } else { ends[whole - 1] });
        let (plain, opened) = open_all(&key, &std::fs::read(&path).unwrap());
        prop_assert_eq!(plain, blocks[..whole].concat());
        if whole < blocks.len() && whole > 0 {
            prop_assert_eq!(opened.outcome, Err(OpenError::Truncated { chunks: whole as u64 }));
        }
    }
}

/// A spool directory is made with its missing ancestors, again without harm, and refused
/// where a file is in the way.
#[test]
fn spool_directories_are_made_with_their_ancestors() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("spool/rec_1");
    create_dir_durable(&dir).unwrap();
    assert!(dir.is_dir());
    create_dir_durable(&dir).unwrap();
    SpoolFile::create(&dir.join("000.mp4"), None).unwrap();
    std::fs::write(root.path().join("file"), b"x").unwrap();
    assert!(create_dir_durable(&root.path().join("file/rec_2")).is_err());
    assert!(
        create_dir_durable(&root.path().join("file")).is_err(),
        "a file, not a directory"
    );
}
