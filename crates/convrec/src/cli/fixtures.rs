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
/// Constrained-baseline 320x240 H.264 at 30 fps, 4 s: dark, white at 1.000 s for two frames.
const FLASH: &[u8] = include_bytes!("../../../../fixtures/flash-320x240-30fps.h264");
/// Opus, 20 ms packets, 4 s: silence with a 10 ms click at 1.000 s (the flash's clap).
const CLAP: &[u8] = include_bytes!("../../../../fixtures/clap.opus");

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
    /// 320x240, dark with a white flash at 1 s of every 4; the sound is a click at the same
    /// moments instead of the tone (a clap-and-flash for checking A/V sync).
    #[value(name = "flash")]
    Flash,
    /// 1280x720 for 2 s, then 320x240 for 4 s, and again (a shared window being resized):
    /// the resolution changes mid-stream, each time at a key frame with new parameter sets.
    #[value(name = "resizing")]
    Resizing,
}

/// The embedded video as access units.
pub fn video(which: Video) -> Vec<AccessUnit> {
    match which {
        Video::Small => access_units(VIDEO),
        Video::Hd => access_units(VIDEO_720P),
        Video::Flash => access_units(FLASH),
        Video::Resizing => [access_units(VIDEO_720P), access_units(VIDEO)].concat(),
    }
}

/// The embedded audio that goes with `which` as Opus packets.
pub fn audio(which: Video) -> anyhow::Result<Vec<Vec<u8>>> {
    let file = match which {
        Video::Small | Video::Hd | Video::Resizing => AUDIO,
        Video::Flash => CLAP,
    };
    Ok(read_ogg_opus(file)?.packets)
}
