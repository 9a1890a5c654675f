//! The codecs: H.264 in and out of [`Picture`]s with OpenH264 (built from its bundled source by
//! cargo), a decoder per incoming stream and one encoder for the composed picture; Opus in and
//! out of PCM with `opus-rs` (pure Rust), a decoder per incoming stream and one encoder for the
//! mix. No I/O.

use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, RateControlMode, UsageType,
};
use openh264::formats::YUVSource;
use thiserror::Error;

use crate::picture::Picture;

/// Why a codec refused.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The Opus codec said no (a broken packet, or a failed encode).
    #[error("Opus: {0}")]
    Opus(&'static str),
    /// OpenH264 said no (a broken or unsupported stream, or a failed encode).
    #[error("H.264: {0}")]
    H264(String),
    /// The picture cannot be encoded (sides must be even and at least 16).
    #[error("cannot encode a {width}×{height} picture: sides must be even and 16 to 4096")]
    Size {
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
}

fn h264(e: openh264::Error) -> CodecError {
    CodecError::H264(e.to_string())
}

/// Decodes one H.264 stream (Annex B access units) into pictures.
pub struct H264Decoder {
    inner: Decoder,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("H264Decoder")
    }
}

impl H264Decoder {
    /// A decoder for a new stream.
    pub fn new() -> Result<Self, CodecError> {
        let inner = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(h264)?;
        Ok(Self { inner })
    }

    /// Decodes one access unit (Annex B: start codes before each NAL unit); a picture when one
    /// is complete. A broken unit is an error and the decoder goes on with the next one (the
    /// caller asks the sender for a key frame).
    pub fn decode(&mut self, access_unit: &[u8]) -> Result<Option<Picture>, CodecError> {
        let Some(yuv) = self.inner.decode(access_unit).map_err(h264)? else {
            return Ok(None);
        };
        let (width, height) = yuv.dimensions();
        let (sy, su, sv) = yuv.strides();
        let (w, h) = (width & !1, height & !1);
        let plane = |data: &[u8], stride: usize, w: usize, h: usize| {
            let mut out = Vec::with_capacity(w * h);
            for row in data.chunks(stride).take(h) {
                out.extend_from_slice(&row[..w]);
            }
            out
        };
        let picture = Picture::from_planes(
            w as u32,
            h as u32,
            plane(yuv.y(), sy, w, h),
            plane(yuv.u(), su, w / 2, h / 2),
            plane(yuv.v(), sv, w / 2, h / 2),
        )
        .map_err(|e| CodecError::H264(e.to_string()))?;
        Ok(Some(picture))
    }
}

/// Encodes the composed pictures into one H.264 stream (constrained baseline, Annex B).
pub struct H264Encoder {
    inner: Encoder,
    width: u32,
    height: u32,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "H264Encoder({}×{})", self.width, self.height)
    }
}

impl H264Encoder {
    /// An encoder of `width` × `height` pictures at `fps`, aiming at `bitrate` bits per second.
    pub fn new(width: u32, height: u32, fps: u32, bitrate: u32) -> Result<Self, CodecError> {
        if !width.is_multiple_of(2)
            || !height.is_multiple_of(2)
            || !(16..=4096).contains(&width)
            || !(16..=4096).contains(&height)
        {
            return Err(CodecError::Size { width, height });
        }
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .usage_type(UsageType::CameraVideoRealTime)
            .complexity(Complexity::Low)
            .scene_change_detect(false)
            .rate_control_mode(RateControlMode::Bitrate)
            // Every composed frame is kept: the recording is frame-paced.
            .skip_frames(false);
        let inner = Encoder::with_api_config(OpenH264API::from_source(), config).map_err(h264)?;
        Ok(Self {
            inner,
            width,
            height,
        })
    }

    /// Encodes one picture (of the encoder's size); a key frame when `key` (or when the encoder
    /// decides). Returns the access unit in Annex B form.
    pub fn encode(&mut self, picture: &Picture, key: bool) -> Result<Vec<u8>, CodecError> {
        if picture.width() != self.width || picture.height() != self.height {
            return Err(CodecError::Size {
                width: picture.width(),
                height: picture.height(),
            });
        }
        if key {
            self.inner.force_intra_frame();
        }
        let stream = self.inner.encode(&Source(picture)).map_err(h264)?;
        Ok(stream.to_vec())
    }
}

/// The most samples one Opus packet can hold (120 ms at 48 kHz).
const MAX_OPUS_SAMPLES: usize = 5760;

/// Decodes one Opus stream (any channel count, as WebRTC sends it) to 48 kHz mono PCM.
pub struct OpusDecoder {
    inner: opus_rs::OpusDecoder,
    pcm: Vec<f32>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusDecoder")
    }
}

impl OpusDecoder {
    /// A decoder for a new stream.
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self {
            inner: opus_rs::OpusDecoder::new(48_000, 1).map_err(CodecError::Opus)?,
            pcm: vec![0.0; MAX_OPUS_SAMPLES],
        })
    }

    /// Decodes one packet; its samples (full scale 1.0). A broken packet is an error.
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[f32], CodecError> {
        let n = self
            .inner
            .decode(packet, MAX_OPUS_SAMPLES, &mut self.pcm)
            .map_err(CodecError::Opus)?;
        Ok(&self.pcm[..n.min(self.pcm.len())])
    }
}

