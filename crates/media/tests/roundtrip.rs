//! Files written from the fixtures, checked with the real ffprobe and ffmpeg.

mod common;

use std::time::Duration;

use common::*;
use convrec_media::inspect::inspect;

const FRAME: f64 = 1.0 / 30.0;

#[test]
fn constrained_baseline_and_opus_play_with_exact_counts_and_sync() {
    let rec = record(&Scenario::new("cbp-320x240-30fps.h264", 6.0));
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "cbp.mp4", &rec.file);

    let probe = ffprobe(&path);
    let video = stream(&probe, "video");
    let audio = stream(&probe, "audio");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(video["codec_tag_string"], "avc3");
    assert_eq!(video["profile"], "Constrained Baseline");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(audio["codec_name"], "opus");
    assert_eq!(audio["sample_rate"], "48000");
    // 6 s at 30 fps and 20 ms packets: every frame sent is in the file.
    assert_eq!(video["nb_read_packets"], "180");
    assert_eq!(audio["nb_read_packets"], "300");
    let video_duration = media_length(video);
    let audio_duration = media_length(audio);
    assert!(
        (video_duration - 6.0).abs() <= FRAME,
        "video lasts {video_duration}"
    );
    assert!(
        (audio_duration - 6.0).abs() <= 0.020,
        "audio lasts {audio_duration}"
    );
    // Captured together, so they start together (within 20 ms), although video arrived later.
    let offset = f64_field(video, "start_time") - f64_field(audio, "start_time");
    assert!(offset.abs() <= 0.020, "A/V start offset {offset}");
    assert_eq!(ffmpeg_decode_errors(&path), "");
}

#[test]
fn main_profile_with_a_resolution_change_plays_both_sizes() {
    // The fixture switches from 320x240 to 480x270 after 2 s; avc3 carries the new SPS in-band.
    let rec = record(&Scenario::new("main-resolution-change.h264", 4.0));
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "main.mp4", &rec.file);
    let probe = ffprobe(&path);
    let video = stream(&probe, "video");
    assert_eq!(video["profile"], "Main");
    assert_eq!(video["nb_read_packets"], "120");
    assert_eq!(ffmpeg_decode_errors(&path), "");

    let widths = decoded_frame_widths(&path);
    assert_eq!(widths.len(), 120, "every frame decodes");
    assert!(
        widths[..60].iter().all(|&w| w == 320),
        "first 2 s are 320 wide: {widths:?}"
    );
    assert!(
        widths[60..].iter().all(|&w| w == 480),
        "last 2 s are 480 wide: {widths:?}"
    );

    let report = inspect(rec.file.as_slice()).unwrap();
    let sizes: Vec<_> = report.tracks[0]
        .resolutions
        .iter()
        .map(|r| (r.width, r.height))
        .collect();
    assert_eq!(sizes, vec![(320, 240), (480, 270)]);
    let change_at = report.tracks[0].resolutions[1].from_seconds - report.tracks[0].start_seconds;
    assert!(
        (change_at - 2.0).abs() < FRAME,
        "resolution changes at {change_at}"
    );
}

#[test]
fn audio_only_file_plays() {
    let rec = record(&Scenario::audio_only(5.0));
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "audio.mp4", &rec.file);
    let probe = ffprobe(&path);
    assert_eq!(probe["streams"].as_array().unwrap().len(), 1);
    let audio = stream(&probe, "audio");
    assert_eq!(audio["codec_name"], "opus");
    assert_eq!(audio["nb_read_packets"], "250");
    assert!((media_length(audio) - 5.0).abs() <= 0.020);
    assert_eq!(ffmpeg_decode_errors(&path), "");
    assert!(
        rec.keyframe_requests.is_empty(),
        "no video, no key frame requests"
    );
}

