//! `convrec bench-compose`: what composing a call's video costs, against ffmpeg doing the same
//! composition on the same inputs in the same run (docs/benchmarks.md). The call: three cameras
//! (the embedded 320×240 fixture, 30 fps) and a shared screen (the embedded 1280×720 fixture,
//! 30 fps), composed into one picture at the chosen size and rate and encoded with H.264.
//!
//! Each camera's participant also speaks (the embedded Opus tone).
//!
//! convrec: decode the four video streams (OpenH264) and three sound streams (opus-rs), lay out
//! and scale, mix, encode once each (OpenH264, opus-rs), write fMP4, in this process. Baseline:
//! `ffmpeg -benchmark` on the same inputs from files: the same rectangles (`scale` +
//! `overlay`), `amix`, `libx264 -preset ultrafast` at the same bitrate and `libopus`, on one
//! thread. CPU time is user + system; memory is the peak resident set.

use std::time::Duration;

use anyhow::{Context, bail};
use convrec_compose::compositor::SourceKind;
use convrec_compose::layout::{Canvas, Content, Scene, arrange};
use convrec_compose::recording::{ComposedRecording, RecordingConfig, VideoConfig};

use super::fixtures::{Video, audio, video};
use super::usage::usage;

/// `bench-compose` options.
#[derive(Debug, clap::Args)]
pub struct BenchComposeArgs {
    /// The composed picture: 720p (1280×720) or 1080p (1920×1080).
    #[arg(long, default_value = "720p")]
    size: String,
    /// Composed frames per second.
    #[arg(long, default_value_t = 15)]
    fps: u32,
    /// Seconds of call to compose.
    #[arg(long, default_value_t = 20)]
    seconds: u32,
    /// Composed video bitrate, bits per second.
    #[arg(long, default_value_t = 800_000)]
    bitrate: u32,
}

/// The input rate of the fixtures.
const INPUT_FPS: u64 = 30;

/// Runs both and prints the comparison.
pub fn run(args: BenchComposeArgs) -> anyhow::Result<std::process::ExitCode> {
    let canvas = match args.size.as_str() {
        "720p" => Canvas {
            width: 1280,
            height: 720,
        },
        "1080p" => Canvas {
            width: 1920,
            height: 1080,
        },
        other => bail!("--size: '{other}' is not 720p or 1080p"),
    };
    if !(1..=60).contains(&args.fps) || args.seconds == 0 {
        bail!("--fps must be 1 to 60 and --seconds at least 1");
    }
    let cameras = looped(video(Video::Small), args.seconds);
    let screen = looped(video(Video::Hd), args.seconds);
    let voice: Vec<Vec<u8>> = audio(Video::Small)?
        .into_iter()
        .cycle()
        .take(args.seconds as usize * 50)
        .collect();
    let ours = compose_here(canvas, &args, &cameras, &screen, &voice)?;
    let theirs = compose_with_ffmpeg(canvas, &args, &cameras, &screen)?;
    let seconds = f64::from(args.seconds);
    println!(
        "composition of 3 cameras (320x240, each with a voice) + a screen (1280x720), 30 fps in, {}x{} at {} fps out + one mixed Opus track, {} s",
        canvas.width, canvas.height, args.fps, args.seconds
    );
    for (name, (cpu, peak)) in [("convrec", ours), ("ffmpeg (libx264 ultrafast)", theirs)] {
        println!(
            "{name:>28}: {:.3} s CPU per second recorded ({:.1} % of one core; {:.1}x faster than real time), peak {:.0} MiB",
            cpu / seconds,
            100.0 * cpu / seconds,
            seconds / cpu.max(1e-9),
            peak as f64 / (1024.0 * 1024.0)
        );
    }
    println!("convrec / ffmpeg CPU: {:.2}", ours.0 / theirs.0.max(1e-9));
    Ok(std::process::ExitCode::SUCCESS)
}

/// The fixture's access units repeated to fill `seconds` at [`INPUT_FPS`].
fn looped(units: Vec<convrec_media::source::annexb::AccessUnit>, seconds: u32) -> Vec<Vec<u8>> {
    let count = u64::from(seconds) * INPUT_FPS;
    units
        .iter()
        .cycle()
        .take(count as usize)
        .map(|u| u.data.clone())
        .collect()
}

