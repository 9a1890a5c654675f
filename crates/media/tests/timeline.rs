//! The timeline's rules, each on a virtual clock: wrap-around, reordering, sender-report sync,
//! gaps, DTX, Opus durations, source changes, key-frame requests, arbitrary input, and a
//! 4-hour recording with a drifting sender clock.

mod common;

use std::time::{Duration, Instant};

use convrec_media::source::annexb::AccessUnit;
use convrec_media::source::synthetic::{SourceEvent, SyntheticConfig, SyntheticSource};
use convrec_media::timeline::{
    KeyFrameReason, MediaFrame, MediaKind, PublicationTimeline, TimelineConfig, TimelineEvent,
    TimelineSample,
};
use proptest::prelude::*;

/// Tiny access units: the timeline reads NAL headers, not pictures.
fn key_unit() -> AccessUnit {
    let sps = common::video_fixture("cbp-320x240-30fps.h264")[0]
        .data
        .clone();
    AccessUnit {
        data: sps,
        keyframe: true,
    }
}

fn delta_unit() -> AccessUnit {
    AccessUnit {
        data: vec![0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x03],
        keyframe: false,
    }
}

/// A GOP: one key frame then `n - 1` delta frames.
fn gop(n: usize) -> Vec<AccessUnit> {
    let mut units = vec![key_unit()];
    units.extend(std::iter::repeat_n(delta_unit(), n - 1));
    units
}

/// A 20 ms CELT packet.
const OPUS_20MS: [u8; 3] = [0xf8, 0xff, 0xfe];

fn frame(ssrc: u32, rtp_time: u32, data: &[u8]) -> MediaFrame {
    MediaFrame {
        ssrc,
        rtp_time,
        contiguous: true,
        data: data.to_vec(),
    }
}

#[derive(Default)]
struct Collected {
    audio: Vec<TimelineSample>,
    video: Vec<TimelineSample>,
    requests: Vec<KeyFrameReason>,
}

fn drain(timeline: &mut PublicationTimeline, out: &mut Collected) {
    while let Some(event) = timeline.poll_event() {
        match event {
            TimelineEvent::Sample(s) if s.kind == MediaKind::Audio => out.audio.push(s),
            TimelineEvent::Sample(s) => out.video.push(s),
            TimelineEvent::RequestKeyFrame(r) => out.requests.push(r),
        }
    }
}

fn audio_only() -> TimelineConfig {
    TimelineConfig {
        expect_video: false,
        ..Default::default()
    }
}

/// Audio packets sent at the given RTP times, each arriving exactly when it was captured;
/// returns what the timeline made of them once flushed.
fn audio_at_rtp_times(rtps: &[u32], packet: &[u8]) -> (Collected, PublicationTimeline) {
    let start = Instant::now();
    let mut t = PublicationTimeline::new(audio_only(), start);
    for &rtp in rtps {
        let captured = Duration::from_nanos(u64::from(rtp) * 1_000_000_000 / 48_000);
        t.handle_audio(start + captured, frame(1, rtp, packet));
    }
    t.flush();
    let mut out = Collected::default();
    drain(&mut t, &mut out);
    (out, t)
}

fn secs(sample: &TimelineSample) -> f64 {
    sample.dts as f64 / f64::from(sample.kind.clock_rate())
}

/// Every track's samples follow each other without overlap or hole in the run.
fn assert_contiguous(samples: &[TimelineSample]) {
    for pair in samples.windows(2) {
        assert!(pair[0].duration > 0);
        assert_eq!(
            pair[0].dts + u64::from(pair[0].duration),
            pair[1].dts,
            "{:?} then {:?}",
            pair[0].dts,
            pair[1].dts
        );
    }
}

