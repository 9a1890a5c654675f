//! Helpers shared by convrec's tests: the real ffprobe and ffmpeg (a test that needs them fails,
//! never skips, when they are missing) and the fixtures directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use convrec_media::source::annexb::{AccessUnit, access_units};
use convrec_media::source::ogg::read_ogg_opus;

/// The repository's `fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A fixture's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A fixture's path.
pub fn fixture_path(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

/// An H.264 fixture as access units.
pub fn video_fixture(name: &str) -> Vec<AccessUnit> {
    access_units(&fixture(name))
}

/// The Opus fixture's packets.
pub fn opus_fixture() -> Vec<Vec<u8>> {
    read_ogg_opus(&fixture("tone-440hz.opus"))
        .expect("Opus fixture")
        .packets
}

/// Runs a media tool, failing the test (never skipping it) when it is not installed.
pub fn tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{name} is not installed: run the README's test command, which installs it"
    );
    Command::new(name)
}

/// `ffprobe -show_streams -show_format -count_packets` as JSON.
pub fn ffprobe(path: &Path) -> serde_json::Value {
    let out = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
            "-count_packets",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// The width of every decoded video frame, in order.
pub fn decoded_frame_widths(path: &Path) -> Vec<u64> {
    let out = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=width",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe -show_frames failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// What `ffmpeg -v error -i FILE -f null -` prints: empty for a file that decodes cleanly.
pub fn ffmpeg_decode_errors(path: &Path) -> String {
    let out = tool("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        text.push_str(&format!("\nffmpeg exited with {}", out.status));
    }
    text
}

/// The first stream of `codec_type` ("video", "audio") in an ffprobe report.
pub fn stream<'a>(probe: &'a serde_json::Value, codec_type: &str) -> &'a serde_json::Value {
    probe["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .find(|s| s["codec_type"] == codec_type)
        .unwrap_or_else(|| panic!("no {codec_type} stream in {probe}"))
}

/// A numeric field ffprobe reports as a string.
pub fn f64_field(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// How long a stream plays. In a fragmented MP4, ffprobe's stream `duration` is where the track
/// ends on the file's timeline, so the length is that minus `start_time`.
pub fn media_length(stream: &serde_json::Value) -> f64 {
    f64_field(stream, "duration") - f64_field(stream, "start_time")
}
