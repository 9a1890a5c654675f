//! A composed recording: one fMP4 file with one video track (every source's H.264 decoded,
//! laid out and drawn by the [`Compositor`] at a fixed rate, encoded once) and one audio track
//! (every source's Opus decoded, placed on the timeline, mixed, encoded once); `AUDIO`
//! recordings have only the audio track. The active speaker (the mixer's loudest source) is
//! framed in the picture.
//!
//! Sans-IO: media comes in with its time on the recording's timeline (µs from its start);
//! [`ComposedRecording::advance`] is told how far the recording has got and composes and mixes
//! everything due until then — the caller keeps that a little behind real time so late packets
//! still count; blocks to append come out of [`ComposedRecording::poll_output`].
//!
//! Nothing received is lost when composition falls behind (a loaded machine): video waits
//! encoded (kilobytes a frame) and is decoded just before the frame that shows it, sound waits
//! decoded in the mixer; a source that leaves goes only once everything it sent is composed.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use convrec_media::fmp4::{
    DEFAULT_FRAGMENT_DURATION, Fmp4Writer, H264Entry, TrackCodec, TrackSpec, WriterConfig,
    WriterOutput, WriterSample,
};
use convrec_media::h264::annexb_to_length_prefixed;
use thiserror::Error;

use crate::codec::{
    CodecError, H264Decoder, H264Encoder, OPUS_FRAME, OPUS_PRE_SKIP, OpusDecoder, OpusEncoder,
};
use crate::compositor::{Compositor, SourceId, SourceKind};
use crate::layout::Canvas;
use crate::mixer::{Mixer, RATE};

const VIDEO_TRACK: u32 = 1;
const AUDIO_TRACK: u32 = 2;

/// The video track's timescale (ticks per second).
const VIDEO_TIMESCALE: u64 = 90_000;

/// How the composed picture looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoConfig {
    /// The picture's size.
    pub canvas: Canvas,
    /// Frames per second.
    pub fps: u32,
    /// Target bits per second.
    pub bitrate: u32,
    /// A key frame at least this often (players seek to key frames).
    pub key_interval: Duration,
}

/// What a composed recording holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingConfig {
    /// The picture (none: an `AUDIO` recording, sound only).
    pub video: Option<VideoConfig>,
    /// The mix's target bits per second.
    pub audio_bitrate: u32,
    /// Creation time for the file's header (Unix seconds).
    pub creation_unix_secs: u64,
}

/// Why composition failed (only the encoders or the writer can: a broken input packet is
/// counted and skipped).
#[derive(Debug, Error)]
pub enum ComposeError {
    /// An encoder refused.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The writer refused.
    #[error("fMP4: {0}")]
    Writer(String),
}

/// At most this much encoded video waits per source (at 2 Mbit/s, two minutes of falling
/// behind); beyond it the oldest is decoded at once and waits as a picture, where the
/// compositor's own bound applies.
const MAX_WAITING_VIDEO_BYTES: usize = 32 << 20;

/// A source's video on its way to the compositor.
struct VideoInput {
    decoder: H264Decoder,
    /// Access units (Annex B) not yet decoded, in arrival order, with their times (µs).
    waiting: VecDeque<(u64, Vec<u8>)>,
    waiting_bytes: usize,
}

impl VideoInput {
    /// Decodes the units due by `until` (µs) and hands their pictures to the compositor; a unit
    /// the decoder refuses is counted in `broken`.
    fn decode(&mut self, id: SourceId, until: u64, compositor: &mut Compositor, broken: &mut u64) {
        while let Some((at, _)) = self.waiting.front()
            && *at <= until
        {
            let (at, unit) = self.waiting.pop_front().expect("bug: front checked above");
            self.waiting_bytes -= unit.len();
            match self.decoder.decode(&unit) {
                Ok(Some(picture)) => compositor.handle_picture(id, at, picture),
                Ok(None) => {}
                Err(_) => *broken += 1,
            }
        }
    }
}