/// Runs a synthetic source into a timeline; `delay(kind, capture)` gives each event's network
/// delay. Returns the samples with the capture time of the frame each came from.
fn run_source(
    source: &mut SyntheticSource,
    seconds: f64,
    config: TimelineConfig,
    mut delay: impl FnMut(MediaKind, Duration) -> Duration,
    mut edit: impl FnMut(MediaKind, Duration, &mut MediaFrame),
) -> (Collected, Vec<Duration>, Vec<Duration>, PublicationTimeline) {
    let start = Instant::now();
    let mut timeline = PublicationTimeline::new(config, start);
    let mut out = Collected::default();
    let (mut video_captures, mut audio_captures) = (Vec::new(), Vec::new());
    let end = Duration::from_secs_f64(seconds);
    loop {
        let (at, event) = source.next_event();
        if at >= end {
            break;
        }
        match event {
            SourceEvent::Frame(kind, mut f) => {
                edit(kind, at, &mut f);
                let arrival = start + at + delay(kind, at);
                match kind {
                    MediaKind::Video => {
                        video_captures.push(at);
                        timeline.handle_video(arrival, f)
                    }
                    MediaKind::Audio => {
                        audio_captures.push(at);
                        timeline.handle_audio(arrival, f)
                    }
                }
            }
            SourceEvent::SenderReport(kind, mut report) => {
                let mut probe = MediaFrame {
                    ssrc: report.ssrc,
                    rtp_time: report.rtp_time,
                    contiguous: true,
                    data: vec![],
                };
                edit(kind, at, &mut probe);
                report.ssrc = probe.ssrc;
                report.rtp_time = probe.rtp_time;
                timeline.handle_sender_report(start + at + delay(kind, at), kind, report)
            }
        }
        drain(&mut timeline, &mut out);
    }
    timeline.flush();
    drain(&mut timeline, &mut out);
    (out, video_captures, audio_captures, timeline)
}

/// File time minus capture time, video minus audio, for frames captured together near `at`.
fn av_offset_at(
    out: &Collected,
    video_captures: &[Duration],
    audio_captures: &[Duration],
    at: Duration,
) -> f64 {
    let vi = video_captures
        .iter()
        .position(|&c| c >= at)
        .expect("video frame at that time");
    let ai = audio_captures
        .iter()
        .position(|&c| c >= video_captures[vi])
        .expect("audio packet at that time");
    let video_lag = secs(&out.video[vi]) - video_captures[vi].as_secs_f64();
    let audio_lag = secs(&out.audio[ai]) - audio_captures[ai].as_secs_f64();
    video_lag - audio_lag
}

#[test]
fn rtp_wraparound_keeps_time_continuous() {
    let config = SyntheticConfig {
        video_rtp_start: u32::MAX - 1000,
        audio_rtp_start: u32::MAX - 500,
        ..SyntheticConfig::default()
    };
    let mut source = SyntheticSource::new(config, gop(30), vec![OPUS_20MS.to_vec()]);
    let (out, _, _, timeline) = run_source(
        &mut source,
        3.0,
        TimelineConfig::default(),
        |_, _| Duration::from_millis(30),
        |_, _, _| {},
    );
    assert_eq!(out.video.len(), 90);
    assert_eq!(out.audio.len(), 150);
    assert_contiguous(&out.video);
    assert_contiguous(&out.audio);
    assert!(
        out.video[..89].iter().all(|s| s.duration == 3000),
        "30 fps steps across the wrap"
    );
    assert!(out.audio.iter().all(|s| s.duration == 960));
    assert_eq!(timeline.stats().dropped_late, 0);
}

#[test]
fn duplicates_and_reordered_packets_are_dropped_never_retimed() {
    let start = Instant::now();
    let mut t = PublicationTimeline::new(audio_only(), start);
    let ms = |n| start + Duration::from_millis(n);
    // 0, 960, 960 (duplicate), 2880 (ahead: 1920 is late), 1920 (late), 3840
    for (arrive, rtp) in [
        (0, 0),
        (20, 960),
        (21, 960),
        (60, 2880),
        (61, 1920),
        (80, 3840),
    ] {
        t.handle_audio(ms(arrive), frame(7, rtp, &OPUS_20MS));
    }
    t.flush();
    let mut out = Collected::default();
    drain(&mut t, &mut out);
    let times: Vec<u64> = out.audio.iter().map(|s| s.dts).collect();
    assert_eq!(
        times,
        vec![0, 960, 2880, 3840],
        "the late packet leaves a 20 ms gap, nothing moves"
    );
    assert_eq!(
        out.audio[1].duration, 1920,
        "the gap is carried by the packet before it"
    );
    assert_eq!(t.stats().dropped_late, 2);
}

