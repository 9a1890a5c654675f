//! A composed recording written from known inputs and read back by the real ffprobe and
//! ffmpeg: two participants (solid red with a 440 Hz tone, solid blue with a 1 kHz tone from
//! 1.5 s on) side by side, then a shared screen (white) large on the left with the cameras in a
//! strip, then the screen gone again — each colour in its region and each tone in the mix at
//! its time.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::path::Path;
use std::time::Duration;

use convrec_compose::codec::{H264Encoder, OPUS_FRAME, OpusEncoder};
use convrec_compose::compositor::SourceKind;
use convrec_compose::layout::{Canvas, Scene, arrange};
use convrec_compose::picture::{Color, Picture};
use convrec_compose::recording::{ComposedRecording, RecordingConfig, VideoConfig};
use convrec_testkit::{decoded_sound, ffprobe, flash_to_clap_offsets_ms, stream, tool};

const CANVAS: Canvas = Canvas {
    width: 640,
    height: 360,
};

/// A composed recording of [`CANVAS`] at 15 fps, 600 kbit/s, with a 48 kbit/s mix.
fn composed_at_15_fps() -> ComposedRecording {
    ComposedRecording::new(RecordingConfig {
        video: Some(VideoConfig {
            canvas: CANVAS,
            fps: 15,
            bitrate: 600_000,
            key_interval: Duration::from_secs(1),
        }),
        audio_bitrate: 48_000,
        creation_unix_secs: 0,
    })
    .unwrap()
}

/// Appends every block the recording has ready to `file`.
fn drain(recording: &mut ComposedRecording, file: &mut Vec<u8>) {
    while let Some(block) = recording.poll_output() {
        file.extend_from_slice(block.bytes());
    }
}

/// An H.264 stream of one colour at `fps`, for `seconds`: (time in µs, access unit).
fn solid_stream(
    color: Color,
    width: u32,
    height: u32,
    fps: u32,
    from: u64,
    seconds: u64,
) -> Vec<(u64, Vec<u8>)> {
    let mut encoder = H264Encoder::new(width, height, fps, 300_000).unwrap();
    let picture = Picture::filled(width, height, color);
    (0..seconds * u64::from(fps))
        .map(|n| {
            let at = from + n * 1_000_000 / u64::from(fps);
            (at, encoder.encode(&picture, n == 0).unwrap())
        })
        .collect()
}

/// Opus packets of a tone from `from` µs for `seconds`: (time in µs, packet).
fn tone_stream(frequency: f32, from: u64, seconds: u64) -> Vec<(u64, Vec<u8>)> {
    let mut encoder = OpusEncoder::new(48_000).unwrap();
    let samples: Vec<f32> = (0..seconds as usize * 48_000)
        .map(|i| 0.25 * (2.0 * std::f32::consts::PI * frequency * i as f32 / 48_000.0).sin())
        .collect();
    samples
        .chunks(OPUS_FRAME)
        .enumerate()
        .map(|(n, frame)| (from + n as u64 * 20_000, encoder.encode(frame).unwrap()))
        .collect()
}

