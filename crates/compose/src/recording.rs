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

struct Video {
    config: VideoConfig,
    compositor: Compositor,
    encoder: H264Encoder,
    decoders: BTreeMap<SourceId, H264Decoder>,
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
                    decoders: BTreeMap::new(),
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
        if has_video && let Some(video) = &mut self.video {
            if let std::collections::btree_map::Entry::Vacant(slot) = video.decoders.entry(id) {
                slot.insert(H264Decoder::new()?);
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

    /// A source leaves: its tile goes from the next frame, its sound from the next mix.
    pub fn remove_source(&mut self, id: SourceId) {
        if let Some(video) = &mut self.video {
            video.decoders.remove(&id);
            video.compositor.remove_source(id);
        }
        self.audio.decoders.remove(&id);
        self.audio.mixer.remove(id);
    }

    /// An H.264 access unit (Annex B) of `id` for time `at` (µs). One the decoder refuses is
    /// counted and skipped (the tile keeps its last picture until the next key frame).
    pub fn handle_video(&mut self, id: SourceId, at: u64, access_unit: &[u8]) {
        let Some(video) = &mut self.video else {
            return;
        };
        let Some(decoder) = video.decoders.get_mut(&id) else {
            return;
        };
        match decoder.decode(access_unit) {
            Ok(Some(picture)) => video.compositor.handle_picture(id, at, picture),
            Ok(None) => {}
            Err(_) => self.broken_packets += 1,
        }
    }

    /// An Opus packet of `id` for time `at` (µs). One the decoder refuses is counted and
    /// skipped (silence in its place).
    pub fn handle_audio(&mut self, id: SourceId, at: u64, packet: &[u8]) {
        let Some(decoder) = self.audio.decoders.get_mut(&id) else {
            return;
        };
        match decoder.decode(packet) {
            Ok(pcm) => self
                .audio
                .mixer
                .push(id, at * u64::from(RATE) / 1_000_000, pcm),
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
            while let Some((at, frame)) = video.compositor.poll_frame(now) {
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
