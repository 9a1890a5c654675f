//! A crash loses at most the fragment being written: every prefix that ends on a block
//! boundary plays, and a cut anywhere else is reported with the byte offset where it breaks.

mod common;

use common::*;
use convrec_media::inspect::{InspectError, inspect};

#[test]
fn every_prefix_ending_on_a_fragment_boundary_decodes() {
    let rec = record(&Scenario::new("cbp-320x240-30fps.h264", 7.0));
    let dir = tempfile::tempdir().unwrap();
    // block_ends: init, each fragment, then the index.
    let full = inspect(rec.file.as_slice()).unwrap();
    assert_eq!(rec.block_ends.len(), full.fragments.len() + 2);
    let mut previous_samples = 0;
    for (k, &end) in rec.block_ends.iter().enumerate().skip(1) {
        let prefix = &rec.file[..end];
        let report =
            inspect(prefix).unwrap_or_else(|e| panic!("prefix {k} does not read back: {e}"));
        let samples: u64 = report.tracks.iter().map(|t| t.samples).sum();
        assert!(
            samples > previous_samples || k == rec.block_ends.len() - 1,
            "prefix {k} adds samples"
        );
        previous_samples = samples;
        assert_eq!(report.index_present, k == rec.block_ends.len() - 1);

        let path = write_temp(&dir, &format!("prefix-{k}.mp4"), prefix);
        assert_eq!(
            ffmpeg_decode_errors(&path),
            "",
            "prefix {k} ({end} bytes) decodes"
        );
        let probe = ffprobe(&path);
        let packets: u64 = probe["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                s["nb_read_packets"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum();
        assert_eq!(packets, samples, "ffmpeg reads every sample of prefix {k}");
    }
}

#[test]
fn a_cut_inside_a_fragment_is_reported_at_that_fragments_offset() {
    let rec = record(&Scenario::new("cbp-320x240-30fps.h264", 5.0));
    let report = inspect(rec.file.as_slice()).unwrap();
    for fragment in &report.fragments {
        for cut in [
            fragment.offset + 4,
            fragment.offset + 100,
            fragment.offset + fragment.size - 1,
        ] {
            let err = inspect(&rec.file[..cut as usize]).expect_err("a cut fragment is an error");
            assert!(matches!(err, InspectError::Truncated { .. }), "{err}");
            let at = err.offset().unwrap();
            // The break is the fragment's moof, or its mdat once the moof is whole.
            assert!(
                at >= fragment.offset && at < fragment.offset + fragment.size,
                "{err}"
            );
            assert!(err.to_string().contains(&format!("byte {at}")), "{err}");
        }
    }
}

#[test]
fn damaged_headers_are_corrupt_not_panics() {
    let rec = record(&Scenario::new("cbp-320x240-30fps.h264", 3.0));
    // A box claiming to be smaller than its own header.
    let mut bad = rec.file.clone();
    let first_fragment = rec.block_ends[0];
    bad[first_fragment..first_fragment + 4].copy_from_slice(&3u32.to_be_bytes());
    let err = inspect(bad.as_slice()).unwrap_err();
    assert!(
        matches!(err, InspectError::Corrupt { offset, .. } if offset == first_fragment as u64),
        "{err}"
    );
    // Not an MP4 at all.
    let err = inspect(&b"\x00\x00\x00\x10fLaCxxxxxxxx"[..]).unwrap_err();
    assert!(err.to_string().contains("not an MP4"), "{err}");
    // A file with only ftyp has no moov.
    let ftyp_size = u32::from_be_bytes(rec.file[..4].try_into().unwrap()) as usize;
    let err = inspect(&rec.file[..ftyp_size]).unwrap_err();
    assert!(err.to_string().contains("moov"), "{err}");
}