#[test]
fn sender_reports_align_audio_and_video_despite_different_delays() {
    // Video reaches us 150 ms after capture, audio 10 ms: arrival times alone would put video
    // 140 ms late. Sender reports (every second) align them.
    let delay = |kind, _| match kind {
        MediaKind::Video => Duration::from_millis(150),
        MediaKind::Audio => Duration::from_millis(10),
    };
    let offset_at_4s = |config: SyntheticConfig| {
        let mut source = SyntheticSource::new(config, gop(60), vec![OPUS_20MS.to_vec()]);
        let (out, vc, ac, _) = run_source(
            &mut source,
            6.0,
            TimelineConfig::default(),
            delay,
            |_, _, _| {},
        );
        av_offset_at(&out, &vc, &ac, Duration::from_secs(4))
    };
    let offset = offset_at_4s(SyntheticConfig::default());
    assert!(
        offset.abs() <= 0.020,
        "with sender reports: A/V offset {offset}"
    );

    // The control: without sender reports the check fails by the delay difference.
    let offset = offset_at_4s(SyntheticConfig {
        sender_report_interval: None,
        ..SyntheticConfig::default()
    });
    assert!(
        (offset - 0.140).abs() <= 0.002,
        "without sender reports: A/V offset {offset}"
    );
}

#[test]
fn mute_and_paused_share_stay_gaps() {
    // Audio stops between 2 s and 5 s (mute); video stops between 1 s and 6 s (paused share).
    let start = Instant::now();
    let mut t = PublicationTimeline::new(TimelineConfig::default(), start);
    let mut out = Collected::default();
    for i in 0..400u32 {
        let at = Duration::from_millis(u64::from(i) * 20);
        if !(100..250).contains(&i) {
            t.handle_audio(start + at, frame(1, i * 960, &OPUS_20MS));
        }
        if i % 2 == 0 && !(50..300).contains(&i) {
            let unit = if i == 0 || i == 300 {
                key_unit()
            } else {
                delta_unit()
            };
            t.handle_video(start + at, frame(2, i * 1800, &unit.data));
        }
        drain(&mut t, &mut out);
    }
    t.flush();
    drain(&mut t, &mut out);
    assert_contiguous(&out.audio);
    assert_contiguous(&out.video);
    let before_mute = out.audio.iter().find(|s| s.dts == 99 * 960).unwrap();
    assert_eq!(
        before_mute.duration,
        151 * 960,
        "the last packet before the mute spans it"
    );
    assert!(
        out.audio.iter().any(|s| s.dts == 250 * 960),
        "audio resumes at its true time"
    );
    let before_pause = out.video.iter().find(|s| s.dts == 48 * 1800).unwrap();
    assert_eq!(
        before_pause.duration,
        252 * 1800,
        "the last frame stays on screen for the pause"
    );
    assert!(
        out.video.iter().any(|s| s.dts == 300 * 1800),
        "video resumes at its true time"
    );
}

#[test]
fn dtx_packets_keep_their_rtp_times() {
    // 1 s of speech, then discontinuous transmission: one packet every 400 ms.
    let mut rtps: Vec<u32> = (0..50).map(|i| i * 960).collect();
    rtps.extend((0..10).map(|i| 50 * 960 + i * 19_200));
    let (out, _) = audio_at_rtp_times(&rtps, &OPUS_20MS);
    let times: Vec<u64> = out.audio.iter().map(|s| s.dts).collect();
    assert_eq!(
        times,
        rtps.iter().map(|&r| u64::from(r)).collect::<Vec<_>>()
    );
    assert!(out.audio[50..59].iter().all(|s| s.duration == 19_200));
    assert_eq!(
        out.audio[59].duration, 960,
        "the last packet keeps its own length"
    );
}

#[test]
fn opus_durations_come_from_the_toc() {
    let start = Instant::now();
    let mut t = PublicationTimeline::new(audio_only(), start);
    // SILK 60 ms packets (config 11, code 0), then one code-3 packet of 3 × 20 ms CELT frames.
    for i in 0..5u32 {
        t.handle_audio(
            start + Duration::from_millis(u64::from(i) * 60),
            frame(1, i * 2880, &[11 << 3, 0xaa]),
        );
    }
    t.handle_audio(
        start + Duration::from_millis(300),
        frame(1, 5 * 2880, &[(31 << 3) | 3, 3, 0xaa]),
    );
    t.flush();
    let mut out = Collected::default();
    drain(&mut t, &mut out);
    let durations: Vec<u32> = out.audio.iter().map(|s| s.duration).collect();
    assert_eq!(durations, vec![2880, 2880, 2880, 2880, 2880, 2880]);
    // Unreadable packets are dropped and counted, not guessed at.
    t.handle_audio(start + Duration::from_millis(400), frame(1, 7 * 2880, &[]));
    assert_eq!(t.stats().dropped_invalid, 1);
}

