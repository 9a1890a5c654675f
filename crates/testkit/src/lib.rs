//! Helpers shared by convrec's tests: the real ffprobe and ffmpeg (a test that needs them fails,
//! never skips, when they are missing) and the fixtures directory.

pub mod faults;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use convrec_media::recording::{
    PublicationRecorder, RecorderConfig, RecorderOutput, RecorderStats,
};
use convrec_media::source::annexb::{AccessUnit, access_units};
use convrec_media::source::ogg::read_ogg_opus;
use convrec_media::source::synthetic::{SourceEvent, SyntheticConfig, SyntheticSource};
use convrec_media::timeline::{KeyFrameReason, MediaKind};

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
    let mut command = Command::new(name);
    // A tool never reads the test run's standard input (ffmpeg would, for its keyboard
    // commands, and take bytes meant for whatever reads it next: scripts/test.sh's loop).
    command.stdin(Stdio::null());
    command
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

/// What `ffmpeg -v error -i FILE -fps_mode passthrough -enc_time_base:v 1:90000 -f null -`
/// prints: empty for a file that decodes cleanly. Frames keep their own timestamps, at the
/// file's own 90 kHz: WebRTC video has a variable frame rate, and ffmpeg's default output time
/// base (one tick per guessed frame interval) reports two frames closer than that as a
/// timestamp clash of its own making.
pub fn ffmpeg_decode_errors(path: &Path) -> String {
    let out = tool("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-fps_mode", "passthrough", "-enc_time_base:v", "1:90000"])
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

/// How a scenario's media reaches the recorder.
#[derive(Clone)]
pub struct Scenario {
    /// Video access units to loop (empty: no video).
    pub video: Vec<AccessUnit>,
    /// Opus packets to loop (empty: no audio).
    pub audio: Vec<Vec<u8>>,
    /// Seconds of media.
    pub seconds: f64,
    /// The synthetic sender.
    pub source: SyntheticConfig,
    /// Network delay of video.
    pub video_delay: Duration,
    /// Network delay of audio.
    pub audio_delay: Duration,
    /// Video frames captured before this are not sent (a camera switched on later).
    pub video_from: Duration,
    /// From this capture time on, video comes from a new SSRC with an unrelated RTP base (the
    /// publisher restarted its encoder).
    pub video_restart_at: Option<Duration>,
    /// The recorder's settings.
    pub recorder: RecorderConfig,
}

impl Scenario {
    /// `seconds` of the named H.264 fixture with the Opus fixture.
    pub fn new(video: &str, seconds: f64) -> Self {
        Self {
            video: video_fixture(video),
            audio: opus_fixture(),
            seconds,
            source: SyntheticConfig::default(),
            video_delay: Duration::from_millis(40),
            audio_delay: Duration::from_millis(20),
            video_from: Duration::ZERO,
            video_restart_at: None,
            recorder: RecorderConfig::default(),
        }
    }

    /// `seconds` of the Opus fixture alone.
    pub fn audio_only(seconds: f64) -> Self {
        let mut s = Self::new("cbp-320x240-30fps.h264", seconds);
        s.video.clear();
        s.recorder.timeline.expect_video = false;
        s
    }
}

/// A finished recording: the file and where its blocks start.
pub struct Recording {
    /// The whole file.
    pub file: Vec<u8>,
    /// Byte offsets where each block (init, fragments, index) ends.
    pub block_ends: Vec<usize>,
    /// Key-frame requests the recorder made.
    pub keyframe_requests: Vec<KeyFrameReason>,
    /// The recorder's counters.
    pub stats: RecorderStats,
}

