//! The fault suite (`docs/reliability.md`): recordings under faults, against real processes.
//! Each case checks that nothing acknowledged was lost — every stored file is exactly as long
//! as the server acknowledged, the recorder's own count agrees, and the file plays — and
//! prints what it measured (`cargo test -p convrec --test faults -- --nocapture`).
//!
//! Other faults of the suite are tested where their machinery lives: the recorder killed
//! (`recording.rs`), the server killed and restarted (`recording.rs`), the object store stopped
//! and restarted (`object_store.rs`), a node lost (`nodes.rs`).
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

mod common;

use std::time::{Duration, Instant};

use common::deployment::Deployment;
use common::{assert_decodes, finished_participant, wait_until};
use convrec_testkit::faults::{ImpairedUdpRelay, Impairment, TcpProxy};
use convrec_testkit::{TestDatabase, ffprobe, stream};
use serde_json::{Value, json};

/// The recordings of the deployment's conversation, each checked: every file stored whole as
/// acknowledged, and playable. Returns their manifests.
async fn stored_as_acknowledged(d: &Deployment) -> Vec<Value> {
    let recordings = d.complete_recordings().await;
    let manifests: Vec<Value> = recordings
        .iter()
        .map(|r| d.manifest(r["id"].as_str().unwrap()))
        .collect();
    for manifest in &manifests {
        for file in manifest["files"].as_array().unwrap() {
            let path = d.object(file["objectKey"].as_str().unwrap());
            let stored = std::fs::metadata(&path).unwrap().len();
            assert_eq!(
                Some(stored),
                file["bytes"].as_u64(),
                "stored as acknowledged: {manifest}"
            );
            let probe = ffprobe(&path);
            let has_audio = probe["streams"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["codec_type"] == "audio");
            assert_decodes(&path, has_audio);
        }
    }
    assert!(
        !d.log()
            .contains("the recorder's summary differs from what was spooled"),
        "the recorder counted what the server stored\n{}",
        d.log()
    );
    manifests
}

/// Samples and seconds of a stored file's `video` or `audio` track.
fn track_of(d: &Deployment, file: &Value, kind: &str) -> (u64, f64) {
    let probe = ffprobe(&d.object(file["objectKey"].as_str().unwrap()));
    let track = stream(&probe, kind);
    let samples = track["nb_read_packets"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap();
    (samples, convrec_testkit::media_length(track))
}

/// A free UDP port on loopback (for a server whose media address must be known in advance).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// 5 % of datagrams lost and each of the rest delayed by up to 200 ms (so reordered), both
/// ways, between the SFU and everyone: the participant and the recorder. The server advertises
/// the relay as its media address (`--media-advertise`, as behind a 1:1 NAT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_network_on_the_media_path_loses_nothing_acknowledged() {
    let media = format!("127.0.0.1:{}", free_udp_port());
    let relay = ImpairedUdpRelay::start(
        media.parse().unwrap(),
        Impairment::new(0.05, Duration::from_millis(200), 20261201),
    );
    let advertised = relay.addr().to_string();
    let d = Deployment::start_with(
        1,
        json!({}),
        &[
            ("CONVREC_MEDIA_LISTEN", &media),
            ("CONVREC_MEDIA_ADVERTISE", &advertised),
        ],
    )
    .await;
    let (_, published) = finished_participant(d.participant(0, 20.0));
    let manifests = stored_as_acknowledged(&d).await;
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let file = &manifests[0]["files"][0];
    let (frames, seconds) = track_of(&d, file, "video");
    let (packets, _) = track_of(&d, file, "audio");
    let counts = relay.counts();
    use std::sync::atomic::Ordering::Relaxed;
    let (received, lost, reordered) = (
        counts.received.load(Relaxed),
        counts.lost.load(Relaxed),
        counts.reordered.load(Relaxed),
    );
    eprintln!(
        "bad network: {received} datagrams through the relay, {lost} lost, {reordered} reordered; published {published:.1} s; recorded {seconds:.1} s of video with {frames} frames ({:.0} % of 30 fps), {packets} audio packets ({:.0} % of 50 a second)",
        100.0 * frames as f64 / (published * 30.0),
        100.0 * packets as f64 / (published * 50.0)
    );
    for line in d
        .log()
        .lines()
        .filter(|l| l.contains("publication file finished"))
    {
        eprintln!("bad network, the recorder: {line}");
    }
    assert!(lost > 0 && reordered > 0, "the network was bad");
    // Two impaired legs (publisher → SFU → recorder): what the network loses is lost, and video
    // waits for key frames after a loss; the recording goes on throughout.
    assert!(
        seconds > published / 2.0,
        "{seconds} s of video recorded of {published} s"
    );
}