#[test]
fn the_first_frame_of_a_source_that_is_no_key_frame_is_answered_by_a_request_at_once() {
    // The request made at the start went out before the publisher's video existed; its first
    // frame 300 ms later is a delta frame: asking again only after the 1 s retry would lose
    // 0.7 s more of picture.
    let start = Instant::now();
    let mut t = PublicationTimeline::new(TimelineConfig::default(), start);
    let mut out = Collected::default();
    drain(&mut t, &mut out);
    assert_eq!(out.requests.len(), 1);
    let ms = |n: u64| start + Duration::from_millis(n);
    t.handle_video(ms(300), frame(1, 0, &delta_unit().data));
    drain(&mut t, &mut out);
    assert_eq!(out.requests.len(), 2, "asked again at the first frame");
    // Later delta frames wait for the retry interval as before.
    t.handle_video(ms(333), frame(1, 3000, &delta_unit().data));
    drain(&mut t, &mut out);
    assert_eq!(out.requests.len(), 2);
    assert_eq!(t.poll_timeout(), Some(ms(1300)));
}

#[test]
fn a_new_source_waits_for_a_key_frame_and_time_keeps_moving() {
    let start = Instant::now();
    let mut t = PublicationTimeline::new(TimelineConfig::default(), start);
    let mut out = Collected::default();
    let ms = |n: u64| start + Duration::from_millis(n);
    for i in 0..30u32 {
        let unit = if i == 0 { key_unit() } else { delta_unit() };
        t.handle_video(ms(u64::from(i) * 33), frame(1, i * 3000, &unit.data));
    }
    drain(&mut t, &mut out);
    // The publisher restarts its encoder: a new SSRC with an unrelated RTP base. Its first
    // frames are delta frames (lost key frame), then a key frame.
    for i in 0..10u32 {
        let unit = if i == 5 { key_unit() } else { delta_unit() };
        t.handle_video(
            ms(1000 + u64::from(i) * 33),
            frame(9, 123_456_789 + i * 3000, &unit.data),
        );
    }
    t.flush();
    drain(&mut t, &mut out);
    assert!(
        out.requests.contains(&KeyFrameReason::NewSource),
        "{:?}",
        out.requests
    );
    assert_eq!(t.stats().dropped_waiting_for_keyframe, 5);
    assert_eq!(t.stats().source_changes, 1);
    assert_contiguous(&out.video);
    let resumed = out.video.iter().find(|s| s.keyframe && s.dts > 0).unwrap();
    let resumed_at = secs(resumed);
    assert!(
        (resumed_at - 1.165).abs() < 0.002,
        "the new source is placed by its arrival: {resumed_at}"
    );
}