/// Encodes the mix: 48 kHz mono, 20 ms packets, CELT ("audio" application; no in-band FEC,
/// which the recording does not need).
pub struct OpusEncoder {
    inner: opus_rs::OpusEncoder,
    packet: Vec<u8>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusEncoder")
    }
}

/// Samples in one encoded packet (20 ms).
pub const OPUS_FRAME: usize = 960;

/// Samples the encoder's output is late by (its look-ahead): the file's Opus pre-skip.
pub const OPUS_PRE_SKIP: u16 = 312;

impl OpusEncoder {
    /// An encoder at `bitrate` bits per second.
    pub fn new(bitrate: u32) -> Result<Self, CodecError> {
        let mut inner = opus_rs::OpusEncoder::new(48_000, 1, opus_rs::Application::Audio)
            .map_err(CodecError::Opus)?;
        inner.bitrate_bps = i32::try_from(bitrate).unwrap_or(i32::MAX);
        inner.use_inband_fec = false;
        Ok(Self {
            inner,
            packet: vec![0; 1276],
        })
    }

    /// Encodes [`OPUS_FRAME`] samples into one packet.
    pub fn encode(&mut self, pcm: &[f32]) -> Result<Vec<u8>, CodecError> {
        let n = self
            .inner
            .encode(pcm, OPUS_FRAME, &mut self.packet)
            .map_err(CodecError::Opus)?;
        Ok(self.packet[..n].to_vec())
    }
}

/// A [`Picture`] as OpenH264 reads it.
struct Source<'a>(&'a Picture);

impl YUVSource for Source<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width() as usize, self.0.height() as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.0.width() as usize;
        (w, w / 2, w / 2)
    }

    fn y(&self) -> &[u8] {
        &self.0.y
    }

    fn u(&self) -> &[u8] {
        &self.0.u
    }

    fn v(&self) -> &[u8] {
        &self.0.v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Rect;
    use crate::picture::Color;

    fn close(a: Color, b: Color) -> bool {
        let d = |x: u8, y: u8| (i32::from(x) - i32::from(y)).abs();
        d(a.y, b.y) <= 6 && d(a.u, b.u) <= 6 && d(a.v, b.v) <= 6
    }

    #[test]
    fn a_picture_survives_an_encode_and_decode() {
        let (red, blue) = (Color::rgb(220, 30, 30), Color::rgb(30, 30, 220));
        let mut picture = Picture::filled(320, 240, red);
        picture.fill(
            Rect {
                x: 160,
                y: 0,
                width: 160,
                height: 240,
            },
            blue,
        );
        let mut encoder = H264Encoder::new(320, 240, 15, 500_000).expect("an encoder");
        let mut decoder = H264Decoder::new().expect("a decoder");
        let mut decoded = None;
        for n in 0..5 {
            let unit = encoder.encode(&picture, n == 0).expect("encodes");
            assert!(
                unit.starts_with(&[0, 0, 0, 1]) || unit.is_empty(),
                "Annex B"
            );
            if let Some(p) = decoder.decode(&unit).expect("decodes") {
                decoded = Some(p);
            }
        }
        let decoded = decoded.expect("a picture came out");
        assert_eq!((decoded.width(), decoded.height()), (320, 240));
        assert!(close(decoded.at(40, 120), red), "{:?}", decoded.at(40, 120));
        assert!(
            close(decoded.at(280, 120), blue),
            "{:?}",
            decoded.at(280, 120)
        );
    }

    #[test]
    fn a_tone_survives_an_opus_encode_and_decode() {
        let tone: Vec<f32> = (0..48_000)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin())
            .collect();
        let mut encoder = OpusEncoder::new(64_000).expect("an encoder");
        let mut decoder = OpusDecoder::new().expect("a decoder");
        let mut out = Vec::new();
        for frame in tone.chunks(OPUS_FRAME) {
            let packet = encoder.encode(frame).expect("encodes");
            assert!(
                packet.len() > 10 && packet.len() < 400,
                "{} bytes",
                packet.len()
            );
            out.extend_from_slice(decoder.decode(&packet).expect("decodes"));
        }
        assert_eq!(out.len(), 48_000);
        let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        let (input, output) = (rms(&tone[4800..]), rms(&out[4800..]));
        assert!(
            (output / input - 1.0).abs() < 0.2,
            "{input} in, {output} out"
        );
    }

    #[test]
    fn garbage_is_an_error_or_nothing_never_a_panic() {
        let mut decoder = H264Decoder::new().expect("a decoder");
        for unit in [
            &[][..],
            &[0, 0, 0, 1, 0x65, 0xff, 0x00][..],
            &[0xff; 64][..],
        ] {
            let _ = decoder.decode(unit);
        }
        assert!(H264Encoder::new(321, 240, 15, 500_000).is_err());
        let mut opus = OpusDecoder::new().expect("a decoder");
        for packet in [
            &[0xff; 3][..],
            &[0x00][..],
            &[0x7c; 400][..],
            &[0xfc, 0xff, 0x00][..],
        ] {
            let _ = opus.decode(packet);
        }
    }
}
