//! Opus packet facts from the table-of-contents byte (RFC 6716 §3.1): how long a packet plays.

use thiserror::Error;

/// Opus always runs its RTP and MP4 clocks at 48 kHz (RFC 7587 §4.1).
pub const OPUS_CLOCK_RATE: u32 = 48_000;

/// The largest duration a packet may have (RFC 6716 §3.2.5: 120 ms).
pub const MAX_PACKET_SAMPLES: u32 = 5_760;

/// Why an Opus packet's duration could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OpusError {
    /// The packet has no bytes (RFC 6716 §3.4 R1).
    #[error("Opus packet is empty")]
    Empty,
    /// A code 3 packet without its frame-count byte (R6).
    #[error("Opus code 3 packet lacks its frame count byte")]
    MissingFrameCount,
    /// A code 3 packet with zero frames (R5).
    #[error("Opus code 3 packet declares zero frames")]
    ZeroFrames,
    /// More than 120 ms of audio in one packet (R5).
    #[error("Opus packet declares {samples} samples, more than the 120 ms (5760) allowed")]
    TooLong {
        /// Declared samples at 48 kHz.
        samples: u32,
    },
}

/// Samples (at 48 kHz) of one frame for each TOC configuration number (RFC 6716 table 2).
fn frame_samples(config: u8) -> u32 {
    match config {
        // SILK-only NB/MB/WB: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid SWB/FB: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    }
}

/// The duration of an Opus packet in 48 kHz samples, from its TOC byte (and the frame count byte
/// of code 3 packets).
pub fn packet_samples(packet: &[u8]) -> Result<u32, OpusError> {
    let toc = *packet.first().ok_or(OpusError::Empty)?;
    let per_frame = frame_samples(toc >> 3);
    let frames = match toc & 0x3 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let count = packet.get(1).ok_or(OpusError::MissingFrameCount)? & 0x3f;
            if count == 0 {
                return Err(OpusError::ZeroFrames);
            }
            u32::from(count)
        }
    };
    let samples = per_frame * frames;
    if samples > MAX_PACKET_SAMPLES {
        return Err(OpusError::TooLong { samples });
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_the_toc() {
        // CELT FB 20 ms, one frame (config 31, code 0): what WebRTC sends.
        assert_eq!(packet_samples(&[31 << 3]), Ok(960));
        // SILK WB 60 ms (config 11).
        assert_eq!(packet_samples(&[11 << 3]), Ok(2880));
        // Two 10 ms hybrid frames (config 12, code 1).
        assert_eq!(packet_samples(&[(12 << 3) | 1]), Ok(960));
        // Code 3 with 6 frames of 20 ms = 120 ms.
        assert_eq!(packet_samples(&[(31 << 3) | 3, 6]), Ok(5760));
        // Code 3 with 3 frames of 60 ms = 180 ms: too long.
        assert_eq!(
            packet_samples(&[(11 << 3) | 3, 3]),
            Err(OpusError::TooLong { samples: 8640 })
        );
        assert_eq!(packet_samples(&[]), Err(OpusError::Empty));
        assert_eq!(packet_samples(&[3]), Err(OpusError::MissingFrameCount));
        assert_eq!(packet_samples(&[3, 0]), Err(OpusError::ZeroFrames));
    }
}
