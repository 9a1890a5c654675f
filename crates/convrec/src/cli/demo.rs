//! `convrec demo`: until the server exists (step 2), it records a synthetic publication made of
//! the embedded fixtures through the media core, on a virtual clock, and inspects the result.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use convrec_media::inspect::inspect;
use convrec_media::recording::{PublicationRecorder, RecorderConfig, RecorderOutput};
use convrec_media::source::synthetic::{SourceEvent, SyntheticConfig, SyntheticSource};
use convrec_media::timeline::MediaKind;

use super::fixtures;

/// Arguments of `convrec demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Seconds of media to record.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Directory for the file (default: a new directory under the system temp dir).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = match args.out {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("convrec-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("publication-1.mp4");
    let mut file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;

    let config = SyntheticConfig {
        // Start near the 32-bit limit so the recording crosses an RTP wrap-around.
        video_rtp_start: u32::MAX - 90_000,
        ..SyntheticConfig::default()
    };
    let mut source = SyntheticSource::new(config, fixtures::video(), fixtures::audio()?);
    let start = Instant::now();
    let mut recorder = PublicationRecorder::new(RecorderConfig::default(), start);
    let end = Duration::from_secs(args.seconds);
    let mut keyframe_requests = 0;
    loop {
        let (captured, event) = source.next_event();
        if captured >= end {
            break;
        }
        // Network delay: video a little later than audio, as on a real path.
        match event {
            SourceEvent::Frame(MediaKind::Video, frame) => {
                recorder.handle_video(start + captured + Duration::from_millis(40), frame)
            }
            SourceEvent::Frame(MediaKind::Audio, frame) => {
                recorder.handle_audio(start + captured + Duration::from_millis(20), frame)
            }
            SourceEvent::SenderReport(kind, report) => recorder.handle_sender_report(
                start + captured + Duration::from_millis(20),
                kind,
                report,
            ),
        }
        recorder.handle_timeout(start + captured);
        keyframe_requests += write_outputs(&mut recorder, &mut file)?;
    }
    recorder.finish(start + end);
    keyframe_requests += write_outputs(&mut recorder, &mut file)?;
    file.sync_all()?;
    drop(file);

    let report = inspect(std::fs::File::open(&path)?)
        .context("the demo wrote a file it cannot read back")?;
    if args.json {
        let json = serde_json::json!({
            "recordings": [{
                "id": "demo",
                "files": [{
                    "path": path,
                    "durationSeconds": report.tracks.iter().map(|t| t.duration_seconds).fold(0.0, f64::max),
                    "tracks": report.tracks,
                }],
            }],
            "keyFrameRequests": keyframe_requests,
            "stats": recorder.stats(),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!(
            "recorded {} s of a synthetic publication into {}",
            args.seconds,
            path.display()
        );
        println!("key-frame requests: {keyframe_requests}");
        print!("{}", super::inspect::summary(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// Appends the recorder's bytes to the file; returns how many key frames it asked for.
fn write_outputs(
    recorder: &mut PublicationRecorder,
    file: &mut std::fs::File,
) -> anyhow::Result<u32> {
    let mut requests = 0;
    while let Some(output) = recorder.poll_output() {
        match output {
            RecorderOutput::Write(block) => file.write_all(block.bytes())?,
            // The synthetic source sends key frames on its own schedule; a real recorder sends
            // a PLI here.
            RecorderOutput::RequestKeyFrame(_) => requests += 1,
        }
    }
    Ok(requests)
}
