//! One publication's file: a [`PublicationTimeline`] feeding an [`Fmp4Writer`].
//!
//! The init segment must name every track before the first fragment, and a video track's `avcC`
//! wants the stream's parameter sets, which arrive with the first key frame. So the recorder
//! holds samples until the first key frame (or until `video_wait` passes, after which it writes
//! an `avc3` track whose parameter sets all travel in-band), then writes the init segment and
//! everything held, and from then on passes samples straight through.
//!
//! Fragments are cut by media time inside the writer, and also by wall-clock time here: if media
//! stops flowing, whatever is open is cut after `fragment_duration` so it can be made durable.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::fmp4::{
    Fmp4Writer, H264Entry, TrackCodec, TrackSpec, WriterConfig, WriterError, WriterOutput,
    WriterSample,
};
use crate::timeline::{
    KeyFrameReason, MediaFrame, MediaKind, PublicationTimeline, SenderReport, TimelineConfig,
    TimelineEvent, TimelineSample, TimelineStats,
};

/// Track id of the video track in a publication file.
pub const VIDEO_TRACK_ID: u32 = 1;
/// Track id of the audio track in a publication file.
pub const AUDIO_TRACK_ID: u32 = 2;

/// Settings of a [`PublicationRecorder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderConfig {
    /// Key-frame request policy; `timeline.expect_video` says whether the file has video.
    pub timeline: TimelineConfig,
    /// Audio channels, or `None` for a publication without audio.
    pub audio_channels: Option<u8>,
    /// Longest media time in one fragment, and longest wall time a fragment stays open.
    pub fragment_duration: Duration,
    /// How long to hold audio while waiting for the first video key frame.
    pub video_wait: Duration,
    /// Creation time for the file's headers (Unix seconds).
    pub creation_unix_secs: u64,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            timeline: TimelineConfig::default(),
            audio_channels: Some(2),
            fragment_duration: crate::fmp4::DEFAULT_FRAGMENT_DURATION,
            video_wait: Duration::from_secs(3),
            creation_unix_secs: 0,
        }
    }
}

/// What the recorder asks of its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecorderOutput {
    /// Append these bytes to the file (init segment, fragment, or the final index).
    Write(WriterOutput),
    /// Ask the publisher for a key frame (PLI/FIR).
    RequestKeyFrame(KeyFrameReason),
}

/// Counters of a publication recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecorderStats {
    /// The timeline's counters.
    pub timeline: TimelineStats,
    /// Samples written to the file.
    pub samples_written: u64,
    /// Samples the writer refused (a bug if ever non-zero; they are counted, not fatal).
    pub samples_refused: u64,
    /// Fragments cut.
    pub fragments: u64,
}

/// Records one publication into one fMP4 file. See the [module docs](self).
#[derive(Debug)]
pub struct PublicationRecorder {
    config: RecorderConfig,
    timeline: PublicationTimeline,
    writer: Option<Fmp4Writer>,
    held: Vec<TimelineSample>,
    fragment_opened_at: Option<Instant>,
    outputs: VecDeque<RecorderOutput>,
    stats: RecorderStats,
    finished: bool,
}

impl PublicationRecorder {
    /// Starts recording a publication at `now` (the file's time 0).
    pub fn new(config: RecorderConfig, now: Instant) -> Self {
        let timeline = PublicationTimeline::new(config.timeline.clone(), now);
        let mut recorder = Self {
            config,
            timeline,
            writer: None,
            held: Vec::new(),
            fragment_opened_at: None,
            outputs: VecDeque::new(),
            stats: RecorderStats::default(),
            finished: false,
        };
        recorder.drain_timeline(now);
        recorder
    }

    /// Counters so far.
    pub fn stats(&self) -> RecorderStats {
        RecorderStats {
            timeline: self.timeline.stats(),
            ..self.stats
        }
    }

    /// An H.264 access unit arrived.
    pub fn handle_video(&mut self, now: Instant, frame: MediaFrame) {
        if self.finished || !self.config.timeline.expect_video {
            return;
        }
        self.timeline.handle_video(now, frame);
        self.drain_timeline(now);
    }

    /// An Opus packet arrived.
    pub fn handle_audio(&mut self, now: Instant, frame: MediaFrame) {
        if self.finished || self.config.audio_channels.is_none() {
            return;
        }
        self.timeline.handle_audio(now, frame);
        self.drain_timeline(now);
    }

    /// An RTCP sender report arrived.
    pub fn handle_sender_report(&mut self, now: Instant, kind: MediaKind, report: SenderReport) {
        if !self.finished {
            self.timeline.handle_sender_report(now, kind, report);
        }
    }

