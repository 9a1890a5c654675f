//! A composed recording inside the recorder (SPEC §6 `COMPOSED`): every publication's frames go
//! through its own media timeline (RTP time → time since the recorder joined, sender-report
//! sync, key-frame requests), then into one [`ComposedRecording`]: one file, one picture, one
//! sound. Composition runs [`COMPOSE_DELAY`] behind real time so that reordered and late
//! packets still land in place, and on a timer, so a silent or frozen input never stalls it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use convrec_compose::compositor::SourceKind;
use convrec_compose::layout::Canvas;
use convrec_compose::recording::{ComposeError, ComposedRecording, RecordingConfig, VideoConfig};
use convrec_core::recorder_protocol::{Composition, PublicationInfo};
use convrec_media::h264::length_prefixed_nals;
use convrec_media::timeline::{
    MediaFrame, MediaKind, PublicationTimeline, SenderReport, TimelineConfig, TimelineEvent,
    TimelineSample,
};

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
    recording: ComposedRecording,
    start: Instant,
    sources: Vec<Source>,
    blocks: VecDeque<Vec<u8>>,
    key_requests: VecDeque<u64>,
    next_tick: Instant,
    finished: bool,
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
    ) -> Result<Self, ComposeError> {
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
            recording: ComposedRecording::new(RecordingConfig {
                video,
                audio_bitrate: composition.audio_bitrate,
                creation_unix_secs,
            })?,
            start: now,
            sources: Vec::new(),
            blocks: VecDeque::new(),
            key_requests: VecDeque::new(),
            next_tick: now,
            finished: false,
            has_media: false,
        })
    }

    /// A publication joins as source `id`.
    pub fn add(
        &mut self,
        now: Instant,
        id: u64,
        info: &PublicationInfo,
    ) -> Result<(), ComposeError> {
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
            .add_source(id, kind, &name, info.audio, info.video)?;
        let config = TimelineConfig {
            expect_video: info.video,
            ..TimelineConfig::default()
        };
        self.sources.push(Source {
            id,
            timeline: PublicationTimeline::new(config, now),
            ended: false,
        });
        Ok(())
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
        if self.has_media && !self.finished && now >= self.next_tick {
            let due = now.saturating_duration_since(self.start + COMPOSE_DELAY);
            self.recording.advance(due.as_micros() as u64);
            self.next_tick = now + TICK;
            self.collect();
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        self.sources
            .iter()
            .filter_map(|s| s.timeline.poll_timeout())
            .chain([self.next_tick])
            .min()
    }

    /// Ends the file: every timeline flushed, everything composed up to `now`, the index written.
    pub fn finish(&mut self, now: Instant) -> Result<(), ComposeError> {
        if self.finished {
            return Ok(());
        }
        for s in &mut self.sources {
            s.timeline.flush();
        }
        self.drain_timelines();
        self.finished = true;
        if !self.has_media {
            // Nothing was received: no file at all.
            return Ok(());
        }
        self.recording
            .advance(now.saturating_duration_since(self.start).as_micros() as u64);
        let result = self.recording.finish();
        self.collect();
        tracing::info!(
            broken_packets = self.recording.broken_packets(),
            dropped_pictures = self.recording.dropped_pictures(),
            dropped_late_samples = self.recording.dropped_late_samples(),
            "composed file finished"
        );
        result
    }

    /// Whether the index was written.
    pub fn is_finished(&self) -> bool {
        self.finished
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
        while let Some(error) = self.recording.poll_error() {
            tracing::warn!(%error, "composition");
        }
        while let Some(output) = self.recording.poll_output() {
            self.blocks.push_back(output.bytes().to_vec());
        }
    }
}

/// Hands a timeline's sample to the composition at its time since the recorder joined.
fn feed(
    recording: &mut ComposedRecording,
    start: Instant,
    id: u64,
    epoch: Instant,
    sample: TimelineSample,
) {
    let offset = epoch.saturating_duration_since(start).as_micros() as u64;
    let at = offset + sample.dts * 1_000_000 / u64::from(sample.kind.clock_rate());
    match sample.kind {
        MediaKind::Audio => recording.handle_audio(id, at, &sample.data),
        MediaKind::Video => {
            // The decoder reads Annex B: start codes in place of the lengths.
            let mut annexb = Vec::with_capacity(sample.data.len() + 16);
            for nal in length_prefixed_nals(&sample.data).flatten() {
                annexb.extend_from_slice(&[0, 0, 0, 1]);
                annexb.extend_from_slice(nal);
            }
            recording.handle_video(id, at, &annexb);
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
        file.finish(start + Duration::from_secs(2))
            .expect("finishes");
        assert!(file.is_finished());
        assert_eq!(file.poll_block(), None, "no init segment, no fragments");
    }
}
