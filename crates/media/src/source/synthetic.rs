//! A publisher's media as a receiver sees it: fixture access units and Opus packets, looped
//! with continuous RTP time, in capture order, with optional RTCP sender reports.
//!
//! Deterministic and clock-free: [`SyntheticSource::next_event`] returns events with their
//! capture time as an offset from the start; the caller decides when they "arrive".

use std::time::Duration;

use super::annexb::AccessUnit;
use crate::rtp_time::{nanos_to_ntp, ticks_to_nanos};
use crate::timeline::{MediaFrame, MediaKind, SenderReport};

/// What the source produces next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// A media frame of `kind`.
    Frame(MediaKind, MediaFrame),
    /// A sender report for `kind`.
    SenderReport(MediaKind, SenderReport),
}

/// Settings of a [`SyntheticSource`].
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Video frame rate.
    pub fps: u32,
    /// RTP SSRC and first timestamp of video.
    pub video_ssrc: u32,
    /// First video RTP timestamp (pick one near 2³² to exercise wrap-around).
    pub video_rtp_start: u32,
    /// RTP SSRC of audio.
    pub audio_ssrc: u32,
    /// First audio RTP timestamp.
    pub audio_rtp_start: u32,
    /// Send a sender report per track this often (`None`: never).
    pub sender_report_interval: Option<Duration>,
    /// Sender clock at capture time 0, NTP format (nanoseconds since 1900).
    pub ntp_start_nanos: i128,
    /// Sender clock rate error in parts per million (positive: the sender's clock runs fast).
    pub clock_drift_ppm: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            fps: 30,
            video_ssrc: 0x1111,
            video_rtp_start: 0,
            audio_ssrc: 0x2222,
            audio_rtp_start: 0,
            sender_report_interval: Some(Duration::from_secs(1)),
            // 2026-01-01 as NTP time, a plausible sender clock.
            ntp_start_nanos: 3_976_214_400 * 1_000_000_000,
            clock_drift_ppm: 0.0,
        }
    }
}

/// Fixture media, looped. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    config: SyntheticConfig,
    video: Vec<AccessUnit>,
    audio: Vec<Vec<u8>>,
    video_index: u64,
    /// Which access unit of the loop comes next (moves ahead on a key-frame request).
    video_position: usize,
    keyframe_requested: bool,
    /// Video frames of content skipped for key-frame requests: the audio skips as much content
    /// (to the nearest packet), so sound and picture stay in step as with a real sender.
    skipped_frames: u64,
    audio_index: u64,
    /// Audio position in 48 kHz ticks (packets may have different durations).
    audio_ticks: u64,
    next_report: [Duration; 2],
}

impl SyntheticSource {
    /// A source playing `video` access units (may be empty for audio-only) and `audio` Opus
    /// packets (may be empty for video-only).
    pub fn new(config: SyntheticConfig, video: Vec<AccessUnit>, audio: Vec<Vec<u8>>) -> Self {
        Self {
            config,
            video,
            audio,
            video_index: 0,
            video_position: 0,
            keyframe_requested: false,
            skipped_frames: 0,
            audio_index: 0,
            audio_ticks: 0,
            next_report: [Duration::ZERO; 2],
        }
    }

    /// Capture time of the next video frame (sender's view, from the start).
    fn next_video_time(&self) -> Option<Duration> {
        (!self.video.is_empty()).then(|| {
            Duration::from_nanos(self.video_index * 1_000_000_000 / u64::from(self.config.fps))
        })
    }

    fn next_audio_time(&self) -> Option<Duration> {
        (!self.audio.is_empty())
            .then(|| Duration::from_nanos(self.audio_ticks * 1_000_000_000 / 48_000))
    }

    /// RTP ticks the sender's clock counts for `media_time` of true time.
    fn sender_ticks(&self, media_time: Duration, rate: u32) -> u64 {
        let secs = media_time.as_secs_f64() * (1.0 + self.config.clock_drift_ppm * 1e-6);
        (secs * f64::from(rate)).round() as u64
    }