    /// Time passed: key-frame requests, the video wait and the wall-clock fragment cut.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        self.timeline.handle_timeout(now);
        self.drain_timeline(now);
        if self.writer.is_none() && now >= self.timeline.epoch() + self.config.video_wait {
            self.start_file(now);
        }
        if let Some(opened) = self.fragment_opened_at
            && now.saturating_duration_since(opened) >= self.config.fragment_duration
            && let Some(writer) = self.writer.as_mut()
        {
            if writer.flush().is_err() {
                self.stats.samples_refused += 1;
            }
            self.fragment_opened_at = None;
            self.drain_writer(now);
        }
    }

    /// Ends the file normally: releases held samples, cuts the last fragment and writes the
    /// index. Further input is ignored.
    pub fn finish(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        self.timeline.flush();
        self.drain_timeline(now);
        if self.writer.is_none() {
            self.start_file(now);
        }
        if let Some(writer) = self.writer.as_mut()
            && writer.finish().is_err()
        {
            self.stats.samples_refused += 1;
        }
        self.finished = true;
        self.drain_writer(now);
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<RecorderOutput> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let video_wait = self
            .writer
            .is_none()
            .then(|| self.timeline.epoch() + self.config.video_wait);
        let fragment_cut = self
            .fragment_opened_at
            .map(|t| t + self.config.fragment_duration);
        [self.timeline.poll_timeout(), video_wait, fragment_cut]
            .into_iter()
            .flatten()
            .min()
    }

    fn drain_timeline(&mut self, now: Instant) {
        while let Some(event) = self.timeline.poll_event() {
            match event {
                TimelineEvent::RequestKeyFrame(reason) => self
                    .outputs
                    .push_back(RecorderOutput::RequestKeyFrame(reason)),
                TimelineEvent::Sample(sample) => {
                    let ready = sample.kind == MediaKind::Video && sample.parameter_sets.is_some();
                    self.held.push(sample);
                    let video_pending = self.config.timeline.expect_video;
                    if self.writer.is_none() && (ready || !video_pending) {
                        self.start_file(now);
                    }
                    if self.writer.is_some() {
                        self.write_held(now);
                    }
                }
            }
        }
    }

    /// Creates the writer from what is known now and writes the held samples.
    fn start_file(&mut self, now: Instant) {
        let mut tracks = Vec::new();
        if self.config.timeline.expect_video {
            let parameter_sets = self.held.iter().find_map(|s| s.parameter_sets.clone());
            tracks.push(TrackSpec {
                track_id: VIDEO_TRACK_ID,
                codec: TrackCodec::H264 {
                    entry: H264Entry::Avc3,
                    parameter_sets,
                },
            });
        }
        if let Some(channels) = self.config.audio_channels {
            tracks.push(TrackSpec {
                track_id: AUDIO_TRACK_ID,
                codec: TrackCodec::Opus {
                    channels,
                    pre_skip: 0,
                },
            });
        }
        let config = WriterConfig {
            tracks,
            fragment_duration: self.config.fragment_duration,
            creation_unix_secs: self.config.creation_unix_secs,
        };
        match Fmp4Writer::new(config) {
            Ok(writer) => self.writer = Some(writer),
            Err(WriterError::NoTracks) => {
                self.held.clear();
                return;
            }
            Err(_) => {
                // Only unreadable parameter sets can get here; the timeline admits none.
                self.stats.samples_refused += self.held.len() as u64;
                self.held.clear();
                return;
            }
        }
        self.write_held(now);
    }

    fn write_held(&mut self, now: Instant) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        for sample in self.held.drain(..) {
            let track_id = match sample.kind {
                MediaKind::Video => VIDEO_TRACK_ID,
                MediaKind::Audio => AUDIO_TRACK_ID,
            };
            let result = writer.push_sample(WriterSample {
                track_id,
                dts: sample.dts,
                duration: sample.duration,
                keyframe: sample.keyframe,
                data: sample.data,
            });
            match result {
                Ok(()) => {
                    self.stats.samples_written += 1;
                    self.fragment_opened_at.get_or_insert(now);
                }
                Err(_) => self.stats.samples_refused += 1,
            }
        }
        self.drain_writer(now);
    }

    fn drain_writer(&mut self, now: Instant) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        while let Some(output) = writer.poll_output() {
            if let WriterOutput::Fragment(_) = output {
                self.stats.fragments += 1;
                self.fragment_opened_at = writer.has_open_fragment().then_some(now);
            }
            self.outputs.push_back(RecorderOutput::Write(output));
        }
    }
}
