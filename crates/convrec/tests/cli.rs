//! The `convrec` binary as a user runs it.

use std::process::Command;

use convrec_testkit::{Scenario, fixture_path, record, tool, write_temp};

fn convrec() -> Command {
    Command::new(env!("CARGO_BIN_EXE_convrec"))
}

/// A recording made by the media core (virtual clock) of `seconds` of the 320x240 fixture.
fn recorded_file(dir: &tempfile::TempDir, seconds: f64) -> std::path::PathBuf {
    let recording = record(&Scenario::new("cbp-320x240-30fps.h264", seconds));
    write_temp(dir, "recording.mp4", &recording.file)
}

#[test]
fn inspect_reports_a_recording_as_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = recorded_file(&dir, 5.0);

    let out = convrec().arg("inspect").arg(&path).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("avc3 320x240"), "{text}");
    assert!(text.contains("Opus 48000 Hz"), "{text}");
    assert!(text.contains("index: present"), "{text}");

    let out = convrec()
        .args(["inspect", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["indexPresent"], true);
    assert_eq!(report["tracks"][0]["codec"], "avc3");
    assert_eq!(report["tracks"][1]["codec"], "Opus");
    let fragments = report["fragments"].as_array().unwrap();
    assert_eq!(fragments.len(), 3, "5 s in fragments of at most 2 s");
    assert!(report["avStartOffsetMs"].as_f64().unwrap().abs() <= 20.0);
}

#[test]
fn inspect_of_a_truncated_file_names_the_byte_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = recorded_file(&dir, 3.0);
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() - 5000]).unwrap();

    let (stderr, error) = refused_by_inspect(&cut);
    assert!(stderr.contains("truncated at byte"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let offset = error["offset"].as_u64().expect("offset of the break");
    assert!(offset < bytes.len() as u64 - 5000);
}

#[test]
fn inspect_of_a_missing_or_foreign_file_is_a_clear_error() {
    let out = convrec()
        .args(["inspect", "/nonexistent/file.mp4"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent/file.mp4"));

    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "these are not media").unwrap();
    let out = convrec().arg("inspect").arg(&text).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt at byte 0"));
}

#[test]
fn inspect_of_a_whole_mp4_says_it_is_not_fragmented_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.mp4");
    // ffmpeg's default MP4: one moov (here first) with the sample tables, one mdat.
    let made = tool("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(fixture_path("cbp-320x240-30fps.h264"))
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&whole)
        .status()
        .unwrap();
    assert!(made.success());

    let (stderr, error) = refused_by_inspect(&whole);
    assert!(stderr.contains("not a fragmented MP4"), "{stderr}");
    assert!(!stderr.contains("corrupt"), "{stderr}");
    let moov_at = error["offset"].as_u64().expect("where its moov is");
    let bytes = std::fs::read(&whole).unwrap();
    let at = usize::try_from(moov_at).unwrap();
    assert_eq!(
        &bytes[at + 4..at + 8],
        b"moov",
        "the offset names the moov box"
    );
}

/// Runs `convrec inspect` on `path` as text and as JSON, each of which must exit with status 1:
/// what it said on standard error, and its JSON error.
fn refused_by_inspect(path: &std::path::Path) -> (String, serde_json::Value) {
    let out = convrec()
        .arg("inspect")
        .arg(path)
        .output()
        .expect("convrec runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).expect("UTF-8");
    let out = convrec()
        .args(["inspect", "--json"])
        .arg(path)
        .output()
        .expect("convrec runs");
    assert_eq!(out.status.code(), Some(1));
    (
        stderr,
        serde_json::from_slice(&out.stdout).expect("a JSON error"),
    )
}

/// Runs `convrec ARGS`, which must succeed, and reads the JSON it prints.
fn json_of(args: &[&str]) -> serde_json::Value {
    let out = convrec().args(args).output().expect("convrec runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("convrec prints JSON")
}

#[test]
fn bench_ready_measures_start_to_recorder_ready_against_a_process_start() {
    let result = json_of(&["bench-ready", "--runs", "2", "--publishers", "1"]);
    assert_eq!(result["runs"], 2);
    assert_eq!(result["publishers"], 1);
    let ready = result["startToRecorderReadyMs"]["median"].as_f64().unwrap();
    let process = result["baselineProcessStartMs"]["median"].as_f64().unwrap();
    // A recorder is a launched process that then connects: it cannot beat a bare start.
    assert!(
        ready > process,
        "ready {ready} ms, process start {process} ms"
    );
}

/// `loadtest` runs its rounds of recorded calls and reports what each round measured: one
/// recorder per call, their CPU and memory, acknowledgement latency, media missing from files.
#[test]
fn loadtest_reports_each_round_of_recorded_calls() {
    let result = json_of(&["loadtest", "--calls", "1,2", "--seconds", "4", "--json"]);
    let rounds = result["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{result}");
    for (round, calls) in rounds.iter().zip([1, 2]) {
        assert_eq!(round["calls"], calls, "{round}");
        assert_eq!(round["recorders"], calls, "one recorder per call: {round}");
        assert_eq!(round["recordingsComplete"], calls, "{round}");
        assert!(round["recorderCpuPercent"]["mean"].as_f64().unwrap() > 0.0);
        assert!(round["recorderPeakMiB"]["max"].as_f64().unwrap() > 1.0);
        // Two participants' files a call, each acknowledged block by block.
        assert!(round["fragmentAckSeconds"]["count"].as_f64().unwrap() >= 4.0 * calls as f64);
        assert!(round["fragmentAckSeconds"]["p99"].as_f64().unwrap() > 0.0);
        assert!(round["missingVideoFrames"].is_u64(), "{round}");
        assert!(round["missingAudioPackets"].is_u64(), "{round}");
    }
}