    /// The next event and its capture time (true time since the start). Endless.
    pub fn next_event(&mut self) -> (Duration, SourceEvent) {
        let video_at = self.next_video_time();
        let audio_at = self.next_audio_time();
        if let Some(interval) = self.config.sender_report_interval {
            for (slot, kind, at) in [
                (0, MediaKind::Video, video_at),
                (1, MediaKind::Audio, audio_at),
            ] {
                let due = self.next_report[slot];
                let Some(at) = at else { continue };
                if due <= at
                    && due
                        <= video_at
                            .unwrap_or(Duration::MAX)
                            .min(audio_at.unwrap_or(Duration::MAX))
                {
                    self.next_report[slot] = due + interval;
                    return (due, SourceEvent::SenderReport(kind, self.report(kind, due)));
                }
            }
        }
        let take_video = match (video_at, audio_at) {
            (Some(v), Some(a)) => v <= a,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if take_video {
            let at = video_at.expect("bug: checked above");
            if std::mem::take(&mut self.keyframe_requested) {
                // Skip ahead to the next key frame of the loop, as an encoder asked for one
                // would send one now. Time goes on as before.
                let len = self.video.len();
                if let Some(skip) =
                    (0..len).find(|i| self.video[(self.video_position + i) % len].keyframe)
                {
                    self.video_position = (self.video_position + skip) % len;
                    self.skipped_frames += skip as u64;
                }
            }
            let unit = &self.video[self.video_position];
            self.video_position = (self.video_position + 1) % self.video.len();
            let rtp = self
                .config
                .video_rtp_start
                .wrapping_add(self.sender_ticks(at, 90_000) as u32);
            self.video_index += 1;
            let frame = MediaFrame {
                ssrc: self.config.video_ssrc,
                rtp_time: rtp,
                contiguous: true,
                data: unit.data.clone(),
            };
            (at, SourceEvent::Frame(MediaKind::Video, frame))
        } else {
            let at = audio_at.unwrap_or_default();
            let position =
                (self.audio_index + self.audio_packets_skipped()) % self.audio.len() as u64;
            let packet = self.audio[position as usize].clone();
            let rtp = self
                .config
                .audio_rtp_start
                .wrapping_add(self.sender_ticks(at, 48_000) as u32);
            self.audio_index += 1;
            self.audio_ticks += u64::from(crate::opus::packet_samples(&packet).unwrap_or(960));
            let frame = MediaFrame {
                ssrc: self.config.audio_ssrc,
                rtp_time: rtp,
                contiguous: true,
                data: packet,
            };
            (at, SourceEvent::Frame(MediaKind::Audio, frame))
        }
    }

    /// Audio packets of content to skip to match the video's skipped frames (the nearest
    /// whole number; the fixtures' packets are all as long as the first).
    fn audio_packets_skipped(&self) -> u64 {
        let packet = self
            .audio
            .first()
            .and_then(|p| crate::opus::packet_samples(p).ok())
            .map_or(960, u64::from)
            .max(1);
        let ticks = self.skipped_frames * 48_000 / u64::from(self.config.fps.max(1));
        (ticks + packet / 2) / packet
    }

    /// The receiver asked for a key frame (PLI/FIR): the next video frame will be one.
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// A sender report for `kind` at true time `at`.
    fn report(&self, kind: MediaKind, at: Duration) -> SenderReport {
        let (ssrc, start, rate) = match kind {
            MediaKind::Video => (self.config.video_ssrc, self.config.video_rtp_start, 90_000),
            MediaKind::Audio => (self.config.audio_ssrc, self.config.audio_rtp_start, 48_000),
        };
        let ticks = self.sender_ticks(at, rate);
        // The sender's wall clock drifts like its media clocks (they share an oscillator).
        let sender_nanos = ticks_to_nanos(ticks as i64, rate);
        SenderReport {
            ssrc,
            rtp_time: start.wrapping_add(ticks as u32),
            ntp_time: nanos_to_ntp(self.config.ntp_start_nanos + sender_nanos),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key-frame request skips video content; the audio skips as much, so a clap stays with
    /// its flash.
    #[test]
    fn a_key_frame_request_skips_as_much_sound_as_picture() {
        // 120 frames (4 s at 30 fps), key frames at 0 and 60; 200 numbered 20 ms packets.
        let video: Vec<AccessUnit> = (0..120)
            .map(|n| AccessUnit {
                data: vec![0, 0, 0, 1, if n % 60 == 0 { 0x65 } else { 0x41 }, n as u8],
                keyframe: n % 60 == 0,
            })
            .collect();
        // TOC 0x08: SILK narrowband, 20 ms, one frame.
        let audio: Vec<Vec<u8>> = (0..200u8).map(|n| vec![0x08, n]).collect();
        let config = SyntheticConfig {
            sender_report_interval: None,
            ..SyntheticConfig::default()
        };
        let mut source = SyntheticSource::new(config, video, audio);
        let content = |source: &mut SyntheticSource, kind: MediaKind| loop {
            if let (at, SourceEvent::Frame(k, frame)) = source.next_event()
                && k == kind
            {
                return (at, frame.data[frame.data.len() - 1]);
            }
        };
        // Three frames in (frame 3 next), a request: the next frame is the key frame 60.
        for _ in 0..3 {
            content(&mut source, MediaKind::Video);
        }
        source.request_keyframe();
        let (video_at, frame) = content(&mut source, MediaKind::Video);
        assert_eq!(frame, 60);
        assert_eq!(video_at, Duration::from_millis(100));
        // 57 frames skipped = 1.9 s = 95 packets: the packet played at 100 ms is the one that
        // was at 2.0 s, where frame 60 is.
        let (audio_at, packet) = loop {
            let (at, packet) = content(&mut source, MediaKind::Audio);
            if at >= video_at {
                break (at, packet);
            }
        };
        assert_eq!(audio_at, Duration::from_millis(100));
        assert_eq!(packet, 100);
    }
}
