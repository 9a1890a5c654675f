//! convrec's media core, free of I/O: it never touches a socket, a file or a clock.
//!
//! The path of a recording through this crate:
//!
//! 1. [`timeline::PublicationTimeline`] takes the frames of one publication as the WebRTC layer
//!    delivers them (H.264 access units, Opus packets, RTP times, sender reports) with the local
//!    time they arrived, and emits samples with file timestamps plus key-frame requests.
//! 2. [`fmp4::Fmp4Writer`] turns samples into an init segment, time-bounded `moof` + `mdat`
//!    fragments, and a final `mfra` index, each handed out as bytes at once.
//! 3. [`recording::PublicationRecorder`] joins the two for one publication's file.
//! 4. [`inspect`] reads such a file back and reports what a person checking it wants to know.
//!
//! Anything that comes from outside (frames, sender reports, files) is untrusted: it is
//! rejected or dropped with a counted reason, and nothing here panics on it.
//!
//! # Example
//!
//! One second of an audio-only publication, recorded and read back. A real recorder feeds what
//! its WebRTC stack delivers, with the time it arrived, and appends each block to its output.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use convrec_media::inspect::inspect;
//! use convrec_media::recording::{PublicationRecorder, RecorderConfig, RecorderOutput};
//! use convrec_media::timeline::{MediaFrame, TimelineConfig};
//!
//! let start = Instant::now();
//! let config = RecorderConfig {
//!     timeline: TimelineConfig { expect_video: false, ..TimelineConfig::default() },
//!     ..RecorderConfig::default()
//! };
//! let mut recorder = PublicationRecorder::new(config, start);
//! let mut file = Vec::new();
//! for i in 0..50u32 {
//!     // A 20 ms Opus packet every 20 ms, 960 ticks of the 48 kHz RTP clock apart.
//!     let packet = MediaFrame { ssrc: 7, rtp_time: i * 960, contiguous: true, data: vec![0xf8, 0xff, 0xfe] };
//!     recorder.handle_audio(start + Duration::from_millis(u64::from(i) * 20), packet);
//!     while let Some(output) = recorder.poll_output() {
//!         if let RecorderOutput::Write(block) = output {
//!             file.extend_from_slice(block.bytes());
//!         }
//!     }
//! }
//! recorder.finish(start + Duration::from_secs(1));
//! while let Some(RecorderOutput::Write(block)) = recorder.poll_output() {
//!     file.extend_from_slice(block.bytes());
//! }
//!
//! let report = inspect(file.as_slice()).expect("a finished file reads back");
//! assert_eq!(report.tracks[0].codec, "Opus");
//! assert_eq!(report.tracks[0].samples, 50);
//! assert!((report.tracks[0].duration_seconds - 1.0).abs() < 1e-9);
//! assert!(report.index_present);
//! ```

pub mod fmp4;
#[doc(hidden)]
pub mod fuzzing;
pub mod h264;
pub mod inspect;
pub mod layout;
pub mod opus;
pub mod recording;
pub mod rtp_time;
pub mod source;
pub mod timeline;