/// The amplitude of `frequency` in the file's sound between `from` and `to` seconds.
fn tone_strength(file: &Path, frequency: f32, from: f64, to: f64) -> f32 {
    let samples = decoded_sound(file);
    let window = &samples[(from * 48_000.0) as usize..(to * 48_000.0) as usize];
    let w = 2.0 * std::f32::consts::PI * frequency / 48_000.0;
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for x in window {
        let s = x + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    2.0 * (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2).sqrt() / window.len() as f32
}

/// The RGB colour ffmpeg decodes at (`x`, `y`) of the frame shown at `seconds`.
fn pixel(file: &Path, seconds: f64, x: u32, y: u32) -> [u8; 3] {
    let out = tool("ffmpeg")
        .args(["-v", "error", "-ss", &seconds.to_string(), "-i"])
        .arg(file)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = ((y * CANVAS.width + x) * 3) as usize;
    [out.stdout[at], out.stdout[at + 1], out.stdout[at + 2]]
}

fn near(got: [u8; 3], want: [u8; 3]) -> bool {
    got.iter()
        .zip(want)
        .all(|(g, w)| (i32::from(*g) - i32::from(w)).abs() <= 24)
}

fn centre(scene: &Scene, n: usize) -> (u32, u32) {
    let r = arrange(CANVAS, scene)[n].rect;
    (r.x + r.width / 2, r.y + r.height / 3)
}

/// `cameras` cameras, with or without a shared screen, nobody framed.
fn scene(cameras: usize, screen: bool) -> Scene {
    Scene {
        cameras,
        screen,
        speaker: None,
    }
}

/// At each time, the file shows `scene` with these colours in its tiles, in layout order.
fn assert_tiles(file: &Path, expectations: &[(f64, Scene, Vec<[u8; 3]>)]) {
    for (seconds, scene, expected) in expectations {
        for (n, want) in expected.iter().enumerate() {
            let (x, y) = centre(scene, n);
            let got = pixel(file, *seconds, x, y);
            let what = arrange(CANVAS, scene)[n].content;
            assert!(
                near(got, *want),
                "at {seconds} s, {what:?} at ({x}, {y}) is {got:?}, not {want:?}"
            );
        }
    }
}

#[test]
fn colours_and_tones_land_in_their_places_at_their_times() {
    let mut video = composed_at_15_fps();
    video
        .add_source(1, SourceKind::Camera, "Red", true, true)
        .unwrap();
    video
        .add_source(2, SourceKind::Camera, "Blue", true, true)
        .unwrap();
    let low = tone_stream(440.0, 0, 6);
    let high = tone_stream(1000.0, 1_500_000, 4);
    let red = solid_stream(Color::rgb(230, 20, 20), 320, 240, 15, 0, 6);
    let blue = solid_stream(Color::rgb(20, 20, 230), 640, 480, 15, 0, 6);
    // The screen is shared from 2 s to 4 s.
    let white = solid_stream(Color::rgb(240, 240, 240), 1280, 720, 5, 2_000_000, 2);
    let mut file = Vec::new();
    for tick in 0..=60u64 {
        let now = tick * 100_000;
        if now == 2_000_000 {
            video
                .add_source(9, SourceKind::Screen, "Screen", false, true)
                .unwrap();
        }
        if now == 4_000_000 {
            video.remove_source(9);
        }
        // The blue participant leaves at 5 s: the red one has the picture to itself.
        if now == 5_000_000 {
            video.remove_source(2);
        }
        let due = |at: &u64| *at >= now.saturating_sub(100_000) && *at < now;
        for (id, units) in [(1, &red), (2, &blue), (9, &white)] {
            for (at, unit) in units.iter().filter(|(at, _)| due(at)) {
                video.handle_video(id, *at, unit);
            }
        }
        for (id, packets) in [(1, &low), (2, &high)] {
            for (at, packet) in packets.iter().filter(|(at, _)| due(at)) {
                video.handle_audio(id, *at, packet);
            }
        }
        // Composed a frame behind the media (as the recorder does, so late packets count).
        video.advance(now.saturating_sub(100_000));
        assert!(video.poll_error().is_none());
        drain(&mut video, &mut file);
    }
    video.finish().unwrap();
    drain(&mut video, &mut file);
    assert_eq!(video.broken_packets(), 0);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("composed.mp4");
    std::fs::write(&path, &file).unwrap();
    let probe = ffprobe(&path);
    let v = stream(&probe, "video");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(360))
    );
    let duration: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 6.0).abs() < 0.2, "{duration} s");

    let (two, shared, one) = (scene(2, false), scene(2, true), scene(1, false));
    let (r, b, w) = ([230, 20, 20], [20, 20, 230], [240, 240, 240]);
    // The speaker is framed: at 1 s only the red participant speaks (its 440 Hz tone).
    let framed = |seconds: f64, n: usize| {
        let tile = arrange(CANVAS, &two)[n].rect;
        near(
            pixel(&path, seconds, tile.x + 1, tile.y + tile.height / 2),
            [0, 255, 255],
        )
    };
    assert!(
        framed(1.0, 0) && !framed(1.0, 1),
        "the red speaker's tile is framed at 1 s"
    );
    assert_tiles(
        &path,
        &[
            (1.0, two, vec![r, b]),
            (3.0, shared, vec![w, r, b]),
            (4.5, two, vec![r, b]),
            (5.6, one, vec![r]),
        ],
    );
    // The mix: 440 Hz alone until 1.5 s, then with 1 kHz; a single audio stream.
    assert_eq!(stream(&probe, "audio")["codec_name"], "opus");
    let (alone_low, alone_high) = (
        tone_strength(&path, 440.0, 0.3, 1.3),
        tone_strength(&path, 1000.0, 0.3, 1.3),
    );
    let (both_low, both_high) = (
        tone_strength(&path, 440.0, 2.0, 5.0),
        tone_strength(&path, 1000.0, 2.0, 5.0),
    );
    assert!(
        alone_low > 0.15 && alone_high < 0.02,
        "{alone_low} {alone_high}"
    );
    assert!(
        both_low > 0.15 && both_high > 0.15,
        "{both_low} {both_high}"
    );
}

