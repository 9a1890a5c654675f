//! Composed recordings (SPEC §6, step 6): one picture and one sound, the way a person in the
//! conversation saw and heard it. Nothing here does I/O or reads a clock — pictures and PCM come
//! in with their times on the recording's timeline — so it is tested deterministically:
//!
//! - [`layout`]: where each participant's camera and the shared screen go on the canvas, with
//!   the active speaker marked.
//! - [`picture`]: planar YUV 4:2:0 pictures, scaled into their tiles, with placeholders.
//! - [`compositor`]: frames at a fixed rate from the newest due picture of each source; the
//!   output never waits for an input.
//! - [`mixer`]: everyone's sound summed into one track with clipping protection, and each
//!   source's level (who is speaking).
//! - [`codec`]: H.264 decoding and encoding with OpenH264 (built from source by cargo).
//! - [`recording`]: the composed video of a recording, written as fMP4 by the media core.

pub mod codec;
pub mod compositor;
mod font_data;
pub mod layout;
pub mod mixer;
pub mod picture;
pub mod recording;
