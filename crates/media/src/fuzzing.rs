//! Harnesses shared by the `cargo fuzz` targets (`fuzz/`) and the corpus replay test, so a
//! crash found once stays fixed.

use std::time::{Duration, Instant};

use crate::inspect::inspect;
use crate::recording::{PublicationRecorder, RecorderConfig, RecorderOutput};
use crate::timeline::{MediaFrame, MediaKind, SenderReport};

/// The SPS (constrained baseline, 320x240) and PPS of `fixtures/cbp-320x240-30fps.h264`, so fuzzed key frames can be accepted.
const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80,
];
const PPS: &[u8] = &[0x68, 0xcb, 0x8c, 0xb2];

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        taken.to_vec()
    }
}

/// Drives a [`PublicationRecorder`] with operations decoded from `data` (frames valid and not,
/// sender reports, time jumps, reordering) and checks the file it writes reads back cleanly.
/// Panics only if convrec is wrong.
pub fn frame_input(data: &[u8]) {
    let mut input = Input(data);
    let start = Instant::now();
    let mut now = start;
    let mut recorder = PublicationRecorder::new(RecorderConfig::default(), now);
    let mut file = Vec::new();
    let (mut video_rtp, mut audio_rtp) = (0u32, 0u32);
    while let Some(op) = input.byte() {
        let Some(arg) = input.u16() else { break };
        let ssrc = u32::from(op >> 6);
        let contiguous = op & 0x20 == 0;
        // A signed step in RTP time: mostly forward, sometimes back (reordering, duplicates).
        let step = i32::from(arg as i16);
        match op & 0x7 {
            0 | 1 => {
                video_rtp = video_rtp.wrapping_add_signed(step * 30);
                let mut payload = vec![0, 0, 0, 1];
                if op & 0x1 == 0 {
                    // A key frame with parameter sets.
                    for nal in [SPS, PPS] {
                        payload.extend_from_slice(nal);
                        payload.extend_from_slice(&[0, 0, 0, 1]);
                    }
                    payload.push(0x65);
                } else {
                    payload.push(0x41);
                }
                let len = usize::from(input.byte().unwrap_or(0));
                payload.extend(input.bytes(len));
                recorder.handle_video(now, frame(ssrc, video_rtp, contiguous, payload));
            }
            2 => {
                video_rtp = video_rtp.wrapping_add_signed(step);
                let len = usize::from(input.byte().unwrap_or(0));
                recorder.handle_video(now, frame(ssrc, video_rtp, contiguous, input.bytes(len)));
            }
            3 => {
                audio_rtp = audio_rtp.wrapping_add_signed(step);
                let len = usize::from(input.byte().unwrap_or(0)) % 64;
                recorder.handle_audio(now, frame(ssrc, audio_rtp, contiguous, input.bytes(len)));
            }
            4 => {
                let kind = if op & 0x8 == 0 {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                let ntp = (u64::from(arg) << 32) | u64::from(input.u16().unwrap_or(0));
                let rtp = if kind == MediaKind::Audio {
                    audio_rtp
                } else {
                    video_rtp
                };
                recorder.handle_sender_report(
                    now,
                    kind,
                    SenderReport {
                        ssrc,
                        rtp_time: rtp,
                        ntp_time: ntp,
                    },
                );
            }
            5 => now += Duration::from_millis(u64::from(arg)),
            6 => recorder.handle_timeout(now),
            _ => {
                audio_rtp = audio_rtp.wrapping_add(960);
                now += Duration::from_millis(20);
                recorder.handle_audio(
                    now,
                    frame(ssrc, audio_rtp, contiguous, vec![0xf8, 0xff, 0xfe]),
                );
            }
        }
        drain(&mut recorder, &mut file);
    }
    recorder.finish(now);
    drain(&mut recorder, &mut file);
    let stats = recorder.stats();
    assert_eq!(
        stats.samples_refused, 0,
        "the writer refused a timeline sample: {stats:?}"
    );
    if let Err(e) = inspect(file.as_slice()) {
        panic!("convrec wrote a file it cannot read back: {e}");
    }
}

fn frame(ssrc: u32, rtp_time: u32, contiguous: bool, data: Vec<u8>) -> MediaFrame {
    MediaFrame {
        ssrc,
        rtp_time,
        contiguous,
        data,
    }
}

fn drain(recorder: &mut PublicationRecorder, file: &mut Vec<u8>) {
    while let Some(output) = recorder.poll_output() {
        if let RecorderOutput::Write(block) = output {
            file.extend_from_slice(block.bytes());
        }
    }
}

/// Feeds arbitrary bytes to [`inspect`]: it must answer, never panic.
pub fn inspect_bytes(data: &[u8]) {
    let _ = inspect(data);
}
