//! Muxing throughput: MB of media per second through the whole recording path (timeline +
//! fMP4 writer) for a 2 Mbit/s 720p H.264 + Opus publication, on one core, against ffmpeg's
//! whole-process `-c copy` fragmented-MP4 remux of the same media in the same run.
//!
//! `cargo bench -p convrec-media --bench mux`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use convrec_media::recording::{PublicationRecorder, RecorderConfig, RecorderOutput};
use convrec_media::source::annexb::access_units;
use convrec_media::source::ogg::read_ogg_opus;
use convrec_media::source::synthetic::{SourceEvent, SyntheticConfig, SyntheticSource};
use convrec_media::timeline::{MediaFrame, MediaKind, SenderReport};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// Seconds of media per iteration.
const SECONDS: u64 = 60;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

enum Event {
    Video(Duration, MediaFrame),
    Audio(Duration, MediaFrame),
    Report(Duration, MediaKind, SenderReport),
}

/// The publication's events in arrival order, and the media bytes they carry.
fn events() -> (Vec<Event>, u64) {
    let video = access_units(
        &std::fs::read(fixtures().join("cbp-1280x720-2mbps.h264")).expect("720p fixture"),
    );
    let audio =
        read_ogg_opus(&std::fs::read(fixtures().join("tone-440hz.opus")).expect("Opus fixture"))
            .expect("Opus fixture parses")
            .packets;
    let mut source = SyntheticSource::new(SyntheticConfig::default(), video, audio);
    let (mut out, mut bytes) = (Vec::new(), 0u64);
    loop {
        let (at, event) = source.next_event();
        if at >= Duration::from_secs(SECONDS) {
            return (out, bytes);
        }
        out.push(match event {
            SourceEvent::Frame(MediaKind::Video, f) => {
                bytes += f.data.len() as u64;
                Event::Video(at, f)
            }
            SourceEvent::Frame(MediaKind::Audio, f) => {
                bytes += f.data.len() as u64;
                Event::Audio(at, f)
            }
            SourceEvent::SenderReport(kind, r) => Event::Report(at, kind, r),
        });
    }
}

fn record(events: Vec<Event>) -> u64 {
    let start = Instant::now();
    let mut recorder = PublicationRecorder::new(RecorderConfig::default(), start);
    let mut written = 0u64;
    let mut drain = |recorder: &mut PublicationRecorder| {
        while let Some(output) = recorder.poll_output() {
            if let RecorderOutput::Write(block) = output {
                written += black_box(block.bytes()).len() as u64;
            }
        }
    };
    for event in events {
        match event {
            Event::Video(at, f) => recorder.handle_video(start + at, f),
            Event::Audio(at, f) => recorder.handle_audio(start + at, f),
            Event::Report(at, kind, r) => recorder.handle_sender_report(start + at, kind, r),
        }
        drain(&mut recorder);
    }
    recorder.finish(start + Duration::from_secs(SECONDS));
    drain(&mut recorder);
    written
}

/// The same media as files ffmpeg reads: the H.264 fixture and the Opus fixture, looped.
fn ffmpeg_inputs(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    Command::new("ffmpeg").arg("-version").output().ok()?;
    let h264 = dir.join("video.h264");
    let video = std::fs::read(fixtures().join("cbp-1280x720-2mbps.h264")).ok()?;
    std::fs::write(&h264, video.repeat((SECONDS / 2) as usize)).ok()?;
    let opus = dir.join("audio.opus");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-stream_loop", "-1", "-i"])
        .arg(fixtures().join("tone-440hz.opus"))
        .args(["-t", &SECONDS.to_string(), "-c", "copy"])
        .arg(&opus)
        .status()
        .ok()?;
    status.success().then_some((h264, opus))
}

fn bench(c: &mut Criterion) {
    let (template, media_bytes) = events();
    let mut group = c.benchmark_group("mux-720p-2mbps-opus");
    group.throughput(Throughput::BytesDecimal(media_bytes));
    group.sample_size(20);
    group.bench_function("convrec-timeline+fmp4", |b| {
        b.iter_batched(
            || {
                template
                    .iter()
                    .map(|e| match e {
                        Event::Video(at, f) => Event::Video(*at, f.clone()),
                        Event::Audio(at, f) => Event::Audio(*at, f.clone()),
                        Event::Report(at, k, r) => Event::Report(*at, *k, *r),
                    })
                    .collect::<Vec<_>>()
            },
            record,
            BatchSize::LargeInput,
        )
    });
    let dir = std::env::temp_dir().join(format!("convrec-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir for ffmpeg's inputs");
    match ffmpeg_inputs(&dir) {
        Some((h264, opus)) => {
            group.sample_size(10);
            group.bench_function("baseline-ffmpeg-copy-fmp4-process", |b| {
                b.iter(|| {
                    let status = Command::new("ffmpeg")
                        .args([
                            "-v",
                            "error",
                            "-threads",
                            "1",
                            "-f",
                            "h264",
                            "-framerate",
                            "30",
                            "-i",
                        ])
                        .arg(&h264)
                        .arg("-i")
                        .arg(&opus)
                        .args([
                            "-c",
                            "copy",
                            "-movflags",
                            "frag_keyframe+empty_moov+default_base_moof",
                        ])
                        .args(["-frag_duration", "2000000", "-f", "mp4", "-y", "/dev/null"])
                        .status()
                        .expect("run ffmpeg");
                    assert!(status.success());
                })
            });
        }
        None => eprintln!(
            "ffmpeg not found: the baseline is skipped (install it with the README's test command)"
        ),
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
