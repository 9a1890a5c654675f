//! Two server nodes sharing one PostgreSQL database and one S3-compatible store (`s3s-fs`), on
//! loopback: any node answers for any conversation (requests, event streams and the recorder's
//! WebSocket are forwarded to the node hosting it), and when that node dies the other takes its
//! work over and the conversation goes on there.
#![allow(
    clippy::unwrap_used,
    reason = "tests fail by panicking, with the value in the message"
)]

mod common;

use std::time::{Duration, Instant};

use common::deployment::{ADMIN_KEY, Deployment, metric_of};
use common::{KillOnDrop, S3Server, assert_playable, finished_participant, participant, serve_in};
use convrec_testkit::TestDatabase;
use serde_json::json;

/// Node A hosts the conversation and runs its recording; everything reaches it through node B
/// (the participant's requests and media session, the recorder's entry point). A dies by
/// SIGKILL once a part of the file is in the store: B takes it over within its lease, ends the
/// call, and finishes the recording from the stored parts (`ABORT_SYSTEM`, playable, no upload
/// left open). The conversation goes on on B: a new call is recorded there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_node_dies_another_takes_over_its_recording_and_the_conversation_goes_on() {
    let s3 = S3Server::start("recordings");
    let database = TestDatabase::postgres();
    let url = database.url();
    let common_env = |node: &str| {
        let mut env = s3.server_env("s3://recordings/convrec");
        env.extend([
            ("CONVREC_DATABASE_URL", url.clone()),
            ("CONVREC_NODE_ID", node.to_owned()),
            ("CONVREC_NODE_LEASE_SECS", "2".to_owned()),
            ("CONVREC_PART_SIZE_MIB", "5".to_owned()),
        ]);
        env
    };
    let b_dir = tempfile::tempdir().unwrap();
    let b_env = common_env("node-b");
    let b_env: Vec<(&str, &str)> = b_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (b, b_addr) = serve_in(b_dir.path(), ADMIN_KEY, "server.log", &b_env);
    let _b = KillOnDrop(b);
    let b_base = format!("http://{b_addr}");
    // A's recorders are told to reach it through B.
    let mut a_env = common_env("node-a");
    a_env.push(("CONVREC_PUBLIC_URL", b_base.clone()));
    let a_env: Vec<(&str, &str)> = a_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The conversation is set up through A, which hosts it from then on.
    let mut d = Deployment::start_with(2, json!({}), &a_env).await;
    d.objects = s3.root.path().join("recordings/convrec");
    let a_base = d.base.clone();
    let b_log = || std::fs::read_to_string(b_dir.path().join("server.log")).unwrap_or_default();
    // From now on everything goes through B.
    d.base = b_base.clone();
    let mut talking = participant(
        &d.base,
        &d.conversation,
        &d.tokens[0],
        &["--seconds", "120", "--video", "720p"],
    );
    d.wait_for_state("STARTED").await;
    let first = d.recording_id().await;
    // A client cannot pass for a node to be served where it lands: B still forwards a request
    // that names a node without that node's proof (served on B, it would see no running
    // recording).
    let forged = d
        .http
        .post(format!(
            "{}/v1/conversations/{}/getRecordingState",
            d.base, d.conversation
        ))
        .bearer_auth(&d.tokens[0])
        .header("x-convrec-forwarded-by", "node-a")
        .send()
        .await
        .unwrap();
    let forged: serde_json::Value = forged.json().await.unwrap();
    assert_eq!(forged["recordingState"], "STARTED", "{forged}");
    let a_log = d.log();
    assert!(
        a_log.contains("recording starts"),
        "A runs the recording\n{a_log}"
    );
    assert!(
        !b_log().contains("recording starts"),
        "B does not\n{}",
        b_log()
    );
    // A part (5 MiB: about 21 s of 720p) reaches the store.
    let deadline = Instant::now() + Duration::from_secs(90);
    while metric_of(&d.http, &a_base, "convrec_upload_parts_total")
        .await
        .unwrap_or(0.0)
        < 1.0
    {
        assert!(Instant::now() < deadline, "no part uploaded\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A dies.
    d.server.kill().unwrap();
    d.server.wait().unwrap();
    let died = Instant::now();
    let _ = talking.kill();
    let _ = talking.wait();
    let recordings = d.complete_recordings().await;
    let taken_over_in = died.elapsed();
    assert_eq!(recordings.len(), 1, "{recordings:?}\n{}", b_log());
    assert_eq!(recordings[0]["id"], first.as_str());
    assert_eq!(recordings[0]["endReason"], "ABORT_SYSTEM");
    assert!(
        b_log().contains("taking it over"),
        "B took A over\n{}",
        b_log()
    );
    let manifest = d.manifest(&first);
    let file = &manifest["files"][0];
    let first_key = file["objectKey"].as_str().unwrap().to_owned();
    let object = d.object(&first_key);
    let size = std::fs::metadata(&object).unwrap().len();
    assert_eq!(file["bytes"], size, "{manifest}");
    assert!(size >= 5 << 20, "at least the stored part: {size} bytes");
    assert_eq!(file["indexed"], false, "{manifest}");
    let seconds = assert_playable(&object, true);
    assert!(seconds > 15.0, "{seconds} s of the recording were kept");
    assert_eq!(s3.unfinished_uploads(), 0, "no upload is left open");
    d.wait_until_the_calls_ended().await;
    // The conversation goes on on B: a new call, recorded there.
    let again = finished_participant(participant(
        &d.base,
        &d.conversation,
        &d.tokens[1],
        &["--seconds", "4"],
    ));
    let recordings = d.complete_recordings().await;
    assert_eq!(
        recordings.len(),
        2,
        "{recordings:?}\n{again:?}\n{}",
        b_log()
    );
    let second = recordings
        .iter()
        .find(|r| r["id"] != first.as_str())
        .unwrap();
    let manifest = d.manifest(second["id"].as_str().unwrap());
    let object = d.object(manifest["files"][0]["objectKey"].as_str().unwrap());
    assert!(assert_playable(&object, true) > 3.0);
    assert!(b_log().contains("recording starts"), "B runs it");
    // A comes back: it serves the download links B made (the nodes share the key that signs
    // them).
    let (a, a_addr) = serve_in(d.dir.path(), ADMIN_KEY, "server-restarted.log", &a_env);
    let _a = KillOnDrop(a);
    let link = second["downloadLinks"][0].as_str().unwrap();
    let through_a = link.replace(&b_base, &format!("http://{a_addr}"));
    assert_ne!(through_a, link);
    let downloaded = d.http.get(&through_a).send().await.unwrap();
    assert_eq!(downloaded.status(), 200, "{through_a}");
    assert_eq!(
        downloaded.bytes().await.unwrap().len(),
        usize::try_from(std::fs::metadata(&object).unwrap().len()).unwrap()
    );
    // And it stores the rest of the first recording, which only its spool held.
    let deadline = Instant::now() + Duration::from_secs(60);
    let restored = loop {
        let manifest = d.manifest(&first);
        let bytes = manifest["files"][0]["bytes"].as_u64().unwrap();
        if bytes > size {
            break bytes;
        }
        assert!(
            Instant::now() < deadline,
            "the rest was not stored: {manifest}\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let first_object = d.object(&first_key);
    assert_eq!(std::fs::metadata(&first_object).unwrap().len(), restored);
    let longer = assert_playable(&first_object, true);
    assert!(longer > seconds, "{longer} s now, {seconds} s before");
    let recordings = d.complete_recordings().await;
    assert_eq!(recordings.len(), 2, "{recordings:?}");
    assert_eq!(
        recordings
            .iter()
            .find(|r| r["id"] == first.as_str())
            .unwrap()["endReason"],
        "ABORT_SYSTEM"
    );
    eprintln!("B finished A's recording {taken_over_in:?} after A died (lease 2 s)");
}
