//! A composed recording's video: every source's H.264 decoded, laid out and drawn by the
//! [`Compositor`] at a fixed rate, encoded once, and written as one fMP4 track by the media
//! core's writer. Sans-IO: access units come in with their times on the recording's timeline
//! (µs from its start); [`ComposedVideo::advance`] is told how far the recording has got and
//! composes every frame due until then; blocks to append come out of
//! [`ComposedVideo::poll_output`].
//!
//! The mixed sound track joins this file when the audio codec is in (step 6 continues).

use std::collections::BTreeMap;
use std::time::Duration;

use convrec_media::fmp4::{
    DEFAULT_FRAGMENT_DURATION, Fmp4Writer, H264Entry, TrackCodec, TrackSpec, WriterConfig,
    WriterOutput, WriterSample,
};
use convrec_media::h264::annexb_to_length_prefixed;
use thiserror::Error;

use crate::codec::{CodecError, H264Decoder, H264Encoder};
use crate::compositor::{Compositor, SourceId, SourceKind};
use crate::layout::Canvas;

/// The video track's id in the file.
const VIDEO_TRACK: u32 = 1;

/// The video track's timescale (ticks per second).
const TIMESCALE: u64 = 90_000;

/// µs on the timeline → ticks of the video track.
fn ticks(us: u64) -> u64 {
    us * TIMESCALE / 1_000_000
}

/// How a composed recording looks.
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
    /// Creation time for the file's header (Unix seconds).
    pub creation_unix_secs: u64,
}

/// Why composition failed (only the encoder or the writer can: a broken input stream is
/// counted and skipped).
#[derive(Debug, Error)]
pub enum ComposeError {
    /// The encoder refused.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The writer refused.
    #[error("fMP4: {0}")]
    Writer(String),
}

/// The composed video of a recording.
#[derive(Debug)]
pub struct ComposedVideo {
    config: VideoConfig,
    compositor: Compositor,
    encoder: H264Encoder,
    decoders: BTreeMap<SourceId, H264Decoder>,
    writer: Fmp4Writer,
    /// The last frame handed to the writer: (its time in µs, its encoded access unit), held
    /// until the next one fixes its duration.
    pending: Option<(u64, Vec<u8>, bool)>,
    last_key: Option<u64>,
    scratch: Vec<u8>,
    broken_units: u64,
}

impl ComposedVideo {
    /// A composed video track; its file's init segment is the first output.
    pub fn new(config: VideoConfig) -> Result<Self, ComposeError> {
        let encoder = H264Encoder::new(
            config.canvas.width,
            config.canvas.height,
            config.fps,
            config.bitrate,
        )?;
        let writer = Fmp4Writer::new(WriterConfig {
            tracks: vec![TrackSpec {
                track_id: VIDEO_TRACK,
                codec: TrackCodec::H264 {
                    entry: H264Entry::Avc3,
                    parameter_sets: None,
                },
            }],
            fragment_duration: DEFAULT_FRAGMENT_DURATION,
            creation_unix_secs: config.creation_unix_secs,
        })
        .map_err(|e| ComposeError::Writer(e.to_string()))?;
        Ok(Self {
            compositor: Compositor::new(config.canvas, config.fps),
            config,
            encoder,
            decoders: BTreeMap::new(),
            writer,
            pending: None,
            last_key: None,
            scratch: Vec::new(),
            broken_units: 0,
        })
    }

    /// A video source joins.
    pub fn add_source(
        &mut self,
        id: SourceId,
        kind: SourceKind,
        name: &str,
    ) -> Result<(), ComposeError> {
        if let std::collections::btree_map::Entry::Vacant(slot) = self.decoders.entry(id) {
            slot.insert(H264Decoder::new()?);
        }
        self.compositor.add_source(id, kind, name);
        Ok(())
    }

    /// A video source leaves.
    pub fn remove_source(&mut self, id: SourceId) {
        self.decoders.remove(&id);
        self.compositor.remove_source(id);
    }

    /// Marks the active speaker (or nobody).
    pub fn set_speaker(&mut self, id: Option<SourceId>) {
        self.compositor.set_speaker(id);
    }

    /// An access unit (Annex B) of `id` for time `at` (µs). A unit the decoder refuses is
    /// counted and skipped (the source keeps its last picture until its next key frame).
    pub fn handle_video(&mut self, id: SourceId, at: u64, access_unit: &[u8]) {
        let Some(decoder) = self.decoders.get_mut(&id) else {
            return;
        };
        match decoder.decode(access_unit) {
            Ok(Some(picture)) => self.compositor.handle_picture(id, at, picture),
            Ok(None) => {}
            Err(_) => self.broken_units += 1,
        }
    }

    /// Composes, encodes and writes every frame due until `now` (µs on the timeline).
    pub fn advance(&mut self, now: u64) -> Result<(), ComposeError> {
        let key_every = self.config.key_interval.as_micros() as u64;
        while let Some((at, frame)) = self.compositor.poll_frame(now) {
            let key = self.last_key.is_none_or(|k| at >= k + key_every);
            let unit = self.encoder.encode(frame, key)?;
            if unit.is_empty() {
                continue;
            }
            let info = annexb_to_length_prefixed(&unit, &mut self.scratch)
                .map_err(|e| ComposeError::Writer(e.to_string()))?;
            if info.keyframe {
                self.last_key = Some(at);
            }
            let data = std::mem::take(&mut self.scratch);
            if let Some(previous) = self.pending.replace((at, data, info.keyframe)) {
                self.write(previous, at)?;
            }
        }
        Ok(())
    }

    /// Writes the last frame and the index; the file is complete when the outputs are out.
    pub fn finish(&mut self) -> Result<(), ComposeError> {
        if let Some(last) = self.pending.take() {
            let end = last.0 + 1_000_000 / u64::from(self.config.fps.max(1));
            self.write(last, end)?;
        }
        self.writer
            .finish()
            .map_err(|e| ComposeError::Writer(e.to_string()))
    }

    /// The next block to append to the file.
    pub fn poll_output(&mut self) -> Option<WriterOutput> {
        self.writer.poll_output()
    }

    /// Access units a decoder refused.
    pub fn broken_units(&self) -> u64 {
        self.broken_units
    }

    fn write(
        &mut self,
        (at, data, keyframe): (u64, Vec<u8>, bool),
        until: u64,
    ) -> Result<(), ComposeError> {
        let dts = ticks(at);
        let duration = (ticks(until) - dts).max(1);
        self.writer
            .push_sample(WriterSample {
                track_id: VIDEO_TRACK,
                dts,
                duration: u32::try_from(duration).unwrap_or(u32::MAX),
                keyframe,
                data,
            })
            .map_err(|e| ComposeError::Writer(e.to_string()))
    }
}
