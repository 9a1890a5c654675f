//! Composed recordings (SPEC §6, step 6): one picture and one sound, the way a person in the
//! conversation saw and heard it. Everything here is free of I/O and of codecs — it works on
//! decoded pictures and PCM with times passed in — so it is tested deterministically:
//!
//! - [`layout`]: where each participant's camera and the shared screen go on the canvas, with
//!   the active speaker marked.
//! - [`picture`]: planar YUV 4:2:0 pictures, scaled into their tiles, with placeholders.
//! - [`mixer`]: everyone's sound summed into one track with clipping protection, and each
//!   source's level (who is speaking).
//!
//! The codecs (H.264 decode/encode, Opus decode/encode) wrap these in the recorder.

pub mod layout;
pub mod mixer;
pub mod picture;
