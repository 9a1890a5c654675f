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

pub mod fmp4;
#[doc(hidden)]
pub mod fuzzing;
pub mod h264;
pub mod inspect;
pub mod opus;
pub mod recording;
pub mod rtp_time;
pub mod source;
pub mod timeline;
