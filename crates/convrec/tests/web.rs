//! The web UI in headless Chromium (fake camera, microphone and screen), against a real server
//! with real recorders: two browser participants hold a call with a screen share, the recording
//! banner appears in both, the agent stops and restarts a manual recording, the call ends, and
//! the history page lists both recordings and plays them (`canplay`, the file's duration, a seek
//! to the middle); the visitor, whose role may not see recordings, sees none. Screenshots of
//! each page go to the test's directory, or to `CONVREC_SCREENSHOTS` when it is set.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::chromium::Chromium;
use common::deployment::{ADMIN_KEY, Deployment};
use serde_json::{Value, json};

fn screenshots(d: &Deployment) -> PathBuf {
    std::env::var_os("CONVREC_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| d.dir.path().to_owned())
}

/// The duration ffprobe reads from a file, in seconds.
fn ffprobe_duration(path: &Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (the test command installs ffmpeg)");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Every control has a name a screen reader can say, and the page fits its width.
async fn assert_plain_and_labelled(page: &Chromium, what: &str) {
    let unlabelled = page
        .evaluate(
            "[...document.querySelectorAll('button, input, video, a')]
              .filter((e) => !e.closest('[hidden]'))
              .filter((e) => !((e.labels && e.labels.length) || e.textContent.trim() || e.getAttribute('aria-label')))
              .map((e) => e.outerHTML)",
        )
        .await;
    assert_eq!(unlabelled, json!([]), "{what}: controls without a name");
    let fits = page
        .evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(fits, Value::Bool(true), "{what}: wider than the window");
    // Everything the page loaded came from the server itself (no CDN, no web fonts).
    let elsewhere = page
        .evaluate(
            "performance.getEntriesByType('resource').map((r) => r.name)
               .filter((url) => new URL(url).origin !== location.origin)",
        )
        .await;
    assert_eq!(elsewhere, json!([]), "{what}: loaded from elsewhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_call_share_record_twice_and_find_and_play_the_recordings() {
    let d = Deployment::start_with(
        2,
        json!({"recordingTriggeringMode": "MANUAL", "recordingStartMode": "ASYNCHRONOUS"}),
        &[],
    )
    .await;
    let shots = screenshots(&d);
    let page = |n: usize| {
        format!(
            "{}/web/conversation.html#conversation={}&token={}",
            d.base, d.conversation, d.tokens[n]
        )
    };
    let agent = Chromium::open(&page(0));
    let visitor = Chromium::open(&page(1));
    agent.resize(1280, 720, false).await;
    for browser in [&agent, &visitor] {
        browser
            .wait_for(
                "the page is ready",
                "window.convrec && window.convrec.ready",
            )
            .await;
    }
    // The agent may start and stop recordings; the visitor may not (allowManualRecording).
    assert_eq!(
        agent
            .evaluate("document.getElementById('start-recording').hidden")
            .await,
        false
    );
    assert_eq!(
        visitor
            .evaluate("document.getElementById('start-recording').hidden")
            .await,
        true
    );

    // Both join the call; each receives the other's camera.
    agent
        .gesture("document.getElementById('join').click()")
        .await;
    agent
        .wait_for(
            "the agent publishes",
            "Object.keys(window.convrec.sending).length === 1",
        )
        .await;
    visitor
        .gesture("document.getElementById('join').click()")
        .await;
    for browser in [&agent, &visitor] {
        browser
            .wait_for(
                "video from the other",
                "Object.values(window.convrec.received).some((n) => n > 30)",
            )
            .await;
    }
    // The visitor shares its screen; the agent receives it.
    visitor
        .gesture("document.getElementById('share').click()")
        .await;
    visitor
        .wait_for(
            "the visitor shares",
            "Object.keys(window.convrec.sending).length === 2",
        )
        .await;
    agent
        .wait_for(
            "the screen share",
            "Object.values(window.convrec.received).filter((n) => n > 10).length >= 2",
        )
        .await;

    // The agent records; both see the banner.
    agent
        .gesture("document.getElementById('start-recording').click()")
        .await;
    for browser in [&agent, &visitor] {
        browser
            .wait_for(
                "the banner",
                "window.convrec.banner === 'This conversation is being recorded'",
            )
            .await;
    }
    assert_plain_and_labelled(&agent, "the conversation page").await;
    agent
        .screenshot(&shots.join("conversation-recording.png"))
        .await;
    visitor.resize(390, 844, true).await;
    assert_plain_and_labelled(&visitor, "the conversation page at phone width").await;
    visitor
        .screenshot(&shots.join("conversation-phone.png"))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Stop: the banner goes; start again: it comes back.
    agent
        .evaluate("document.getElementById('stop-recording').focus()")
        .await;
    agent.press("Enter").await;
    visitor
        .wait_for("no banner", "window.convrec.banner === null")
        .await;
    agent
        .wait_for(
            "a stopped recording",
            "window.convrec.recordingState === 'STOPPED'",
        )
        .await;
    agent
        .wait_for(
            "the start control",
            "!document.getElementById('start-recording').hidden",
        )
        .await;
    // At once, while the stopped recording's recorder still finishes its file: the start is
    // taken and the new recording begins when that one is done (one recording at a time).
    agent
        .gesture("document.getElementById('start-recording').click()")
        .await;
    visitor
        .wait_for(
            "the banner again",
            "window.convrec.banner === 'This conversation is being recorded'",
        )
        .await;
    // A message said while recording, with the keyboard only.
    agent
        .evaluate("document.getElementById('text').focus()")
        .await;
    agent.type_text("Recorded, as agreed").await;
    agent.press("Enter").await;
    visitor
        .wait_for(
            "the message",
            "window.convrec.messages.some((m) => m.text === 'Recorded, as agreed')",
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The share stops and the call ends: the recording ends with them.
    visitor
        .gesture("document.getElementById('unshare').click()")
        .await;
    agent
        .gesture("document.getElementById('end-call').click()")
        .await;
    agent
        .wait_for("the call ends", "window.convrec.call === null")
        .await;
    let recordings = common::poll_until(
        Duration::from_secs(60),
        async || {
            let listed = d.complete_recordings().await;
            if listed.len() == 2 {
                Ok(listed)
            } else {
                Err(listed)
            }
        },
        |listed| format!("not two recordings: {listed:?}\n{}", d.log()),
    )
    .await;
    for r in &recordings {
        assert_eq!(r["endReason"], "NORMAL", "{r}");
    }

    // The agent's history: the conversation, both recordings, the timeline, and the player.
    agent.resize(1280, 720, false).await;
    agent
        .navigate(&format!("{}/web/history.html", d.base))
        .await;
    agent.wait_for("the history", "window.convrec.ready").await;
    agent
        .gesture(&format!(
            "document.querySelector('[data-conversation=\"{}\"]').click()",
            d.conversation
        ))
        .await;
    agent
        .wait_for("the fly-in", "window.convrec.recordings.length === 2")
        .await;
    let available = agent
        .evaluate("document.querySelectorAll('#timeline [data-type=RECORDING_AVAILABLE]').length")
        .await;
    assert_eq!(available, 2);
    assert_plain_and_labelled(&agent, "the history page").await;
    for (n, recording) in recordings.iter().enumerate() {
        agent
            .gesture(&format!(
                "{{ window.canplay = false;
                 const player = document.getElementById('player');
                 player.addEventListener('canplay', () => window.canplay = true, {{ once: true }});
                 document.querySelector('[data-recording=\"{}\"] button').click(); }}",
                recording["id"].as_str().unwrap()
            ))
            .await;
        agent.wait_for("canplay", "window.canplay === true").await;
        let duration = agent
            .evaluate("document.getElementById('player').duration")
            .await
            .as_f64()
            .unwrap();
        let file = d.object(recording["files"][0]["objectKey"].as_str().unwrap());
        let probed = ffprobe_duration(&file);
        assert!(
            (duration - probed).abs() < 0.5,
            "the player says {duration} s, ffprobe {probed} s"
        );
        assert!(duration > 2.0, "{duration} s");
        let landed = agent
            .evaluate(
                "new Promise((done) => {
                   const player = document.getElementById('player');
                   player.addEventListener('seeked', () => done(player.currentTime), { once: true });
                   player.currentTime = player.duration / 2;
                 })",
            )
            .await
            .as_f64()
            .unwrap();
        assert!(
            (landed - duration / 2.0).abs() < 1.0,
            "seeked to {landed} of {duration}"
        );
        if n == 0 {
            agent.screenshot(&shots.join("history-player.png")).await;
        }
    }

    // An admin's history: the account's conversations, with the same recordings.
    agent
        .navigate(&format!(
            "{}/web/history.html#token={ADMIN_KEY}&account={}",
            d.base, d.account
        ))
        .await;
    agent
        .wait_for("the admin's list", "window.convrec.ready")
        .await;
    agent
        .gesture(&format!(
            "document.querySelector('[data-conversation=\"{}\"]').click()",
            d.conversation
        ))
        .await;
    agent
        .wait_for(
            "the admin's fly-in",
            "window.convrec.recordings.length === 2",
        )
        .await;

    // The visitor starts from the start page, with the keyboard: its history shows its
    // conversation, no recordings and no RECORDING_AVAILABLE.
    visitor.resize(1280, 720, false).await;
    visitor.navigate(&format!("{}/", d.base)).await;
    assert_plain_and_labelled(&visitor, "the start page").await;
    visitor.screenshot(&shots.join("start.png")).await;
    visitor
        .evaluate("document.getElementById('token').focus()")
        .await;
    visitor.type_text(&d.tokens[1]).await;
    visitor
        .evaluate("document.getElementById('conversation').focus()")
        .await;
    visitor.type_text(&d.conversation).await;
    visitor
        .evaluate("document.querySelector('button[value=history]').focus()")
        .await;
    visitor.press("Enter").await;
    visitor
        .wait_for(
            "the history page",
            "location.pathname === '/web/history.html' && !!window.convrec && window.convrec.ready",
        )
        .await;
    visitor
        .gesture(&format!(
            "document.querySelector('[data-conversation=\"{}\"]').click()",
            d.conversation
        ))
        .await;
    let state = visitor
        .wait_for(
            "the fly-in",
            "window.convrec.open !== null && window.convrec.timeline.length > 0",
        )
        .await;
    assert_eq!(state["recordings"], json!([]));
    assert!(
        state["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] != "RECORDING_AVAILABLE"),
        "{state}"
    );
    assert_eq!(
        visitor
            .evaluate("document.getElementById('no-recordings').hidden")
            .await,
        false
    );
    visitor.screenshot(&shots.join("history-visitor.png")).await;
    for browser in [&agent, &visitor] {
        assert_eq!(browser.evaluate("window.convrec.errors").await, json!([]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_start_shows_the_wait_and_then_the_failure() {
    // Recorders are told to join where nothing listens: every attempt fails at once, and the
    // call's media stays held until the attempts are used up; ABORT then ends the call.
    let d = Deployment::start_with(
        1,
        json!({"recordingStartMode": "SYNCHRONOUS", "recordingMaxRetries": 3, "recordingFailoverMode": "ABORT"}),
        &[("CONVREC_PUBLIC_URL", "http://127.0.0.1:1")],
    )
    .await;
    let agent = Chromium::open(&format!(
        "{}/web/conversation.html#conversation={}&token={}",
        d.base, d.conversation, d.tokens[0]
    ));
    agent.resize(1280, 720, false).await;
    agent
        .wait_for(
            "the page is ready",
            "window.convrec && window.convrec.ready",
        )
        .await;
    agent
        .gesture("document.getElementById('join').click()")
        .await;
    agent
        .wait_for(
            "the waiting banner",
            "(window.convrec.banner || '').startsWith('Waiting for the recording to start')",
        )
        .await;
    agent
        .screenshot(&screenshots(&d).join("conversation-waiting.png"))
        .await;
    // In AUTOMATIC mode no one starts or stops recordings by hand: no such controls show.
    let controls = agent
        .evaluate(
            "['start-recording', 'stop-recording']
               .map((id) => getComputedStyle(document.getElementById(id)).display)",
        )
        .await;
    assert_eq!(controls, json!(["none", "none"]));
    let state = agent
        .wait_for(
            "the failure, shown",
            "window.convrec.errors.some((e) => e.includes('RECORDING_DENIED'))",
        )
        .await;
    assert!(
        state["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("recording failed")),
        "{state}"
    );
    agent
        .wait_for("no banner", "window.convrec.banner === null")
        .await;
}
