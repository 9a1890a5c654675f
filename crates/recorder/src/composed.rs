//! A composed recording inside the recorder (SPEC §6 `COMPOSED`): every publication's frames go
//! through its own media timeline (RTP time → time since the recorder joined, sender-report
//! sync, key-frame requests), then into one
//! [`ComposedRecording`](convrec_compose::recording::ComposedRecording): one file, one picture,
//! one sound. Composition runs [`COMPOSE_DELAY`] behind real time so that reordered and late
//! packets still land in place, and on a timer, so a silent or frozen input never stalls it.
//! The composing itself runs on its own thread ([`ComposeWorker`]), so that a loaded machine
//! delays the file but never the reading of the sockets.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use convrec_compose::compositor::SourceKind;
use convrec_compose::layout::Canvas;
use convrec_compose::recording::{RecordingConfig, VideoConfig};
use convrec_core::recorder_protocol::{Composition, PublicationInfo};
use convrec_media::h264::length_prefixed_nals;
use convrec_media::timeline::{
    MediaFrame, MediaKind, PublicationTimeline, SenderReport, TimelineConfig, TimelineEvent,
    TimelineSample,
};

use crate::compose_worker::{ComposeWorker, MAX_QUEUED_BYTES, WorkerError, WorkerOutput};

/// How far composition stays behind real time.
pub const COMPOSE_DELAY: Duration = Duration::from_millis(400);

/// How often composition runs without input (half a 30 fps frame).
const TICK: Duration = Duration::from_millis(16);

struct Source {
    id: u64,
    timeline: PublicationTimeline,
    ended: bool,
}

/// The composed file of a recorder session.
pub struct ComposedFile {
    recording: ComposeWorker,
    start: Instant,
    sources: Vec<Source>,
    blocks: VecDeque<Vec<u8>>,
    key_requests: VecDeque<u64>,
    next_tick: Instant,
    /// The end was asked for: no more composing on the clock.
    finishing: bool,
    /// The file is complete: its last block is in `blocks`.
    finished: bool,
    /// The worker ended without finishing the file.
    stopped: bool,
    /// Some source delivered a sample: before that there is nothing to record (SPEC §5: a
    /// recording that never produced media has no file).
    has_media: bool,
}

