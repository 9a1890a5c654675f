//! Media fixtures embedded in the binary, so the demo runs with nothing else installed.

use convrec_media::source::annexb::{AccessUnit, access_units};
use convrec_media::source::ogg::read_ogg_opus;

/// Constrained-baseline 320x240 H.264 at 30 fps, 4 s (see `fixtures/README.md`).
const VIDEO: &[u8] = include_bytes!("../../../../fixtures/cbp-320x240-30fps.h264");
/// A 440 Hz Opus tone, 20 ms packets, 4 s.
const AUDIO: &[u8] = include_bytes!("../../../../fixtures/tone-440hz.opus");

/// The embedded video as access units.
pub fn video() -> Vec<AccessUnit> {
    access_units(VIDEO)
}

/// The embedded audio as Opus packets.
pub fn audio() -> anyhow::Result<Vec<Vec<u8>>> {
    Ok(read_ogg_opus(AUDIO)?.packets)
}