/// (CPU seconds, peak RSS bytes) of composing in this process.
fn compose_here(
    canvas: Canvas,
    args: &BenchComposeArgs,
    cameras: &[Vec<u8>],
    screen: &[Vec<u8>],
    voice: &[Vec<u8>],
) -> anyhow::Result<(f64, u64)> {
    let pid = std::process::id();
    let before = usage(pid).context("cannot read this process's CPU time from /proc")?;
    let mut video = ComposedRecording::new(RecordingConfig {
        video: Some(VideoConfig {
            canvas,
            fps: args.fps,
            bitrate: args.bitrate,
            key_interval: Duration::from_secs(2),
        }),
        audio_bitrate: 48_000,
        creation_unix_secs: 0,
    })?;
    for id in 1..=3 {
        video.add_source(id, SourceKind::Camera, &format!("Camera {id}"), true, true)?;
    }
    video.add_source(9, SourceKind::Screen, "Screen", false, true)?;
    let mut bytes = 0usize;
    for (n, (camera, shared)) in cameras.iter().zip(screen).enumerate() {
        let at = n as u64 * 1_000_000 / INPUT_FPS;
        for id in 1..=3 {
            video.handle_video(id, at, camera);
        }
        video.handle_video(9, at, shared);
        // 20 ms packets: one every 2 video frames at 30 fps is 15 ms short; place them by time.
        let (from, to) = (
            at * 50 / 1_000_000,
            (at + 1_000_000 / INPUT_FPS) * 50 / 1_000_000,
        );
        for p in from..to.min(voice.len() as u64) {
            for id in 1..=3 {
                video.handle_audio(id, p * 20_000, &voice[p as usize]);
            }
        }
        video.advance(at);
        if let Some(e) = video.poll_error() {
            return Err(e.into());
        }
        while let Some(block) = video.poll_output() {
            bytes += block.bytes().len();
        }
    }
    video.finish()?;
    while let Some(block) = video.poll_output() {
        bytes += block.bytes().len();
    }
    let after = usage(pid).context("cannot read this process's CPU time from /proc")?;
    tracing::info!(bytes, broken = video.broken_packets(), "composed");
    Ok((after.cpu_seconds - before.cpu_seconds, after.peak_rss_bytes))
}

/// (CPU seconds, peak RSS bytes) of ffmpeg composing the same inputs at the same rectangles.
fn compose_with_ffmpeg(
    canvas: Canvas,
    args: &BenchComposeArgs,
    cameras: &[Vec<u8>],
    screen: &[Vec<u8>],
) -> anyhow::Result<(f64, u64)> {
    let dir = tempfile_dir()?;
    let camera_file = dir.join("camera.h264");
    let screen_file = dir.join("screen.h264");
    std::fs::write(&camera_file, cameras.concat())?;
    std::fs::write(&screen_file, screen.concat())?;
    let tiles = arrange(
        canvas,
        &Scene {
            cameras: 3,
            screen: true,
            speaker: None,
        },
    );
    // The same rectangles convrec draws into (letterboxed like convrec's fit).
    let mut filter = format!(
        "color=c=0x181818:s={}x{}:r={}[bg0];",
        canvas.width, canvas.height, args.fps
    );
    let mut last = "bg0".to_owned();
    for (n, tile) in tiles.iter().enumerate() {
        let (input, (w, h)) = match tile.content {
            Content::Screen => (3, (1280, 720)),
            Content::Camera(c) => (c, (320, 240)),
        };
        let fit = tile.rect.fit(w, h);
        filter += &format!(
            "[{input}:v]scale={}:{}:flags=bilinear[s{n}];[{last}][s{n}]overlay={}:{}:shortest=1[bg{}];",
            fit.width,
            fit.height,
            fit.x,
            fit.y,
            n + 1
        );
        last = format!("bg{}", n + 1);
    }
    filter.pop();
    let output = dir.join("ffmpeg.mp4");
    let rate = INPUT_FPS.to_string();
    let voice_file = dir.join("voice.opus");
    std::fs::write(&voice_file, super::fixtures::AUDIO_FILE)?;
    let mut command = std::process::Command::new("ffmpeg");
    command.args(["-hide_banner", "-benchmark", "-y"]);
    for file in [&camera_file, &camera_file, &camera_file, &screen_file] {
        command.args(["-r", &rate, "-i"]).arg(file);
    }
    let seconds = args.seconds.to_string();
    for _ in 0..3 {
        command
            .args(["-stream_loop", "-1", "-t", &seconds, "-i"])
            .arg(&voice_file);
    }
    filter += ";[4:a][5:a][6:a]amix=inputs=3[mix]";
    let out = command
        .args([
            "-filter_complex",
            &filter,
            "-map",
            &format!("[{last}]"),
            "-map",
            "[mix]",
        ])
        .args(["-c:a", "libopus", "-b:a", "48k"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            &args.bitrate.to_string(),
        ])
        .args(["-threads", "1", "-filter_threads", "1"])
        .args(["-f", "mp4"])
        .arg(&output)
        .output()
        .context("cannot run ffmpeg (the baseline); install it with apt-get")?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("ffmpeg failed:\n{log}");
    }
    let field = |name: &str| -> Option<f64> {
        log.lines()
            .filter(|l| l.starts_with("bench:"))
            .flat_map(|l| l.split_whitespace())
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.trim_end_matches(['s', 'k', 'B', 'K', 'i']).parse().ok())
    };
    let cpu = field("utime=").unwrap_or(0.0) + field("stime=").unwrap_or(0.0);
    let peak_kib = field("maxrss=").unwrap_or(0.0);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((cpu, (peak_kib * 1024.0) as u64))
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("convrec-bench-compose-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
