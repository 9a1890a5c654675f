//! Isolated media (SPEC §7, the seed's `RELAYED` calls): with a TURN relay configured and
//! forced, participants and recorders reach the SFU only through it. The relay is coturn from
//! Debian, on loopback, checking the time-limited credentials convrec hands out; browsers are
//! Debian's Chromium.
#![allow(
    clippy::unwrap_used,
    reason = "tests fail by panicking, with the value in the message"
)]

mod common;

use std::time::Duration;

use common::chromium::Chromium;
use common::coturn::Coturn;
use common::deployment::Deployment;
use common::{assert_playable, finished_participant, wait_until};
use serde_json::{Value, json};

/// A deployment that hands out the relay at `urls` (comma-separated) and forces it.
async fn forced_through(urls: &str) -> Deployment {
    let env = [
        ("CONVREC_TURN_URL", urls),
        ("CONVREC_TURN_SECRET", "relay-secret"),
        ("CONVREC_FORCE_RELAY", "true"),
    ];
    Deployment::start_with(1, json!({}), &env).await
}

/// What `GET …/iceServers` tells participant `n`, and the participant's id (the user name's
/// part after the expiry).
async fn ice_servers_of(d: &Deployment, n: usize) -> (Value, String) {
    let ice = d
        .call(
            "GET",
            &format!("/v1/conversations/{}/iceServers", d.conversation),
            &d.tokens[n],
            Value::Null,
        )
        .await;
    let username = ice["iceServers"][0]["username"].as_str().unwrap();
    let (_, participant) = username.split_once(':').unwrap();
    assert!(participant.starts_with("part_"), "{username}");
    let participant = participant.to_owned();
    (ice, participant)
}

/// The one recording of `d`, complete and `NORMAL`: the seconds of video its file plays, and
/// the recording's id.
async fn the_recording(d: &Deployment) -> (f64, String) {
    let recordings = d.complete_recordings().await;
    assert_eq!(recordings.len(), 1, "{recordings:?}\n{}", d.log());
    assert_eq!(recordings[0]["endReason"], "NORMAL");
    let id = recordings[0]["id"].as_str().unwrap().to_owned();
    let manifest = d.manifest(&id);
    let object = d.object(manifest["files"][0]["objectKey"].as_str().unwrap());
    (assert_playable(&object, true), id)
}

/// A participant is told to use nothing but the relay (with credentials of its own), publishes
/// through it, and the recorder receives through it: coturn counts the participant's media
/// going in and the recorder's coming out, and the recording plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_and_recorders_can_be_forced_through_a_turn_relay() {
    let turn = Coturn::start("relay-secret");
    let url = turn.url();
    let d = forced_through(&url).await;
    let (ice, participant) = ice_servers_of(&d, 0).await;
    assert_eq!(ice["iceTransportPolicy"], "relay", "{ice}");
    assert_eq!(ice["iceServers"][0]["urls"], json!([url]), "{ice}");
    finished_participant(d.participant(0, 4.0));
    let (seconds, id) = the_recording(&d).await;
    assert!(seconds > 3.0, "{seconds} s");
    // About 4 s of 240p video and sound: well over 50 kB each way.
    let published = turn.usage_of(&participant);
    assert!(
        published.from_client > 50_000,
        "{published:?}\n{}",
        turn.log()
    );
    let recorded = turn.usage_of(&id);
    assert!(recorded.to_client > 50_000, "{recorded:?}\n{}", turn.log());
}

/// Wraps the page's `RTCPeerConnection` so that it is given the relay's TCP URLs only, as a
/// network that lets no UDP out would leave it, and keeps each connection in
/// `window.tcpOnlyPeers` for its statistics.
const TCP_ONLY: &str = r#"(() => {
  const Native = window.RTCPeerConnection;
  window.tcpOnlyPeers = [];
  window.RTCPeerConnection = function (configuration) {
    const iceServers = (configuration?.iceServers ?? []).map((server) => ({
      ...server,
      urls: [].concat(server.urls).filter((url) => url.endsWith('?transport=tcp')),
    }));
    const peer = new Native({ ...configuration, iceServers });
    window.tcpOnlyPeers.push(peer);
    return peer;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();"#;

/// The candidate types and relay protocols of the pairs the page's connections use.
const PATHS_IN_USE: &str = r#"(async () => {
  const paths = [];
  for (const peer of window.tcpOnlyPeers) {
    const stats = await peer.getStats();
    stats.forEach((pair) => {
      if (pair.type === 'candidate-pair' && pair.nominated && pair.state === 'succeeded') {
        const local = stats.get(pair.localCandidateId);
        paths.push(`${local.candidateType}/${local.relayProtocol}`);
      }
    });
  }
  return paths;
})()"#;

/// A browser whose network lets no UDP out (it is handed the relay's TCP URL only) joins a
/// call through the relay over TCP, while the recorder reaches the relay over UDP: the
/// browser's connection runs over a TCP relay candidate, coturn counts its media going in,
/// and the recording of it plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_that_cannot_use_udp_is_relayed_over_tcp() {
    let turn = Coturn::start_with_tcp("relay-secret");
    let (udp, tcp) = (turn.url(), turn.tcp_url());
    let d = forced_through(&format!("{udp},{tcp}")).await;
    let (ice, participant) = ice_servers_of(&d, 0).await;
    assert_eq!(ice["iceServers"][0]["urls"], json!([udp, tcp]), "{ice}");
    let browser = Chromium::open("about:blank");
    browser.cdp("Page.enable", json!({})).await;
    browser
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": TCP_ONLY }),
        )
        .await;
    browser
        .navigate(&format!(
            "{}/web/conversation.html#conversation={}&token={}",
            d.base, d.conversation, d.tokens[0]
        ))
        .await;
    browser
        .wait_for("the page is ready", "window.convrec.ready")
        .await;
    browser
        .gesture("document.getElementById('join').click()")
        .await;
    browser
        .wait_for(
            "the browser publishes",
            "Object.keys(window.convrec.sending).length === 1",
        )
        .await;
    d.wait_for_state("STARTED").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let paths = browser.evaluate(PATHS_IN_USE).await;
    let in_use = paths.as_array().filter(|p| !p.is_empty());
    assert!(
        in_use.is_some_and(|p| p.iter().all(|path| path == "relay/tcp")),
        "the browser's connections run over {paths}"
    );
    browser
        .gesture("document.getElementById('leave').click()")
        .await;
    // Closing the browser closes its TCP connection to the relay, which ends the allocation.
    drop(browser);
    let (seconds, _) = the_recording(&d).await;
    assert!(seconds > 2.0, "{seconds} s");
    // Its allocations end as the browser's TCP connections close.
    wait_until(
        Duration::from_secs(20),
        async || {
            let usages = turn.usages_of(&participant);
            usages.iter().map(|u| u.from_client).sum::<u64>() > 50_000
        },
        || {
            format!(
                "the browser's media did not go into the relay\n{}",
                turn.log()
            )
        },
    )
    .await;
}
