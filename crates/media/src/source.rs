//! Readers for media files used as input: H.264 Annex B elementary streams and Ogg Opus files.
//! They feed tests, benchmarks and synthetic participants with frames as a WebRTC receiver
//! would see them.

pub mod annexb;
pub mod ogg;
pub mod synthetic;