impl std::fmt::Debug for ComposedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComposedFile")
            .field("sources", &self.sources.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl ComposedFile {
    /// A composed file whose time 0 is `now` (the recorder joined).
    pub fn new(
        composition: &Composition,
        now: Instant,
        creation_unix_secs: u64,
    ) -> Result<Self, WorkerError> {
        let video = match (composition.width, composition.height) {
            (Some(width), Some(height)) => Some(VideoConfig {
                canvas: Canvas { width, height },
                fps: composition.fps,
                bitrate: composition.video_bitrate,
                key_interval: Duration::from_secs(2),
            }),
            _ => None,
        };
        Ok(Self {
            recording: ComposeWorker::spawn(
                RecordingConfig {
                    video,
                    audio_bitrate: composition.audio_bitrate,
                    creation_unix_secs,
                },
                MAX_QUEUED_BYTES,
            )?,
            start: now,
            sources: Vec::new(),
            blocks: VecDeque::new(),
            key_requests: VecDeque::new(),
            next_tick: now,
            finishing: false,
            finished: false,
            stopped: false,
            has_media: false,
        })
    }

    /// A publication joins as source `id`. (Should its decoders fail to start, the worker says
    /// so and composes the others.)
    pub fn add(&mut self, now: Instant, id: u64, info: &PublicationInfo) {
        let kind = if info.interaction_type == "SCREEN_SHARING" {
            SourceKind::Screen
        } else {
            SourceKind::Camera
        };
        let name = if kind == SourceKind::Screen {
            format!("{}'s screen", info.participant_name)
        } else {
            info.participant_name.clone()
        };
        self.recording
            .add_source(id, kind, &name, info.audio, info.video);
        let config = TimelineConfig {
            expect_video: info.video,
            ..TimelineConfig::default()
        };
        self.sources.push(Source {
            id,
            timeline: PublicationTimeline::new(config, now),
            ended: false,
        });
    }

    /// A frame of source `id` arrived.
    pub fn handle_frame(&mut self, now: Instant, id: u64, kind: MediaKind, frame: MediaFrame) {
        if let Some(s) = self.sources.iter_mut().find(|s| s.id == id && !s.ended) {
            match kind {
                MediaKind::Video => s.timeline.handle_video(now, frame),
                MediaKind::Audio => s.timeline.handle_audio(now, frame),
            }
        }
        self.drain_timelines();
    }

    /// A sender report of source `id` arrived.
    pub fn handle_sender_report(
        &mut self,
        now: Instant,
        id: u64,
        kind: MediaKind,
        report: SenderReport,
    ) {
        if let Some(s) = self.sources.iter_mut().find(|s| s.id == id && !s.ended) {
            s.timeline.handle_sender_report(now, kind, report);
        }
    }

    /// Source `id` ended: what its timeline holds is composed, then its tile and voice go.
    pub fn end_source(&mut self, id: u64) {
        if let Some(s) = self.sources.iter_mut().find(|s| s.id == id && !s.ended) {
            s.timeline.flush();
            s.ended = true;
            crate::session::log_intake("composed source ended", &s.timeline.stats());
        }
        self.drain_timelines();
        self.recording.remove_source(id);
    }

    /// Time passed: timelines time out, and everything due [`COMPOSE_DELAY`] ago is composed.
    pub fn handle_timeout(&mut self, now: Instant) {
        for s in &mut self.sources {
            if s.timeline.poll_timeout().is_some_and(|t| t <= now) {
                s.timeline.handle_timeout(now);
            }
        }
        self.drain_timelines();
        if now >= self.next_tick {
            if self.has_media && !self.finishing {
                let due = now.saturating_duration_since(self.start + COMPOSE_DELAY);
                self.recording.advance(due.as_micros() as u64);
            }
            self.next_tick = now + TICK;
        }
        self.collect();
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to run next (while finishing too:
    /// that is when the worker's last blocks are collected).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished || self.stopped {
            return None;
        }
        self.sources
            .iter()
            .filter_map(|s| s.timeline.poll_timeout())
            .chain([self.next_tick])
            .min()
    }

    /// Ends the file: every timeline flushed, everything composed up to `now`, the index
    /// written. The file is complete once [`is_finished`](Self::is_finished) says so.
    pub fn finish(&mut self, now: Instant) {
        if self.finishing {
            return;
        }
        for s in &mut self.sources {
            s.timeline.flush();
        }
        self.drain_timelines();
        self.finishing = true;
        if !self.has_media {
            // Nothing was received: no file at all.
            self.finished = true;
            return;
        }
        self.recording
            .advance(now.saturating_duration_since(self.start).as_micros() as u64);
        self.recording.finish();
    }

    /// Whether the file is complete: every block made, the index last.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether the composition thread ended without finishing the file.
    pub fn has_stopped(&self) -> bool {
        self.stopped
    }

    /// The next block of the file.
    pub fn poll_block(&mut self) -> Option<Vec<u8>> {
        self.blocks.pop_front()
    }

    /// A source whose sender should send a key frame.
    pub fn poll_key_frame_request(&mut self) -> Option<u64> {
        self.key_requests.pop_front()
    }

    fn drain_timelines(&mut self) {
        for s in &mut self.sources {
            while let Some(event) = s.timeline.poll_event() {
                match event {
                    TimelineEvent::Sample(sample) => {
                        self.has_media = true;
                        feed(
                            &mut self.recording,
                            self.start,
                            s.id,
                            s.timeline.epoch(),
                            sample,
                        )
                    }
                    TimelineEvent::RequestKeyFrame(_) => self.key_requests.push_back(s.id),
                }
            }
        }
    }

    fn collect(&mut self) {
        while !self.finished && !self.stopped {
            match self.recording.poll() {
                Ok(Some(WorkerOutput::Block(bytes))) => self.blocks.push_back(bytes),
                Ok(Some(WorkerOutput::Error(error))) => tracing::warn!(%error, "composition"),
                Ok(Some(WorkerOutput::Finished(result, counters))) => {
                    tracing::info!(
                        broken_packets = counters.broken_packets,
                        dropped_pictures = counters.dropped_pictures,
                        dropped_late_samples = counters.dropped_late_samples,
                        dropped_queued_bytes = self.recording.dropped_bytes(),
                        "composed file finished"
                    );
                    if let Err(error) = result {
                        tracing::warn!(%error, "finishing the composed file");
                    }
                    self.finished = true;
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::error!(%error, "composition");
                    self.stopped = true;
                }
            }
        }
    }
}

/// Hands a timeline's sample to the composition at its time since the recorder joined.
fn feed(
    recording: &mut ComposeWorker,
    start: Instant,
    id: u64,
    epoch: Instant,
    sample: TimelineSample,
) {
    let offset = epoch.saturating_duration_since(start).as_micros() as u64;
    let at = offset + sample.dts * 1_000_000 / u64::from(sample.kind.clock_rate());
    match sample.kind {
        MediaKind::Audio => recording.handle_audio(id, at, sample.data),
        MediaKind::Video => {
            // The decoder reads Annex B: start codes in place of the lengths.
            let mut annexb = Vec::with_capacity(sample.data.len() + 16);
            for nal in length_prefixed_nals(&sample.data).flatten() {
                annexb.extend_from_slice(&[0, 0, 0, 1]);
                annexb.extend_from_slice(nal);
            }
            recording.handle_video(id, at, annexb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_composition_that_never_received_media_makes_no_file() {
        let start = Instant::now();
        let composition = Composition {
            width: Some(320),
            height: Some(240),
            fps: 15,
            video_bitrate: 300_000,
            audio_bitrate: 32_000,
        };
        let mut file = ComposedFile::new(&composition, start, 0).expect("a composed file");
        for n in 1..100 {
            file.handle_timeout(start + TICK * n);
        }
        file.finish(start + Duration::from_secs(2));
        assert!(file.is_finished());
        assert_eq!(file.poll_block(), None, "no init segment, no fragments");
    }
}