/// A publisher that loses its session and publishes again (a new WHIP session, new SSRCs):
/// its two publications are two files, each playable, the second placed where it began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_reconnects_with_new_ssrcs_is_recorded_on() {
    let d = Deployment::start(2).await;
    let steady = d.participant(1, 14.0);
    d.wait_for_state("STARTED").await;
    let reconnecting = common::participant(
        &d.base,
        &d.conversation,
        &d.tokens[0],
        &["--seconds", "12", "--reconnect-after", "5"],
    );
    finished_participant(reconnecting);
    finished_participant(steady);
    let manifests = stored_as_acknowledged(&d).await;
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let files = manifests[0]["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "steady, before and after: {}", manifests[0]);
    let mut offsets: Vec<i64> = files
        .iter()
        .map(|f| f["offsetMs"].as_i64().unwrap())
        .collect();
    offsets.sort_unstable();
    let gap = offsets[2] - offsets[1];
    eprintln!("reconnection: the new publication's file starts {gap} ms after the first one's");
    assert!(
        (4500..8000).contains(&gap),
        "the second session's file starts {gap} ms after the first: {}",
        manifests[0]
    );
}

/// A shared screen whose resolution changes mid-stream (1280x720 ↔ 320x240 every few
/// seconds): one file, decoded at both sizes without errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_share_that_changes_resolution_stays_one_playable_file() {
    let d = Deployment::start(1).await;
    let sharing = common::participant(
        &d.base,
        &d.conversation,
        &d.tokens[0],
        &["--seconds", "9", "--screen-share", "--video", "resizing"],
    );
    finished_participant(sharing);
    let manifests = stored_as_acknowledged(&d).await;
    let files = manifests[0]["files"].as_array().unwrap();
    let widths: Vec<Vec<u64>> = files
        .iter()
        .map(|f| {
            let mut w =
                convrec_testkit::decoded_frame_widths(&d.object(f["objectKey"].as_str().unwrap()));
            w.dedup();
            w
        })
        .collect();
    eprintln!("resolution change: widths decoded per file, in order: {widths:?}");
    assert!(
        widths.iter().any(|w| w.contains(&1280) && w.contains(&320)),
        "a file holds both sizes: {widths:?}"
    );
}

/// A deployment whose PostgreSQL database it reaches through a proxy the test can cut. (Tests
/// using it are named `the_database_away_…`: `scripts/test.sh` runs them in its first pass only,
/// their servers being on PostgreSQL in every pass.)
async fn with_the_database_behind_a_proxy() -> (Deployment, TcpProxy, TestDatabase) {
    let database = TestDatabase::postgres();
    // postgres://USER:PASSWORD@HOST:PORT/DB, with the proxy for HOST:PORT.
    let url = database.url();
    let (credentials, rest) = url.split_once('@').unwrap();
    let (host, name) = rest.split_once('/').unwrap();
    let proxy = TcpProxy::start(host.parse().unwrap());
    let proxied = format!("{credentials}@{}/{name}", proxy.addr());
    let d = Deployment::start_with(1, json!({}), &[("CONVREC_DATABASE_URL", &proxied)]).await;
    (d, proxy, database)
}