#[test]
fn a_flash_and_its_clap_stay_within_40_ms_of_each_other() {
    four_flashes_each_within_40_ms_of_its_clap(200_000);
}

/// A recorder on a loaded machine composes seconds behind the media: nothing it received is
/// lost for that. Here nothing is composed until all 5 s (150 frames) have come in.
#[test]
fn composition_that_falls_behind_loses_no_picture() {
    four_flashes_each_within_40_ms_of_its_clap(10_000_000);
}

/// 5 s of one participant, composed `lag` µs behind the media, show four flashes, each within
/// 40 ms of its click (see [`flashes_and_claps`]).
fn four_flashes_each_within_40_ms_of_its_clap(lag: u64) {
    let offsets = flashes_and_claps(5, lag);
    assert_eq!(offsets.len(), 4, "four flashes, each with its clap");
    for offset in offsets {
        assert!(offset.abs() <= 40.0, "click − flash = {offset:.1} ms");
    }
}

/// Flash-to-click offsets (ms) in a recording of one participant, composed `lag` µs behind
/// the media: dark, with a white flash of 2 frames at each whole second from 1 s, and a 10 ms
/// click at the same moments; 30 fps video and 20 ms audio packets, as WebRTC sends. Output at
/// 15 fps, its frames 23 ms out of phase with the input's: a flash is shown in the output frame
/// nearest it (23 ms early), not the next one (44 ms late).
fn flashes_and_claps(seconds: u64, lag: u64) -> Vec<f64> {
    const PHASE: u64 = 23_000;
    let mut recording = ComposedRecording::new(RecordingConfig {
        video: Some(VideoConfig {
            canvas: CANVAS,
            fps: 15,
            bitrate: 800_000,
            key_interval: Duration::from_secs(1),
        }),
        audio_bitrate: 64_000,
        creation_unix_secs: 0,
    })
    .unwrap();
    recording
        .add_source(1, SourceKind::Camera, "", true, true)
        .unwrap();
    let mut encoder = H264Encoder::new(320, 240, 30, 800_000).unwrap();
    let (dark, white) = (
        Picture::filled(320, 240, Color::rgb(10, 10, 10)),
        Picture::filled(320, 240, Color::rgb(250, 250, 250)),
    );
    let mut opus = OpusEncoder::new(64_000).unwrap();
    let mut file = Vec::new();
    let mut audio_at = 0u64;
    for frame in 0..seconds * 30 {
        let at = frame * 1_000_000 / 30;
        let flash = frame >= 30 && frame % 30 < 2;
        let unit = encoder
            .encode(if flash { &white } else { &dark }, frame % 30 == 0)
            .unwrap();
        recording.handle_video(1, at + PHASE, &unit);
        while audio_at < at + 1_000_000 / 30 {
            let pcm: Vec<f32> = (0..OPUS_FRAME as u64)
                .map(|i| {
                    let t = audio_at * 48 / 1000 + i;
                    let in_click = t >= 48_000 && t % 48_000 < 480;
                    if in_click {
                        0.8 * ((t as f32) * 0.6).sin().signum()
                    } else {
                        0.0
                    }
                })
                .collect();
            recording.handle_audio(1, audio_at + PHASE, &opus.encode(&pcm).unwrap());
            audio_at += 20_000;
        }
        recording.advance(at.saturating_sub(lag));
        drain(&mut recording, &mut file);
    }
    recording.advance(seconds * 1_000_000);
    recording.finish().unwrap();
    drain(&mut recording, &mut file);
    assert_eq!(recording.dropped_pictures(), 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.mp4");
    std::fs::write(&path, &file).unwrap();
    flash_to_clap_offsets_ms(&path)
}

/// A participant who leaves while composition runs a second behind keeps their tile and
/// their voice until what they sent has been composed; then the other has the picture alone.
#[test]
fn a_source_that_leaves_while_composition_is_behind_is_composed_to_its_end() {
    let mut video = composed_at_15_fps();
    for (id, name) in [(1, "Red"), (2, "Blue")] {
        video
            .add_source(id, SourceKind::Camera, name, true, true)
            .unwrap();
    }
    let red = solid_stream(Color::rgb(230, 20, 20), 320, 240, 15, 0, 2);
    let low = tone_stream(440.0, 0, 2);
    let blue = solid_stream(Color::rgb(20, 20, 230), 320, 240, 15, 0, 4);
    let mut file = Vec::new();
    for tick in 0..=40u64 {
        let now = tick * 100_000;
        // Red has sent its last at 2 s and leaves; composition is at 1 s.
        if now == 2_000_000 {
            video.remove_source(1);
        }
        let due = |at: &u64| *at >= now.saturating_sub(100_000) && *at < now;
        for (id, units) in [(1, &red), (2, &blue)] {
            for (at, unit) in units.iter().filter(|(at, _)| due(at)) {
                video.handle_video(id, *at, unit);
            }
        }
        for (at, packet) in low.iter().filter(|(at, _)| due(at)) {
            video.handle_audio(1, *at, packet);
        }
        video.advance(now.saturating_sub(1_000_000));
        drain(&mut video, &mut file);
    }
    video.advance(4_000_000);
    video.finish().unwrap();
    drain(&mut video, &mut file);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leaving.mp4");
    std::fs::write(&path, &file).unwrap();
    let (r, b) = ([230, 20, 20], [20, 20, 230]);
    assert_tiles(
        &path,
        &[
            (1.8, scene(2, false), vec![r, b]),
            (3.0, scene(1, false), vec![b]),
        ],
    );
    let voice = tone_strength(&path, 440.0, 1.2, 1.9);
    assert!(voice > 0.15, "the leaver's voice until they left: {voice}");
}

#[test]
fn an_audio_recording_holds_only_the_mix() {
    let mut recording = ComposedRecording::new(RecordingConfig {
        video: None,
        audio_bitrate: 48_000,
        creation_unix_secs: 0,
    })
    .unwrap();
    recording
        .add_source(1, SourceKind::Camera, "A", true, true)
        .unwrap();
    recording
        .add_source(2, SourceKind::Camera, "B", true, true)
        .unwrap();
    let camera = solid_stream(Color::rgb(230, 20, 20), 320, 240, 15, 0, 3);
    for (at, unit) in &camera {
        recording.handle_video(1, *at, unit);
    }
    for ((at, low), (_, high)) in tone_stream(440.0, 0, 3)
        .iter()
        .zip(&tone_stream(1000.0, 0, 3))
    {
        recording.handle_audio(1, *at, low);
        recording.handle_audio(2, *at, high);
    }
    recording.advance(3_000_000);
    recording.finish().unwrap();
    let mut file = Vec::new();
    drain(&mut recording, &mut file);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audio.mp4");
    std::fs::write(&path, &file).unwrap();
    let probe = ffprobe(&path);
    let streams = probe["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "sound only: {probe}");
    assert_eq!(streams[0]["codec_name"], "opus");
    assert!(tone_strength(&path, 440.0, 0.5, 2.5) > 0.15);
    assert!(tone_strength(&path, 1000.0, 0.5, 2.5) > 0.15);
}

#[test]
fn a_camera_that_changes_resolution_is_refitted_within_the_file() {
    // One camera: 4:3 (320×240) for 1 s, then a new encoder at 16:9 (640×360) for 1 s, as a
    // sender switching resolution does (new SPS and PPS with its key frame).
    let mut recording = composed_at_15_fps();
    recording
        .add_source(1, SourceKind::Camera, "", false, true)
        .unwrap();
    let green = Color::rgb(20, 200, 20);
    let units: Vec<(u64, Vec<u8>)> = solid_stream(green, 320, 240, 15, 0, 1)
        .into_iter()
        .chain(solid_stream(green, 640, 360, 15, 1_000_000, 1))
        .collect();
    let mut file = Vec::new();
    for (at, unit) in &units {
        recording.handle_video(1, *at, unit);
        recording.advance(*at);
        drain(&mut recording, &mut file);
    }
    recording.advance(2_000_000);
    recording.finish().unwrap();
    drain(&mut recording, &mut file);
    assert_eq!(recording.broken_packets(), 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switch.mp4");
    std::fs::write(&path, &file).unwrap();
    let tile = arrange(CANVAS, &scene(1, false))[0].rect;
    let (narrow, wide) = (tile.fit(320, 240), tile.fit(640, 360));
    assert!(wide.width > narrow.width, "{narrow:?} {wide:?}");
    // A point inside the 16:9 picture but left of the 4:3 one: background first, green after.
    let (x, y) = ((wide.x + narrow.x) / 2, wide.y + wide.height / 2);
    let g = [20, 200, 20];
    assert!(
        !near(pixel(&path, 0.5, x, y), g),
        "4:3 at first: letterboxed"
    );
    assert!(near(pixel(&path, 0.5, narrow.x + 20, y), g));
    assert!(
        near(pixel(&path, 1.6, x, y), g),
        "16:9 after the switch: wider"
    );
}