#[test]
fn video_that_starts_later_keeps_its_place() {
    // The camera comes on 1.5 s after the microphone: video starts 1.5 s into the file.
    let mut scenario = Scenario::new("cbp-320x240-30fps.h264", 5.0);
    scenario.video_from = Duration::from_millis(1500);
    // The first frame sent is not a key frame (GOP of 2 s): it waits for the one at 2.0 s.
    let rec = record(&scenario);
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "late.mp4", &rec.file);
    let probe = ffprobe(&path);
    let offset = f64_field(stream(&probe, "video"), "start_time")
        - f64_field(stream(&probe, "audio"), "start_time");
    assert!(
        (offset - 2.0).abs() <= 0.020,
        "video starts {offset}s after audio, at the first key frame"
    );
    assert_eq!(ffmpeg_decode_errors(&path), "");
    let report = inspect(rec.file.as_slice()).unwrap();
    let inspected = report.av_start_offset_ms.unwrap();
    assert!(
        (inspected - 2000.0).abs() <= 20.0,
        "inspect says {inspected} ms"
    );
    assert!(rec.stats.timeline.dropped_waiting_for_keyframe > 0);
}

#[test]
fn fragments_are_bounded_and_the_index_lists_key_frames() {
    let rec = record(&Scenario::new("cbp-320x240-30fps.h264", 9.0));
    let report = inspect(rec.file.as_slice()).unwrap();
    assert!(report.index_present);
    assert!(
        report.fragments.len() >= 5,
        "9 s in fragments of at most 2 s"
    );
    for f in &report.fragments {
        assert!(
            f.end_seconds - f.start_seconds <= 2.0 + FRAME,
            "fragment {f:?} is too long"
        );
    }
    let video = &report.tracks[0];
    assert_eq!(video.keyframe_times.len(), 5, "one key frame per 2 s GOP");
    // One tfra entry per video key frame and one per audio fragment.
    assert_eq!(
        report.index_entries,
        video.keyframe_times.len() + report.fragments.len()
    );
}

#[test]
fn video_after_the_wait_is_written_with_in_band_parameter_sets_only() {
    // Video's first key frame comes 4 s in, after the recorder stopped waiting for it (3 s): the
    // init segment is written with an avc3 entry that has no SPS/PPS, and the file still plays.
    let mut scenario = Scenario::new("cbp-320x240-30fps.h264", 7.0);
    scenario.video_from = Duration::from_secs(4);
    let rec = record(&scenario);
    let report = inspect(rec.file.as_slice()).unwrap();
    assert_eq!(report.tracks[0].codec, "avc3");
    assert_eq!(
        (report.tracks[0].width, report.tracks[0].height),
        (Some(0), Some(0)),
        "no size known up front"
    );
    assert_eq!(
        report.tracks[0].resolutions[0].width, 320,
        "the in-band SPS tells the size"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "late-params.mp4", &rec.file);
    assert_eq!(ffmpeg_decode_errors(&path), "");
    let widths = decoded_frame_widths(&path);
    assert_eq!(widths.len(), 90, "3 s of video from 4 s to 7 s");
    assert!(widths.iter().all(|&w| w == 320));
}

#[test]
fn a_publisher_restart_with_a_new_ssrc_and_size_keeps_one_playable_file() {
    // 2 s at 320x240 from one SSRC, then the encoder restarts: new SSRC, new RTP base, and
    // 480x270 (the fixture's second half).
    let mut scenario = Scenario::new("main-resolution-change.h264", 4.0);
    scenario.video_restart_at = Some(Duration::from_secs(2));
    let rec = record(&scenario);
    assert_eq!(rec.stats.timeline.source_changes, 1);
    // Its first frame is a key frame, so there is nothing to wait or ask for (the timeline tests
    // cover a new source that starts with delta frames).
    assert!(
        !rec.keyframe_requests
            .contains(&convrec_media::timeline::KeyFrameReason::NewSource)
    );
    assert_eq!(rec.stats.timeline.dropped_waiting_for_keyframe, 0);
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "restart.mp4", &rec.file);
    assert_eq!(ffmpeg_decode_errors(&path), "");
    let widths = decoded_frame_widths(&path);
    assert_eq!(
        widths.len(),
        120,
        "the restart's first frame is a key frame: nothing is dropped"
    );
    assert_eq!(widths.iter().filter(|&&w| w == 480).count(), 60);
    let probe = ffprobe(&path);
    let video = stream(&probe, "video");
    assert!(
        (media_length(video) - 4.0).abs() <= FRAME,
        "no time lost or added at the restart"
    );
}