struct Video {
    config: VideoConfig,
    compositor: Compositor,
    encoder: H264Encoder,
    inputs: BTreeMap<SourceId, VideoInput>,
    /// The last encoded frame (time in µs, length-prefixed data, key), held until the next one
    /// fixes its duration.
    pending: Option<(u64, Vec<u8>, bool)>,
    last_key: Option<u64>,
}

struct Audio {
    mixer: Mixer,
    encoder: OpusEncoder,
    decoders: BTreeMap<SourceId, OpusDecoder>,
    frame: Vec<f32>,
}

/// A composed recording. See the [module docs](self).
pub struct ComposedRecording {
    video: Option<Video>,
    audio: Audio,
    writer: Fmp4Writer,
    scratch: Vec<u8>,
    broken_packets: u64,
    /// The time (µs) each source's media received so far reaches.
    ends: BTreeMap<SourceId, u64>,
    /// Sources that left, removed once composition has passed their end.
    leaving: Vec<SourceId>,
    /// Errors of encoders and writer, kept for the caller (composition goes on without the
    /// failed frame).
    errors: VecDeque<ComposeError>,
}

impl std::fmt::Debug for ComposedRecording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComposedRecording")
            .field("video", &self.video.as_ref().map(|v| v.config))
            .field("broken_packets", &self.broken_packets)
            .finish_non_exhaustive()
    }
}

impl ComposedRecording {
    /// A composed recording; its file's init segment is the first output.
    pub fn new(config: RecordingConfig) -> Result<Self, ComposeError> {
        let mut tracks = Vec::new();
        let video = match config.video {
            Some(v) => {
                tracks.push(TrackSpec {
                    track_id: VIDEO_TRACK,
                    codec: TrackCodec::H264 {
                        entry: H264Entry::Avc3,
                        parameter_sets: None,
                    },
                });
                Some(Video {
                    compositor: Compositor::new(v.canvas, v.fps),
                    encoder: H264Encoder::new(v.canvas.width, v.canvas.height, v.fps, v.bitrate)?,
                    inputs: BTreeMap::new(),
                    pending: None,
                    last_key: None,
                    config: v,
                })
            }
            None => None,
        };
        tracks.push(TrackSpec {
            track_id: AUDIO_TRACK,
            codec: TrackCodec::Opus {
                channels: 1,
                pre_skip: OPUS_PRE_SKIP,
            },
        });
        let writer = Fmp4Writer::new(WriterConfig {
            tracks,
            fragment_duration: DEFAULT_FRAGMENT_DURATION,
            creation_unix_secs: config.creation_unix_secs,
        })
        .map_err(|e| ComposeError::Writer(e.to_string()))?;
        Ok(Self {
            video,
            audio: Audio {
                mixer: Mixer::new(),
                encoder: OpusEncoder::new(config.audio_bitrate)?,
                decoders: BTreeMap::new(),
                frame: vec![0.0; OPUS_FRAME],
            },
            writer,
            scratch: Vec::new(),
            broken_packets: 0,
            ends: BTreeMap::new(),
            leaving: Vec::new(),
            errors: VecDeque::new(),
        })
    }

    /// A source joins: its video (a camera or a screen, named under its tile) and its sound,
    /// as it has them.
    pub fn add_source(
        &mut self,
        id: SourceId,
        kind: SourceKind,
        name: &str,
        has_audio: bool,
        has_video: bool,
    ) -> Result<(), ComposeError> {
        self.leaving.retain(|l| *l != id);
        if has_video && let Some(video) = &mut self.video {
            if let std::collections::btree_map::Entry::Vacant(slot) = video.inputs.entry(id) {
                slot.insert(VideoInput {
                    decoder: H264Decoder::new()?,
                    waiting: VecDeque::new(),
                    waiting_bytes: 0,
                });
            }
            video.compositor.add_source(id, kind, name);
        }
        if has_audio
            && let std::collections::btree_map::Entry::Vacant(slot) = self.audio.decoders.entry(id)
        {
            slot.insert(OpusDecoder::new()?);
        }
        Ok(())
    }