#[test]
fn key_frames_are_requested_at_start_after_loss_and_at_the_interval() {
    let start = Instant::now();
    let config = TimelineConfig {
        keyframe_interval: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let mut t = PublicationTimeline::new(config, start);
    let mut out = Collected::default();
    drain(&mut t, &mut out);
    assert_eq!(out.requests, vec![KeyFrameReason::Start], "asked at once");
    let ms = |n: u64| start + Duration::from_millis(n);
    // Nothing arrives for 1.5 s: the request is repeated once a second.
    t.handle_timeout(ms(999));
    t.handle_timeout(ms(1000));
    drain(&mut t, &mut out);
    assert_eq!(out.requests.len(), 2);
    t.handle_video(ms(1100), frame(1, 0, &key_unit().data));
    t.handle_video(ms(1133), frame(1, 3000, &delta_unit().data));
    // A gap in the sequence (contiguous = false) on a delta frame: decoding cannot go on.
    let mut lost = frame(1, 9000, &delta_unit().data);
    lost.contiguous = false;
    t.handle_video(ms(1200), lost);
    drain(&mut t, &mut out);
    assert_eq!(out.requests.last(), Some(&KeyFrameReason::Loss));
    t.handle_video(ms(1300), frame(1, 18000, &key_unit().data));
    // Then 5 s without a key frame: the interval asks for one.
    for i in 1..=160u64 {
        t.handle_video(
            ms(1300 + i * 33),
            frame(1, 18000 + i as u32 * 3000, &delta_unit().data),
        );
        t.handle_timeout(ms(1300 + i * 33));
    }
    drain(&mut t, &mut out);
    assert_eq!(out.requests.last(), Some(&KeyFrameReason::Interval));
    assert_eq!(
        out.requests
            .iter()
            .filter(|&&r| r == KeyFrameReason::Interval)
            .count(),
        1
    );
    // The key frame came at 1.3 s; the first check at or after 6.3 s was at 1.3 s + 152 × 33 ms,
    // and the next request is due 5 s after that one.
    assert_eq!(
        t.poll_timeout(),
        Some(ms(1300 + 152 * 33) + Duration::from_secs(5))
    );
}

#[test]
fn four_hours_with_a_drifting_sender_clock_stay_in_sync() {
    // The sender's clock runs 50 ppm fast (0.72 s over 4 h); video travels 80 ms (±10 ms
    // jitter), audio 20 ms; the camera restarts with a new SSRC and RTP base after 3 h, and its
    // first sender report comes a second later. The A/V offset at the end must stay ≤ 20 ms.
    let config = SyntheticConfig {
        clock_drift_ppm: 50.0,
        video_rtp_start: u32::MAX - 900_000,
        audio_rtp_start: u32::MAX - 480_000,
        ..SyntheticConfig::default()
    };
    let mut source = SyntheticSource::new(config, gop(300), vec![OPUS_20MS.to_vec()]);
    let mut jitter = 0x1234_5678u32;
    let delay = move |kind, _| match kind {
        MediaKind::Audio => Duration::from_millis(20),
        MediaKind::Video => {
            jitter ^= jitter << 13;
            jitter ^= jitter >> 17;
            jitter ^= jitter << 5;
            Duration::from_millis(70 + u64::from(jitter % 21))
        }
    };
    let restart = Duration::from_secs(3 * 3600);
    let edit = |kind, at: Duration, f: &mut MediaFrame| {
        if kind == MediaKind::Video && at >= restart {
            f.ssrc = 0x9999;
            f.rtp_time = f.rtp_time.wrapping_add(0x4000_0000);
        }
    };
    let (out, vc, ac, timeline) = run_source(
        &mut source,
        4.0 * 3600.0,
        TimelineConfig::default(),
        delay,
        edit,
    );
    let stats = timeline.stats();
    assert_eq!(stats.source_changes, 1);
    assert_contiguous(&out.audio);
    assert_contiguous(&out.video);
    // Frames dropped while the new source waited for its key frame shift the video indices.
    let dropped = stats.dropped_waiting_for_keyframe as usize;
    let vc_after: Vec<Duration> = vc
        .iter()
        .enumerate()
        .filter(|&(i, c)| *c < restart || i >= vc.partition_point(|&c| c < restart) + dropped)
        .map(|(_, &c)| c)
        .collect();
    assert_eq!(vc_after.len(), out.video.len());
    for at in [
        Duration::from_secs(3600),
        restart + Duration::from_secs(10),
        Duration::from_secs(4 * 3600 - 10),
    ] {
        let offset = av_offset_at(&out, &vc_after, &ac, at);
        eprintln!(
            "4-hour recording: A/V offset {:+.3} ms at {at:?}",
            offset * 1000.0
        );
        assert!(offset.abs() <= 0.020, "A/V offset {offset} s at {at:?}");
    }
    // Once synced (after the first second), the file follows the sender's media clock exactly:
    // nothing was squeezed or stretched over 4 hours.
    let from = ac.partition_point(|&c| c < Duration::from_secs(2));
    let (first, last) = (&out.audio[from], out.audio.last().unwrap());
    let captured = (*ac.last().unwrap() - ac[from]).as_secs_f64();
    let recorded = secs(last) - secs(first);
    assert!(
        (recorded - captured * (1.0 + 50e-6)).abs() < 0.001,
        "{recorded} s recorded for {captured} s captured"
    );
}

/// One step of an arbitrary input sequence.
#[derive(Debug, Clone)]
enum Step {
    Video {
        ssrc: u32,
        rtp_step: i32,
        key: bool,
        contiguous: bool,
    },
    Audio {
        ssrc: u32,
        rtp_step: i32,
        packet: Vec<u8>,
    },
    Report {
        video: bool,
        rtp_step: i32,
        ntp: u64,
    },
    Wait(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u32..3, -4000i32..12000, any::<bool>(), any::<bool>()).prop_map(
            |(ssrc, rtp_step, key, contiguous)| Step::Video {
                ssrc,
                rtp_step,
                key,
                contiguous
            }
        ),
        (
            0u32..3,
            -2000i32..6000,
            prop::collection::vec(any::<u8>(), 0..4)
        )
            .prop_map(|(ssrc, rtp_step, packet)| Step::Audio {
                ssrc,
                rtp_step,
                packet
            }),
        (any::<bool>(), -100_000i32..100_000, any::<u64>()).prop_map(|(video, rtp_step, ntp)| {
            Step::Report {
                video,
                rtp_step,
                ntp,
            }
        }),
        any::<u16>().prop_map(Step::Wait),
    ]
}