/// The metadata database unreachable while the call ends and its recording is finished: each
/// finishing step (ending the recording, the files' lengths, the manifest, COMPLETE) waits for
/// it, and once it is back the recording completes whole, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_away_when_a_recording_is_finished_delays_it_and_loses_nothing() {
    let (d, proxy, _database) = with_the_database_behind_a_proxy().await;
    let published = 10.0;
    let mut talking = d.participant(0, published);
    d.wait_for_state("STARTED").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.cut();
    // The participant leaves while the database is away (the server cannot take its DELETE, so
    // the participant reports a failure: its media session ends all the same), and the
    // recorder finishes its file.
    let _ = talking.wait();
    // Its media session times out (15 s without packets) while the database is still away.
    tokio::time::sleep(Duration::from_secs(25)).await;
    proxy.restore();
    let restored = Instant::now();
    let manifests = stored_as_acknowledged(&d).await;
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    assert_eq!(manifests[0]["endReason"], "NORMAL", "{}", manifests[0]);
    let log = d.log();
    let waited: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("a recording; trying again"))
        .collect();
    assert!(
        !waited.is_empty(),
        "finishing the recording waited for the database\n{log}"
    );
    let (frames, seconds) = track_of(&d, &manifests[0]["files"][0], "video");
    eprintln!(
        "database away when the recording was finished, first wait: {}",
        waited[0]
    );
    eprintln!(
        "database away when the recording was finished: COMPLETE {:.1} s after it returned; published {published} s, recorded {seconds:.1} s ({frames} frames)",
        restored.elapsed().as_secs_f64()
    );
    assert!(
        seconds > published - 2.0,
        "{seconds} s of video recorded of {published} s\n{}",
        d.log()
    );
    // And the database says the call ended.
    d.wait_until_the_calls_ended().await;
}

/// The metadata database unreachable for 30 s in the middle of a recording (PostgreSQL behind
/// a proxy that is cut: every connection closed, new ones refused): the call and the
/// recording go on from the spool, `/health` says the database is unavailable, API requests
/// are answered 503 with `Retry-After`, and once it is back the recording completes whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_away_for_30_seconds_loses_nothing() {
    let (d, proxy, _database) = with_the_database_behind_a_proxy().await;
    let talking = d.participant(0, 45.0);
    d.wait_for_state("STARTED").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.cut();
    let cut = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, health) = d.health().await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["checks"]["database"], "unavailable", "{health}");
    // A request that needs the database is told to come back, not that the server broke.
    let answer = d
        .http
        .get(format!("{}/v1/conversations/{}", d.base, d.conversation))
        .bearer_auth(&d.tokens[0])
        .send()
        .await
        .unwrap();
    let (status, retry_after) = (
        answer.status().as_u16(),
        answer.headers().get("retry-after").cloned(),
    );
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("DATABASE_UNAVAILABLE")),
        "{body}"
    );
    assert_eq!(retry_after.unwrap(), "5", "{body}");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(cut.elapsed())).await;
    proxy.restore();
    let restored = Instant::now();
    wait_until(
        Duration::from_secs(60),
        async || d.health().await.0 == 200,
        || format!("the server never recovered\n{}", d.log()),
    )
    .await;
    let recovered = restored.elapsed();
    let (_, published) = finished_participant(talking);
    let manifests = stored_as_acknowledged(&d).await;
    assert_eq!(
        manifests.len(),
        1,
        "one recording throughout: {manifests:?}"
    );
    assert_eq!(manifests[0]["endReason"], "NORMAL", "{}", manifests[0]);
    let (frames, seconds) = track_of(&d, &manifests[0]["files"][0], "video");
    eprintln!(
        "database away 30 s: healthy again {:.1} s after it returned; published {published:.1} s, recorded {seconds:.1} s ({frames} frames)",
        recovered.as_secs_f64()
    );
    assert!(
        seconds > published - 2.0,
        "{seconds} s of video recorded of {published} s\n{}",
        d.log()
    );
}