#[test]
fn fragments_do_not_wait_for_key_frames() {
    // 1.5 s fragments over a 2 s GOP: most fragments must start with a delta frame, and the
    // file still plays from start to end.
    let mut scenario = Scenario::new("cbp-320x240-30fps.h264", 6.0);
    scenario.recorder.fragment_duration = Duration::from_millis(1500);
    let rec = record(&scenario);
    let report = inspect(rec.file.as_slice()).unwrap();
    let keyframes = &report.tracks[0].keyframe_times;
    let starts_on_delta = report
        .fragments
        .iter()
        .filter(|f| {
            !keyframes
                .iter()
                .any(|k| (k - f.start_seconds).abs() < 0.001)
        })
        .count();
    assert!(report.fragments.len() >= 4);
    assert!(
        starts_on_delta >= 2,
        "fragments start at {:?}, key frames at {keyframes:?}",
        report.fragments
    );
    for f in &report.fragments {
        assert!(f.end_seconds - f.start_seconds <= 1.5 + FRAME);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "cut-anywhere.mp4", &rec.file);
    assert_eq!(ffmpeg_decode_errors(&path), "");
    assert_eq!(stream(&ffprobe(&path), "video")["nb_read_packets"], "180");
}

#[test]
fn high_profile_chroma_format_and_bit_depth_reach_avcc() {
    // High 4:2:2 10-bit: avcC must carry chroma_format 2 and bit depth 10 (ISO/IEC 14496-15).
    use convrec_media::fmp4::{
        Fmp4Writer, H264Entry, TrackCodec, TrackSpec, WriterConfig, WriterSample,
    };
    use convrec_media::h264::annexb_to_length_prefixed;
    use convrec_media::timeline::ParameterSets;
    let units = video_fixture("high422-10bit-64x48.h264");
    let mut samples = Vec::new();
    let mut params = None;
    for unit in &units {
        let mut data = Vec::new();
        let info = annexb_to_length_prefixed(&unit.data, &mut data).unwrap();
        if let (Some(sps), Some(pps)) = (info.sps, info.pps) {
            params.get_or_insert(ParameterSets { sps, pps });
        }
        samples.push((info.keyframe, data));
    }
    let config = WriterConfig {
        tracks: vec![TrackSpec {
            track_id: 1,
            codec: TrackCodec::H264 {
                entry: H264Entry::Avc1,
                parameter_sets: params,
            },
        }],
        fragment_duration: Duration::from_secs(2),
        creation_unix_secs: 0,
    };
    let mut writer = Fmp4Writer::new(config).unwrap();
    for (i, (keyframe, data)) in samples.into_iter().enumerate() {
        writer
            .push_sample(WriterSample {
                track_id: 1,
                dts: i as u64 * 9000,
                duration: 9000,
                keyframe,
                data,
            })
            .unwrap();
    }
    writer.finish().unwrap();
    let mut file = Vec::new();
    while let Some(block) = writer.poll_output() {
        file.extend_from_slice(block.bytes());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "high422.mp4", &file);
    let probe = ffprobe(&path);
    let video = stream(&probe, "video");
    assert_eq!(video["codec_tag_string"], "avc1");
    assert_eq!(video["profile"], "High 4:2:2");
    assert_eq!(video["pix_fmt"], "yuv422p10le");
    assert_eq!(video["nb_read_packets"], "10");
    assert_eq!(ffmpeg_decode_errors(&path), "");
    // And the record itself, as written.
    let moov_at = u32::from_be_bytes(file[..4].try_into().unwrap()) as usize;
    let (moov, _) =
        <shiguredo_mp4::boxes::MoovBox as shiguredo_mp4::Decode>::decode(&file[moov_at..]).unwrap();
    let entry = &moov.trak_boxes[0]
        .mdia_box
        .minf_box
        .stbl_box
        .stsd_box
        .entries[0];
    let shiguredo_mp4::boxes::SampleEntry::Avc1(avc1) = entry else {
        panic!("not avc1: {entry:?}")
    };
    assert_eq!(avc1.avcc_box.avc_profile_indication, 122);
    assert_eq!(avc1.avcc_box.chroma_format.map(|c| c.get()), Some(2));
    assert_eq!(
        avc1.avcc_box.bit_depth_luma_minus8.map(|c| c.get()),
        Some(2)
    );
    assert_eq!(
        avc1.avcc_box.bit_depth_chroma_minus8.map(|c| c.get()),
        Some(2)
    );
}