    /// A source leaves: what it sends from now on is ignored, and once what it sent is composed
    /// and mixed, its tile goes from the next frame and its sound from the next mix.
    pub fn remove_source(&mut self, id: SourceId) {
        if !self.leaving.contains(&id) {
            self.leaving.push(id);
        }
    }

    /// Removes the leaving sources whose media is all composed and mixed.
    fn remove_gone_sources(&mut self) {
        let mixed = self.audio.mixer.position() * 1_000_000 / u64::from(RATE);
        // Pictures up to this time have been taken by a composed frame.
        let shown = self
            .video
            .as_ref()
            .map_or(u64::MAX, |v| v.compositor.shown_until());
        let ends = &self.ends;
        let (gone, staying): (Vec<SourceId>, Vec<SourceId>) = self.leaving.iter().partition(|id| {
            let end = ends.get(id).copied().unwrap_or(0);
            end <= mixed && end <= shown
        });
        self.leaving = staying;
        for id in gone {
            if let Some(video) = &mut self.video {
                video.inputs.remove(&id);
                video.compositor.remove_source(id);
            }
            self.audio.decoders.remove(&id);
            self.audio.mixer.remove(id);
            self.ends.remove(&id);
        }
    }

    /// Notes that `id`'s media reaches `end` (µs).
    fn extend_end(&mut self, id: SourceId, end: u64) {
        let known = self.ends.entry(id).or_default();
        *known = (*known).max(end);
    }

    /// An H.264 access unit (Annex B) of `id` for time `at` (µs), in the source's time order.
    /// It is decoded when its frame is composed; one the decoder refuses then is counted and
    /// skipped (the tile keeps its last picture until the next key frame).
    pub fn handle_video(&mut self, id: SourceId, at: u64, access_unit: &[u8]) {
        let Some(video) = &mut self.video else {
            return;
        };
        if self.leaving.contains(&id) {
            return;
        }
        let Some(input) = video.inputs.get_mut(&id) else {
            return;
        };
        input.waiting.push_back((at, access_unit.to_vec()));
        input.waiting_bytes += access_unit.len();
        while input.waiting_bytes > MAX_WAITING_VIDEO_BYTES {
            let oldest = input.waiting.front().map_or(0, |(at, _)| *at);
            input.decode(id, oldest, &mut video.compositor, &mut self.broken_packets);
        }
        self.extend_end(id, at);
    }

    /// An Opus packet of `id` for time `at` (µs). One the decoder refuses is counted and
    /// skipped (silence in its place).
    pub fn handle_audio(&mut self, id: SourceId, at: u64, packet: &[u8]) {
        if self.leaving.contains(&id) {
            return;
        }
        let Some(decoder) = self.audio.decoders.get_mut(&id) else {
            return;
        };
        match decoder.decode(packet) {
            Ok(pcm) => {
                let end = at + pcm.len() as u64 * 1_000_000 / u64::from(RATE);
                self.audio
                    .mixer
                    .push(id, at * u64::from(RATE) / 1_000_000, pcm);
                self.extend_end(id, end);
            }
            Err(_) => self.broken_packets += 1,
        }
    }