/// Records a scenario on a virtual clock.
pub fn record(scenario: &Scenario) -> Recording {
    let mut source = SyntheticSource::new(
        scenario.source.clone(),
        scenario.video.clone(),
        scenario.audio.clone(),
    );
    let start = Instant::now();
    let mut recorder = PublicationRecorder::new(scenario.recorder.clone(), start);
    let mut out = Recording {
        file: Vec::new(),
        block_ends: Vec::new(),
        keyframe_requests: Vec::new(),
        stats: RecorderStats::default(),
    };
    let end = Duration::from_secs_f64(scenario.seconds);
    loop {
        let (at, event) = source.next_event();
        if at >= end {
            break;
        }
        let restarted = scenario.video_restart_at.is_some_and(|r| at >= r);
        match event {
            SourceEvent::Frame(MediaKind::Video, mut frame) => {
                if restarted {
                    frame.ssrc ^= 0xffff;
                    frame.rtp_time = frame.rtp_time.wrapping_add(0x7654_3210);
                }
                if at >= scenario.video_from {
                    recorder.handle_video(start + at + scenario.video_delay, frame)
                }
            }
            SourceEvent::Frame(MediaKind::Audio, frame) => {
                recorder.handle_audio(start + at + scenario.audio_delay, frame)
            }
            SourceEvent::SenderReport(kind, mut report) => {
                if kind == MediaKind::Video && restarted {
                    report.ssrc ^= 0xffff;
                    report.rtp_time = report.rtp_time.wrapping_add(0x7654_3210);
                }
                let delay = if kind == MediaKind::Video {
                    scenario.video_delay
                } else {
                    scenario.audio_delay
                };
                recorder.handle_sender_report(start + at + delay, kind, report)
            }
        }
        recorder.handle_timeout(start + at);
        drain(&mut recorder, &mut out);
    }
    recorder.finish(start + end + Duration::from_millis(100));
    drain(&mut recorder, &mut out);
    out.stats = recorder.stats();
    out
}

fn drain(recorder: &mut PublicationRecorder, out: &mut Recording) {
    while let Some(output) = recorder.poll_output() {
        match output {
            RecorderOutput::Write(block) => {
                out.file.extend_from_slice(block.bytes());
                out.block_ends.push(out.file.len());
            }
            RecorderOutput::RequestKeyFrame(reason) => out.keyframe_requests.push(reason),
        }
    }
}

/// Writes bytes to a file in a temp dir.
pub fn write_temp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}

/// The file's sound as ffmpeg decodes it: mono, 48 kHz, samples in −1..1.
pub fn decoded_sound(file: &Path) -> Vec<f32> {
    let out = tool("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args([
            "-map", "0:a", "-f", "s16le", "-ac", "1", "-ar", "48000", "-",
        ])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

/// The times (s) at which the file's picture turns bright, and its sound clicks, as a player
/// presents them.
pub fn flashes_and_clicks(file: &Path) -> (Vec<f64>, Vec<f64>) {
    let frames = tool("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args([
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-vf",
            "scale=64:36",
            "-vsync",
            "passthrough",
            "-",
        ])
        .output()
        .expect("run the media tool");
    assert!(frames.status.success());
    let times = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run the media tool");
    // One line a frame; a frame with side data (the SEI the fixtures' encoder writes) ends
    // with a comma and is followed by an empty line.
    let times: Vec<f64> = String::from_utf8_lossy(&times.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .next()
                .unwrap_or("")
                .trim()
                .parse()
                .expect("a frame time")
        })
        .collect();
    assert_eq!(
        times.len() * 64 * 36,
        frames.stdout.len(),
        "as many frame times as frames"
    );
    let mut flashes = Vec::new();
    let mut bright_before = false;
    for (frame, at) in frames.stdout.chunks_exact(64 * 36).zip(&times) {
        let mean = frame.iter().map(|v| f64::from(*v)).sum::<f64>() / frame.len() as f64;
        let bright = mean > 128.0;
        if bright && !bright_before {
            flashes.push(*at);
        }
        bright_before = bright;
    }
    let samples: Vec<f32> = decoded_sound(file).iter().map(|x| x.abs()).collect();
    // Decoded samples start at the audio stream's start time (negative when the edit list
    // trims the encoder's look-ahead): that is where a player puts them.
    let start = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a",
            "-show_entries",
            "stream=start_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run the media tool");
    let audio_start: f64 = String::from_utf8_lossy(&start.stdout)
        .trim()
        .parse()
        .expect("the audio stream's start time");
    let mut clicks = Vec::new();
    let mut quiet_until = 0;
    for (n, x) in samples.iter().enumerate() {
        if *x > 0.3 && n >= quiet_until {
            clicks.push(audio_start + n as f64 / 48_000.0);
            quiet_until = n + 24_000;
        }
    }
    (flashes, clicks)
}

/// For each flash of `file` (see [`flashes_and_clicks`]), the time from it to the nearest
/// click, in milliseconds (positive: the sound comes late). Fails the test unless there are
/// as many clicks as flashes.
pub fn flash_to_clap_offsets_ms(file: &Path) -> Vec<f64> {
    let (flashes, clicks) = flashes_and_clicks(file);
    assert_eq!(
        flashes.len(),
        clicks.len(),
        "flashes at {flashes:?}, clicks at {clicks:?}"
    );
    let offsets: Vec<f64> = flashes
        .iter()
        .map(|flash| {
            let nearest = clicks
                .iter()
                .min_by(|a, b| (*a - flash).abs().total_cmp(&(*b - flash).abs()))
                .expect("a click");
            (nearest - flash) * 1000.0
        })
        .collect();
    let shown: Vec<String> = offsets.iter().map(|o| format!("{o:.1}")).collect();
    eprintln!("click − flash, ms: {}", shown.join(", "));
    offsets
}

