//! Reads Opus packets out of an Ogg Opus file (RFC 7845), enough for fixtures: one logical
//! stream, packets reassembled across pages, header packets skipped.

use thiserror::Error;

/// Why an Ogg Opus file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OggError {
    /// A page does not start with `OggS` where one was expected.
    #[error("no Ogg page at byte {offset}")]
    NoPage {
        /// Byte offset.
        offset: usize,
    },
    /// A page runs past the end of the file.
    #[error("Ogg page at byte {offset} is cut short")]
    Truncated {
        /// Byte offset of the page.
        offset: usize,
    },
    /// The first packet is not an `OpusHead`.
    #[error("the stream is not Opus (no OpusHead packet)")]
    NotOpus,
}

/// The Opus stream of an Ogg file: its header facts and audio packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OggOpus {
    /// Channels (1 or 2 for WebRTC).
    pub channels: u8,
    /// Samples at 48 kHz to discard at the start.
    pub pre_skip: u16,
    /// Audio packets in order.
    pub packets: Vec<Vec<u8>>,
}

/// Parses an Ogg Opus file.
pub fn read_ogg_opus(file: &[u8]) -> Result<OggOpus, OggError> {
    let mut packets = Vec::new();
    let mut partial = Vec::new();
    let mut offset = 0;
    while offset < file.len() {
        let header = file
            .get(offset..offset + 27)
            .ok_or(OggError::Truncated { offset })?;
        if &header[..4] != b"OggS" {
            return Err(OggError::NoPage { offset });
        }
        let segments = usize::from(header[26]);
        let table = file
            .get(offset + 27..offset + 27 + segments)
            .ok_or(OggError::Truncated { offset })?;
        let mut body = offset + 27 + segments;
        for &lacing in table {
            let end = body + usize::from(lacing);
            partial.extend_from_slice(file.get(body..end).ok_or(OggError::Truncated { offset })?);
            body = end;
            if lacing < 255 {
                packets.push(std::mem::take(&mut partial));
            }
        }
        offset = body;
    }
    let head = packets.first().ok_or(OggError::NotOpus)?;
    if head.len() < 19 || &head[..8] != b"OpusHead" {
        return Err(OggError::NotOpus);
    }
    let channels = head[9];
    let pre_skip = u16::from_le_bytes([head[10], head[11]]);
    // Packet 0 is OpusHead, packet 1 OpusTags; the rest is audio.
    Ok(OggOpus {
        channels,
        pre_skip,
        packets: packets.into_iter().skip(2).collect(),
    })
}