    /// Mixes and composes everything due until `now` (µs on the timeline), encodes it and
    /// hands it to the writer. An encoder's or the writer's refusal is kept for
    /// [`ComposedRecording::poll_error`] and the rest goes on.
    pub fn advance(&mut self, now: u64) {
        let until = now * u64::from(RATE) / 1_000_000;
        while self.audio.mixer.position() + OPUS_FRAME as u64 <= until {
            let at = self.audio.mixer.position();
            self.audio.mixer.mix(&mut self.audio.frame);
            let result = self
                .audio
                .encoder
                .encode(&self.audio.frame)
                .map_err(ComposeError::from)
                .and_then(|packet| {
                    self.writer
                        .push_sample(WriterSample {
                            track_id: AUDIO_TRACK,
                            dts: at,
                            duration: OPUS_FRAME as u32,
                            keyframe: true,
                            data: packet,
                        })
                        .map_err(|e| ComposeError::Writer(e.to_string()))
                });
            if let Err(e) = result {
                self.errors.push_back(e);
            }
        }
        let speaker = self.audio.mixer.speaker();
        if let Some(video) = &mut self.video {
            video.compositor.set_speaker(speaker);
            let key_every = video.config.key_interval.as_micros() as u64;
            while video.compositor.next_frame_time() <= now {
                let until = video.compositor.next_frame_shows_until();
                for (id, input) in &mut video.inputs {
                    input.decode(*id, until, &mut video.compositor, &mut self.broken_packets);
                }
                let Some((at, frame)) = video.compositor.poll_frame(now) else {
                    break;
                };
                let key = video.last_key.is_none_or(|k| at >= k + key_every);
                let unit = match video.encoder.encode(frame, key) {
                    Ok(unit) if !unit.is_empty() => unit,
                    Ok(_) => continue,
                    Err(e) => {
                        self.errors.push_back(e.into());
                        continue;
                    }
                };
                let Ok(info) = annexb_to_length_prefixed(&unit, &mut self.scratch) else {
                    continue;
                };
                if info.keyframe {
                    video.last_key = Some(at);
                }
                let data = std::mem::take(&mut self.scratch);
                if let Some(previous) = video.pending.replace((at, data, info.keyframe))
                    && let Err(e) = write_video(&mut self.writer, previous, at)
                {
                    self.errors.push_back(e);
                }
            }
        }
        self.remove_gone_sources();
    }

    /// Writes what is pending and the index; the file is complete when the outputs are out.
    pub fn finish(&mut self) -> Result<(), ComposeError> {
        if let Some(video) = &mut self.video
            && let Some(last) = video.pending.take()
        {
            let end = last.0 + 1_000_000 / u64::from(video.config.fps.max(1));
            write_video(&mut self.writer, last, end)?;
        }
        self.writer
            .finish()
            .map_err(|e| ComposeError::Writer(e.to_string()))
    }

    /// The next block to append to the file.
    pub fn poll_output(&mut self) -> Option<WriterOutput> {
        self.writer.poll_output()
    }

    /// An error met while advancing.
    pub fn poll_error(&mut self) -> Option<ComposeError> {
        self.errors.pop_front()
    }

    /// Input packets a decoder refused.
    pub fn broken_packets(&self) -> u64 {
        self.broken_packets
    }

    /// Decoded pictures dropped unshown because too many of a source waited (only when
    /// composition falls minutes behind).
    pub fn dropped_pictures(&self) -> u64 {
        self.video
            .as_ref()
            .map_or(0, |v| v.compositor.dropped_pictures())
    }

    /// Sound samples dropped because they came for a stretch already mixed.
    pub fn dropped_late_samples(&self) -> u64 {
        self.audio.mixer.dropped_late()
    }
}

fn write_video(
    writer: &mut Fmp4Writer,
    (at, data, keyframe): (u64, Vec<u8>, bool),
    until: u64,
) -> Result<(), ComposeError> {
    let ticks = |us: u64| us * VIDEO_TIMESCALE / 1_000_000;
    let dts = ticks(at);
    writer
        .push_sample(WriterSample {
            track_id: VIDEO_TRACK,
            dts,
            duration: u32::try_from((ticks(until) - dts).max(1)).unwrap_or(u32::MAX),
            keyframe,
            data,
        })
        .map_err(|e| ComposeError::Writer(e.to_string()))
}
