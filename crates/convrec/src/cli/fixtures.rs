//! Media fixtures embedded in the binary, so the demo runs with nothing else installed.

use convrec_media::source::annexb::{AccessUnit, access_units};
use convrec_media::source::ogg::read_ogg_opus;

/// Constrained-baseline 320x240 H.264 at 30 fps, 4 s (see `fixtures/README.md`).
const VIDEO: &[u8] = include_bytes!("../../../../fixtures/cbp-320x240-30fps.h264");
/// Constrained-baseline 1280x720 H.264 at 30 fps, about 2 Mbit/s (load and resource figures).
const VIDEO_720P: &[u8] = include_bytes!("../../../../fixtures/cbp-1280x720-2mbps.h264");
/// A 440 Hz Opus tone, 20 ms packets, 4 s (an Ogg Opus file).
pub const AUDIO_FILE: &[u8] = include_bytes!("../../../../fixtures/tone-440hz.opus");
const AUDIO: &[u8] = AUDIO_FILE;

/// The embedded videos a synthetic participant can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Video {
    /// 320x240, about 0.3 Mbit/s.
    #[default]
    #[value(name = "240p")]
    Small,
    /// 1280x720, about 2 Mbit/s.
    #[value(name = "720p")]
    Hd,
}

/// The embedded video as access units.
pub fn video(which: Video) -> Vec<AccessUnit> {
    access_units(match which {
        Video::Small => VIDEO,
        Video::Hd => VIDEO_720P,
    })
}

/// The embedded audio as Opus packets.
pub fn audio() -> anyhow::Result<Vec<Vec<u8>>> {
    Ok(read_ogg_opus(AUDIO)?.packets)
}
