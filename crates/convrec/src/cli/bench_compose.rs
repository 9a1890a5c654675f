//! `convrec bench-compose`: what composing a call's video costs, against ffmpeg doing the same
//! composition on the same inputs in the same run (docs/benchmarks.md). The call: three cameras
//! (the embedded 320×240 fixture, 30 fps) and a shared screen (the embedded 1280×720 fixture,
//! 30 fps), composed into one picture at the chosen size and rate and encoded with H.264.
//!
//! convrec: decode the four streams (OpenH264), lay out and scale, encode (OpenH264), write
//! fMP4, in this process. Baseline: `ffmpeg -benchmark` decoding the same four streams from
//! files, scaling and overlaying them at the same rectangles (`scale` + `overlay`), encoding
//! with `libx264 -preset ultrafast` at the same bitrate. CPU time is user + system; memory is
//! the peak resident set. Video only: the audio mix joins the pipeline with its codec.

use std::time::Duration;

use anyhow::{Context, bail};
use convrec_compose::compositor::SourceKind;
use convrec_compose::layout::{Canvas, Content, Scene, arrange};
use convrec_compose::recording::{ComposedVideo, VideoConfig};

use super::fixtures::{Video, video};
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
    let ours = compose_here(canvas, &args, &cameras, &screen)?;
    let theirs = compose_with_ffmpeg(canvas, &args, &cameras, &screen)?;
    let seconds = f64::from(args.seconds);
    println!(
        "composition of 3 cameras (320x240) + a screen (1280x720), 30 fps in, {}x{} at {} fps out, {} s, video only",
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
) -> anyhow::Result<(f64, u64)> {
    let pid = std::process::id();
    let before = usage(pid).context("cannot read this process's CPU time from /proc")?;
    let mut video = ComposedVideo::new(VideoConfig {
        canvas,
        fps: args.fps,
        bitrate: args.bitrate,
        key_interval: Duration::from_secs(2),
        creation_unix_secs: 0,
    })?;
    for id in 1..=3 {
        video.add_source(id, SourceKind::Camera, &format!("Camera {id}"))?;
    }
    video.add_source(9, SourceKind::Screen, "Screen")?;
    let mut bytes = 0usize;
    for (n, (camera, shared)) in cameras.iter().zip(screen).enumerate() {
        let at = n as u64 * 1_000_000 / INPUT_FPS;
        for id in 1..=3 {
            video.handle_video(id, at, camera);
        }
        video.handle_video(9, at, shared);
        video.advance(at)?;
        while let Some(block) = video.poll_output() {
            bytes += block.bytes().len();
        }
    }
    video.finish()?;
    while let Some(block) = video.poll_output() {
        bytes += block.bytes().len();
    }
    let after = usage(pid).context("cannot read this process's CPU time from /proc")?;
    tracing::info!(bytes, broken = video.broken_units(), "composed");
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
    let mut command = std::process::Command::new("ffmpeg");
    command.args(["-hide_banner", "-benchmark", "-y"]);
    for file in [&camera_file, &camera_file, &camera_file, &screen_file] {
        command.args(["-r", &rate, "-i"]).arg(file);
    }
    let out = command
        .args(["-filter_complex", &filter, "-map", &format!("[{last}]")])
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
