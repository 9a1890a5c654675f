//! Helpers shared by the integration tests: fixtures, a recording driven by the synthetic
//! source, and the real ffprobe/ffmpeg.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use convrec_media::recording::{
    PublicationRecorder, RecorderConfig, RecorderOutput, RecorderStats,
};
use convrec_media::source::annexb::AccessUnit;
use convrec_media::source::synthetic::{SourceEvent, SyntheticConfig, SyntheticSource};
use convrec_media::timeline::{KeyFrameReason, MediaKind};

pub use convrec_testkit::*;

/// How a scenario's media reaches the recorder.
#[derive(Clone)]
pub struct Scenario {
    pub video: Vec<AccessUnit>,
    pub audio: Vec<Vec<u8>>,
    pub seconds: f64,
    pub source: SyntheticConfig,
    pub video_delay: Duration,
    pub audio_delay: Duration,
    /// Video frames captured before this are not sent (a camera switched on later).
    pub video_from: Duration,
    /// From this capture time on, video comes from a new SSRC with an unrelated RTP base (the
    /// publisher restarted its encoder).
    pub video_restart_at: Option<Duration>,
    pub recorder: RecorderConfig,
}

impl Scenario {
    pub fn new(video: &str, seconds: f64) -> Self {
        Self {
            video: video_fixture(video),
            audio: opus_fixture(),
            seconds,
            source: SyntheticConfig::default(),
            video_delay: Duration::from_millis(40),
            audio_delay: Duration::from_millis(20),
            video_from: Duration::ZERO,
            video_restart_at: None,
            recorder: RecorderConfig::default(),
        }
    }

    pub fn audio_only(seconds: f64) -> Self {
        let mut s = Self::new("cbp-320x240-30fps.h264", seconds);
        s.video.clear();
        s.recorder.timeline.expect_video = false;
        s
    }
}

/// A finished recording: the file and where its blocks start.
pub struct Recording {
    pub file: Vec<u8>,
    /// Byte offsets where each block (init, fragments, index) ends.
    pub block_ends: Vec<usize>,
    pub keyframe_requests: Vec<KeyFrameReason>,
    pub stats: RecorderStats,
}

pub fn record(scenario: &Scenario) -> Recording {
    let mut source = SyntheticSource::new(
        scenario.source.clone(),
        scenario.video.clone(),
        scenario.audio.clone(),
    );
    let start = Instant::now();
    let mut recorder = PublicationRecorder::new(scenario.recorder.clone(), start);
    let mut out = Recording {
        file: Vec::new(),
        block_ends: Vec::new(),
        keyframe_requests: Vec::new(),
        stats: RecorderStats::default(),
    };
    let end = Duration::from_secs_f64(scenario.seconds);
    loop {
        let (at, event) = source.next_event();
        if at >= end {
            break;
        }
        let restarted = scenario.video_restart_at.is_some_and(|r| at >= r);
        match event {
            SourceEvent::Frame(MediaKind::Video, mut frame) => {
                if restarted {
                    frame.ssrc ^= 0xffff;
                    frame.rtp_time = frame.rtp_time.wrapping_add(0x7654_3210);
                }
                if at >= scenario.video_from {
                    recorder.handle_video(start + at + scenario.video_delay, frame)
                }
            }
            SourceEvent::Frame(MediaKind::Audio, frame) => {
                recorder.handle_audio(start + at + scenario.audio_delay, frame)
            }
            SourceEvent::SenderReport(kind, mut report) => {
                if kind == MediaKind::Video && restarted {
                    report.ssrc ^= 0xffff;
                    report.rtp_time = report.rtp_time.wrapping_add(0x7654_3210);
                }
                let delay = if kind == MediaKind::Video {
                    scenario.video_delay
                } else {
                    scenario.audio_delay
                };
                recorder.handle_sender_report(start + at + delay, kind, report)
            }
        }
        recorder.handle_timeout(start + at);
        drain(&mut recorder, &mut out);
    }
    recorder.finish(start + end + Duration::from_millis(100));
    drain(&mut recorder, &mut out);
    out.stats = recorder.stats();
    out
}

fn drain(recorder: &mut PublicationRecorder, out: &mut Recording) {
    while let Some(output) = recorder.poll_output() {
        match output {
            RecorderOutput::Write(block) => {
                out.file.extend_from_slice(block.bytes());
                out.block_ends.push(out.file.len());
            }
            RecorderOutput::RequestKeyFrame(reason) => out.keyframe_requests.push(reason),
        }
    }
}

pub fn write_temp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}
