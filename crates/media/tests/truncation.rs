//! A crash loses at most the fragment being written: every prefix that ends on a block
//! boundary plays, and a cut anywhere else is reported with the byte offset where it breaks.

mod common;

use common::*;
use convrec_media::inspect::{InspectError, inspect};
use convrec_media::layout::LayoutError;

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
            assert!(
                matches!(err, InspectError::Format(LayoutError::Truncated { .. })),
                "{err}"
            );
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
        matches!(err, InspectError::Format(LayoutError::Corrupt { offset, .. }) if offset == first_fragment as u64),
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

/// A fragment at the very end of time (tfdt = 2⁶⁴ − 1, version 1), then another: sums that
/// once overflowed must saturate, in debug builds too.
fn extreme_time_file() -> Vec<u8> {
    use shiguredo_mp4::Encode;
    use shiguredo_mp4::boxes::{MfhdBox, MoofBox, TfdtBox, TfhdBox, TrafBox, TrunBox, TrunSample};
    let rec = record(&Scenario::audio_only(1.0));
    let mut file = rec.file[..rec.block_ends[0]].to_vec();
    let packet = [0xf8u8, 0xff, 0xfe];
    for sequence in 1..=2 {
        let mut moof = MoofBox {
            mfhd_box: MfhdBox {
                sequence_number: sequence,
            },
            traf_boxes: vec![TrafBox {
                tfhd_box: TfhdBox {
                    track_id: 2,
                    base_data_offset: None,
                    sample_description_index: None,
                    default_sample_duration: None,
                    default_sample_size: None,
                    default_sample_flags: None,
                    duration_is_empty: false,
                    default_base_is_moof: true,
                },
                tfdt_box: Some(TfdtBox {
                    version: 1,
                    base_media_decode_time: u64::MAX,
                }),
                trun_boxes: vec![TrunBox {
                    data_offset: Some(0),
                    first_sample_flags: None,
                    samples: vec![TrunSample {
                        duration: Some(960),
                        size: Some(3),
                        flags: None,
                        composition_time_offset: None,
                    }],
                }],
                unknown_boxes: vec![],
            }],
            unknown_boxes: vec![],
        };
        let size = moof.encode_to_vec().expect("encode moof").len();
        moof.traf_boxes[0].trun_boxes[0].data_offset = Some(size as i32 + 8);
        file.extend_from_slice(&moof.encode_to_vec().expect("encode moof"));
        file.extend_from_slice(&11u32.to_be_bytes());
        file.extend_from_slice(b"mdat");
        file.extend_from_slice(&packet);
    }
    file
}

#[test]
fn extreme_times_saturate_instead_of_overflowing() {
    let file = extreme_time_file();
    let report = inspect(file.as_slice()).expect("extreme but well-formed");
    assert_eq!(report.tracks[0].samples, 2);
    assert_eq!(report.fragments.len(), 2);
}

/// The control for the decode checks everywhere: damaged pictures are reported.
#[test]
fn the_decode_check_reports_a_damaged_picture() {
    let rec = record(&Scenario::new("cbp-320x240-30fps.h264", 3.0));
    let dir = tempfile::tempdir().unwrap();
    let mut damaged = rec.file.clone();
    // Scramble the middle of the first fragment (its mdat holds the key frame's slices).
    let (start, end) = (rec.block_ends[0], rec.block_ends[1]);
    for byte in &mut damaged[start + (end - start) / 3..start + (end - start) / 2] {
        *byte = byte.wrapping_mul(31).wrapping_add(7);
    }
    let path = write_temp(&dir, "damaged.mp4", &damaged);
    assert_ne!(ffmpeg_decode_errors(&path), "", "damage goes unnoticed");
    let path = write_temp(&dir, "intact.mp4", &rec.file);
    assert_eq!(ffmpeg_decode_errors(&path), "");
}
