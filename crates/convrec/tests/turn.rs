//! Isolated media (SPEC §7, the seed's `RELAYED` calls): with a TURN relay configured and
//! forced, participants and recorders reach the SFU only through it. The relay is coturn from
//! Debian, on loopback, checking the time-limited credentials convrec hands out.
#![allow(
    clippy::unwrap_used,
    reason = "tests fail by panicking, with the value in the message"
)]

mod common;

use common::coturn::Coturn;
use common::deployment::Deployment;
use common::{assert_playable, finished_participant};
use serde_json::{Value, json};

/// A participant is told to use nothing but the relay (with credentials of its own), publishes
/// through it, and the recorder receives through it: coturn counts the participant's media
/// going in and the recorder's coming out, and the recording plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_and_recorders_can_be_forced_through_a_turn_relay() {
    let turn = Coturn::start("relay-secret");
    let url = turn.url();
    let env = [
        ("CONVREC_TURN_URL", url.as_str()),
        ("CONVREC_TURN_SECRET", "relay-secret"),
        ("CONVREC_FORCE_RELAY", "true"),
    ];
    let d = Deployment::start_with(1, json!({}), &env).await;
    let ice = d
        .call(
            "GET",
            &format!("/v1/conversations/{}/iceServers", d.conversation),
            &d.tokens[0],
            Value::Null,
        )
        .await;
    assert_eq!(ice["iceTransportPolicy"], "relay", "{ice}");
    assert_eq!(ice["iceServers"][0]["urls"], json!([url]), "{ice}");
    let username = ice["iceServers"][0]["username"].as_str().unwrap();
    let (_, participant) = username.split_once(':').unwrap();
    assert!(participant.starts_with("part_"), "{username}");
    finished_participant(d.participant(0, 4.0));
    let recordings = d.complete_recordings().await;
    assert_eq!(recordings.len(), 1, "{recordings:?}\n{}", d.log());
    assert_eq!(recordings[0]["endReason"], "NORMAL");
    let id = recordings[0]["id"].as_str().unwrap();
    let manifest = d.manifest(id);
    let object = d.object(manifest["files"][0]["objectKey"].as_str().unwrap());
    let seconds = assert_playable(&object, true);
    assert!(seconds > 3.0, "{seconds} s");
    // About 4 s of 240p video and sound: well over 50 kB each way.
    let published = turn.usage_of(participant);
    assert!(
        published.from_client > 50_000,
        "{published:?}\n{}",
        turn.log()
    );
    let recorded = turn.usage_of(id);
    assert!(recorded.to_client > 50_000, "{recorded:?}\n{}", turn.log());
}