/// The admin URL of the PostgreSQL server the tests use (`CONVREC_TEST_POSTGRES`, set by
/// `scripts/test.sh`, which installs and starts PostgreSQL). A test that needs it fails, never
/// skips, when it is not set.
pub fn postgres_admin_url() -> String {
    std::env::var("CONVREC_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "CONVREC_TEST_POSTGRES is not set: run the README's test command, which installs and starts PostgreSQL"
        )
    })
}

/// A fresh metadata database for one test: an SQLite file in a temporary directory, or a new
/// PostgreSQL database (dropped when this is).
#[derive(Debug)]
pub enum TestDatabase {
    /// `convrec.db` in the directory.
    Sqlite(tempfile::TempDir),
    /// A database of its own on the test PostgreSQL server.
    Postgres {
        /// Its URL.
        url: String,
        /// Its name.
        name: String,
    },
}

impl TestDatabase {
    /// One of each kind: run a test's body for every database convrec supports.
    pub fn each() -> [TestDatabase; 2] {
        [Self::sqlite(), Self::postgres()]
    }

    /// A new SQLite database.
    pub fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().expect("a temporary directory"))
    }

    /// A new, empty PostgreSQL database.
    pub fn postgres() -> Self {
        let admin = postgres_admin_url();
        let name = format!("convrec_test_{}_{}", std::process::id(), next_database());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        Self::Postgres {
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// What `convrec` is given as its database (`database_url`).
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => dir.path().join("convrec.db").display().to_string(),
            Self::Postgres { url, .. } => url.clone(),
        }
    }

    /// Everything the database holds, as bytes: the SQLite file and its WAL, or a `pg_dump` of
    /// the data (to check that a secret is not stored).
    pub fn raw_contents(&self) -> Vec<u8> {
        match self {
            Self::Sqlite(dir) => {
                let mut bytes = std::fs::read(dir.path().join("convrec.db")).unwrap_or_default();
                bytes.extend(std::fs::read(dir.path().join("convrec.db-wal")).unwrap_or_default());
                bytes
            }
            Self::Postgres { url, .. } => {
                let out = tool("pg_dump")
                    .args(["--data-only", url])
                    .output()
                    .expect("run pg_dump");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            }
        }
    }
}

impl TestDatabase {
    /// Its URL, the database kept after the test (for a server that outlives this value; the
    /// test command drops every test database when it ends).
    pub fn keep(self) -> String {
        let url = self.url();
        if let Self::Postgres { .. } = self {
            std::mem::forget(self);
        }
        url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Self::Postgres { name, .. } = self
            && let Ok(admin) = std::env::var("CONVREC_TEST_POSTGRES")
        {
            let _ = Command::new("psql")
                .args([
                    admin.as_str(),
                    "-qc",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .output();
        }
    }
}

/// The database the servers of this test run use: `CONVREC_TEST_DATABASE=postgres` (the test
/// command's second pass) gives each a new PostgreSQL database; otherwise `None`, the embedded
/// SQLite in the data directory.
pub fn database_for_servers() -> Option<TestDatabase> {
    match std::env::var("CONVREC_TEST_DATABASE").as_deref() {
        Ok("postgres") => Some(TestDatabase::postgres()),
        Ok("sqlite") | Err(_) => None,
        Ok(other) => panic!("CONVREC_TEST_DATABASE={other}: allowed are postgres and sqlite"),
    }
}

fn next_database() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

fn psql(url: &str, sql: &str) {
    let out = tool("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Replays the committed fuzz corpus of `target` (`fuzz/corpus/<target>/`) through `harness`,
/// the function its fuzz target runs: every input that once found new coverage, or a crash, is
/// checked on each test run.
pub fn replay_corpus(target: &str, harness: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "the {target} corpus is empty");
    for path in &entries {
        let data = std::fs::read(path).expect("read corpus file");
        let outcome = std::panic::catch_unwind(|| harness(&data));
        assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
    }
}

/// The next number of a xorshift64 sequence (Marsaglia's 13, 7, 17): cheap, reproducible
/// pseudo-random numbers for tests. `state` must not be 0.
pub fn xorshift64(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