proptest! {
    #[test]
    fn arbitrary_input_keeps_every_track_ordered_and_contiguous(steps in prop::collection::vec(step(), 0..300)) {
        let start = Instant::now();
        let mut now = start;
        let mut t = PublicationTimeline::new(TimelineConfig::default(), start);
        let mut out = Collected::default();
        let (mut vrtp, mut artp) = (0u32, 0u32);
        for s in steps {
            match s {
                Step::Video { ssrc, rtp_step, key, contiguous } => {
                    vrtp = vrtp.wrapping_add_signed(rtp_step);
                    let unit = if key { key_unit() } else { delta_unit() };
                    t.handle_video(now, MediaFrame { ssrc, rtp_time: vrtp, contiguous, data: unit.data });
                }
                Step::Audio { ssrc, rtp_step, packet } => {
                    artp = artp.wrapping_add_signed(rtp_step);
                    t.handle_audio(now, MediaFrame { ssrc, rtp_time: artp, contiguous: true, data: packet });
                }
                Step::Report { video, rtp_step, ntp } => {
                    let (kind, rtp) = if video { (MediaKind::Video, vrtp) } else { (MediaKind::Audio, artp) };
                    t.handle_sender_report(now, kind, convrec_media::timeline::SenderReport { ssrc: 0, rtp_time: rtp.wrapping_add_signed(rtp_step), ntp_time: ntp });
                }
                Step::Wait(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    t.handle_timeout(now);
                }
            }
            drain(&mut t, &mut out);
        }
        t.flush();
        drain(&mut t, &mut out);
        for samples in [&out.audio, &out.video] {
            for pair in samples.windows(2) {
                prop_assert!(pair[0].duration > 0);
                prop_assert_eq!(pair[0].dts + u64::from(pair[0].duration), pair[1].dts);
            }
        }
        for a in &out.audio {
            let toc = convrec_media::opus::packet_samples(&a.data).unwrap();
            prop_assert!(a.duration >= toc, "audio never shorter than its TOC");
        }
        if let Some(first) = out.video.first() {
            prop_assert!(first.keyframe && first.parameter_sets.is_some(), "video starts at a key frame");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the network delays (0–300 ms each, up to 30 ms video jitter) and whichever
    /// report comes first, audio and video captured together end up within 20 ms of each other
    /// once both tracks are synced.
    #[test]
    fn sender_reports_align_any_delays(
        video_ms in 0u64..300,
        audio_ms in 0u64..300,
        jitter_ms in 0u64..30,
        seed: u32,
        video_rtp_start: u32,
        audio_rtp_start: u32,
    ) {
        let config = SyntheticConfig { video_rtp_start, audio_rtp_start, ..SyntheticConfig::default() };
        let mut source = SyntheticSource::new(config, gop(60), vec![OPUS_20MS.to_vec()]);
        let mut state = seed | 1;
        let delay = move |kind, _| match kind {
            MediaKind::Audio => Duration::from_millis(audio_ms),
            MediaKind::Video => {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                Duration::from_millis(video_ms + u64::from(state) % (jitter_ms + 1))
            }
        };
        let (out, vc, ac, timeline) = run_source(&mut source, 5.0, TimelineConfig::default(), delay, |_, _, _| {});
        prop_assert_eq!(timeline.stats().dropped_late, 0);
        for at in [2, 4] {
            let offset = av_offset_at(&out, &vc, &ac, Duration::from_secs(at));
            prop_assert!(offset.abs() <= 0.020, "A/V offset {} at {} s", offset, at);
        }
    }

    /// A silence of any length at any point (mute, DTX, loss) is kept exactly: the packet before
    /// it spans it and the packet after it starts at its true time.
    #[test]
    fn gaps_of_any_length_stay_gaps(before in 1u32..200, gap in 1u32..20_000, after in 1u32..50) {
        let rtps: Vec<u32> = (0..before).chain((before + gap)..(before + gap + after)).map(|i| i * 960).collect();
        let (out, _) = audio_at_rtp_times(&rtps, &OPUS_20MS);
        let times: Vec<u64> = out.audio.iter().map(|s| s.dts).collect();
        prop_assert_eq!(times, rtps.iter().map(|&r| u64::from(r)).collect::<Vec<_>>());
        prop_assert_eq!(out.audio[before as usize - 1].duration, (gap + 1) * 960);
    }

    /// Reordered and duplicated packets never move time: what comes out is a subsequence of the
    /// sent packets in RTP order, each exactly at its RTP distance from the first one.
    #[test]
    fn reordering_never_moves_time(swaps in prop::collection::vec((0usize..100, 1usize..4), 0..30), dups in prop::collection::vec(0usize..100, 0..10)) {
        let mut order: Vec<u32> = (0..100).collect();
        for (i, d) in swaps {
            let j = (i + d).min(99);
            order.swap(i, j);
        }
        for d in dups {
            order.insert(d, order[d]);
        }
        let start = Instant::now();
        let mut t = PublicationTimeline::new(audio_only(), start);
        for (arrival, &i) in order.iter().enumerate() {
            // A 20 ms CELT packet whose second byte names it.
            let packet = [0xf8, i as u8];
            t.handle_audio(start + Duration::from_millis(arrival as u64 * 20), frame(1, i * 960, &packet));
        }
        t.flush();
        let mut out = Collected::default();
        drain(&mut t, &mut out);
        let first = u64::from(order[0]);
        let mut previous = None;
        for s in &out.audio {
            let index = u64::from(s.data[1]);
            prop_assert!(previous.is_none_or(|p| p < index), "packets come out in RTP order");
            prop_assert_eq!(s.dts, (index - first) * 960, "packet {} sits at its RTP time", index);
            previous = Some(index);
        }
        prop_assert_eq!(t.stats().dropped_late as usize + out.audio.len(), order.len());
    }
}

/// Feeds video frames `(arrival ms, rtp, key, contiguous)` and returns what came out.
fn video_sequence(frames: &[(u64, u32, bool, bool)]) -> (Collected, PublicationTimeline) {
    let start = Instant::now();
    let mut t = PublicationTimeline::new(TimelineConfig::default(), start);
    for &(ms, rtp, key, contiguous) in frames {
        let unit = if key { key_unit() } else { delta_unit() };
        let mut f = frame(1, rtp, &unit.data);
        f.contiguous = contiguous;
        t.handle_video(start + Duration::from_millis(ms), f);
    }
    t.flush();
    let mut out = Collected::default();
    drain(&mut t, &mut out);
    (out, t)
}

#[test]
fn a_repeated_old_key_frame_does_not_end_a_wait_for_a_new_one() {
    // A loss starts a wait; a retransmitted copy of the old key frame must not end it, or the
    // next delta frame would be written without the frames it depends on.
    let (out, t) = video_sequence(&[
        (0, 0, true, true),
        (33, 3000, false, true),
        (100, 9000, false, false),
        (110, 0, true, true),
        (133, 12_000, false, true),
        (166, 15_000, true, true),
    ]);
    let times: Vec<u64> = out.video.iter().map(|s| s.dts).collect();
    assert_eq!(times, vec![0, 3000, 15_000]);
    assert_eq!(
        out.requests,
        vec![KeyFrameReason::Start, KeyFrameReason::Loss]
    );
    assert_eq!(t.stats().dropped_waiting_for_keyframe, 2);
    assert_eq!(t.stats().dropped_late, 1);
}

#[test]
fn an_exact_duplicate_frame_is_dropped_without_waiting() {
    let (out, t) = video_sequence(&[
        (0, 0, true, true),
        (33, 3000, false, true),
        (40, 3000, false, true),
        (66, 6000, false, true),
    ]);
    let times: Vec<u64> = out.video.iter().map(|s| s.dts).collect();
    assert_eq!(
        times,
        vec![0, 3000, 6000],
        "the frame after the duplicate is kept"
    );
    assert_eq!(
        out.requests,
        vec![KeyFrameReason::Start],
        "no key frame asked for"
    );
    assert_eq!(t.stats().dropped_late, 1);
    assert_eq!(t.stats().dropped_waiting_for_keyframe, 0);
}

#[test]
fn a_sender_clock_stepping_back_opens_gaps_and_squeezes_nothing() {
    // After 3 s the sender's NTP clock steps back 300 ms (an NTP correction on the sender).
    let step = (0.3 * 4_294_967_296.0) as u64;
    let start = Instant::now();
    let mut source = SyntheticSource::new(
        SyntheticConfig::default(),
        gop(60),
        vec![OPUS_20MS.to_vec()],
    );
    let mut t = PublicationTimeline::new(TimelineConfig::default(), start);
    let mut out = Collected::default();
    let (mut vc, mut ac) = (Vec::new(), Vec::new());
    loop {
        let (at, event) = source.next_event();
        if at >= Duration::from_secs(6) {
            break;
        }
        let arrival = start + at + Duration::from_millis(30);
        match event {
            SourceEvent::Frame(MediaKind::Video, f) => {
                vc.push(at);
                t.handle_video(arrival, f)
            }
            SourceEvent::Frame(MediaKind::Audio, f) => {
                ac.push(at);
                t.handle_audio(arrival, f)
            }
            SourceEvent::SenderReport(kind, mut report) => {
                if at >= Duration::from_secs(3) {
                    report.ntp_time -= step;
                }
                t.handle_sender_report(arrival, kind, report)
            }
        }
        drain(&mut t, &mut out);
    }
    t.flush();
    drain(&mut t, &mut out);
    assert_eq!(t.stats().dropped_late, 0, "no audio dropped as overlapping");
    assert_eq!(
        t.stats().ignored_sender_reports,
        0,
        "300 ms is a plausible step"
    );
    assert_contiguous(&out.video);
    assert_contiguous(&out.audio);
    assert!(
        out.video[..out.video.len() - 1]
            .iter()
            .all(|s| s.duration >= 3000),
        "no video frame squeezed"
    );
    let long_video: Vec<u32> = out
        .video
        .iter()
        .map(|s| s.duration)
        .filter(|&d| d > 3000)
        .collect();
    let long_audio: Vec<u32> = out
        .audio
        .iter()
        .map(|s| s.duration)
        .filter(|&d| d > 960)
        .collect();
    assert_eq!(long_video, vec![3000 + 27_000], "video: one 300 ms gap");
    assert_eq!(long_audio, vec![960 + 14_400], "audio: one 300 ms gap");
    let offset = av_offset_at(&out, &vc, &ac, Duration::from_secs(5));
    assert!(offset.abs() <= 0.020, "A/V offset {offset} after the step");
}

#[test]
fn sender_report_jitter_of_a_few_milliseconds_leaves_frame_timing_smooth() {
    // A busy sender stamps its reports a few milliseconds off, alternately early and late.
    // Moving the tracks on each would put hiccups into the frame timing (players and ffmpeg
    // see a changing frame rate); within the dead band they are taken as jitter.
    let jitter = |ms: u32| {
        move |kind: MediaKind, at: Duration, f: &mut MediaFrame| {
            // Reports arrive as frames without payload (see `run_source`).
            if f.data.is_empty() {
                let ticks = ms * kind.clock_rate() / 1000;
                f.rtp_time = if at.as_secs().is_multiple_of(2) {
                    f.rtp_time.wrapping_add(ticks)
                } else {
                    f.rtp_time.wrapping_sub(ticks)
                };
            }
        }
    };
    let video_steps = |ms: u32| {
        let mut source = SyntheticSource::new(
            SyntheticConfig::default(),
            gop(60),
            vec![OPUS_20MS.to_vec()],
        );
        let (out, _, _, _) = run_source(
            &mut source,
            10.0,
            TimelineConfig::default(),
            |_, _| Duration::from_millis(20),
            jitter(ms),
        );
        let mut steps: Vec<u32> = out.video.iter().map(|s| s.duration).collect();
        steps.pop();
        steps.sort_unstable();
        steps.dedup();
        steps
    };
    assert_eq!(
        video_steps(5),
        [3000],
        "5 ms of jitter: every frame lasts 1/30 s"
    );
    // The control: a real step of the sender's clock (40 ms) still moves the tracks.
    assert_ne!(video_steps(40), [3000]);
}
