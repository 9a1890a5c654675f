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
use common::{
    KillOnDrop, S3Server, assert_playable, finished_participant, participant, poll_until, serve_in,
    wait_until,
};
use convrec_testkit::TestDatabase;
use serde_json::json;

/// Two nodes sharing one PostgreSQL database and one S3-compatible store, with 2 s leases and
/// 5 MiB parts. The conversation is set up through A (the deployment's server), which hosts it
/// from then on; the deployment's requests then go through B, and so do A's recorders.
struct TwoNodes {
    a: Deployment,
    a_base: String,
    b_base: String,
    b_dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    _b: KillOnDrop,
    s3: S3Server,
    _database: TestDatabase,
}

impl TwoNodes {
    async fn start() -> Self {
        let s3 = S3Server::start("recordings");
        let database = TestDatabase::postgres();
        let mut env = s3.server_env("s3://recordings/convrec");
        env.extend([
            ("CONVREC_DATABASE_URL", database.url()),
            ("CONVREC_NODE_LEASE_SECS", "2".to_owned()),
            ("CONVREC_PART_SIZE_MIB", "5".to_owned()),
        ]);
        let b_dir = tempfile::tempdir().unwrap();
        let mut b_env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        b_env.push(("CONVREC_NODE_ID", "node-b"));
        let (b, b_addr) = serve_in(b_dir.path(), ADMIN_KEY, "server.log", &b_env);
        let b_base = format!("http://{b_addr}");
        env.push(("CONVREC_PUBLIC_URL", b_base.clone()));
        let mut a = Deployment::start_with(2, json!({}), &a_env(&env)).await;
        a.objects = s3.root.path().join("recordings/convrec");
        let a_base = std::mem::replace(&mut a.base, b_base.clone());
        TwoNodes {
            a,
            a_base,
            b_base,
            b_dir,
            env,
            _b: KillOnDrop(b),
            s3,
            _database: database,
        }
    }
}

/// The log of the server whose data directory is `dir`.
fn log_in(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
}

/// A's environment: the shared one with its own node id (B's address is in it for its
/// recorders).
fn a_env<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("CONVREC_NODE_ID", "node-a"));
    env
}

/// Node A hosts the conversation and runs its recording; everything reaches it through node B
/// (the participant's requests and media session, the recorder's entry point). A dies by
/// SIGKILL once a part of the file is in the store: B takes it over within its lease, ends the
/// call, and finishes the recording from the stored parts (`ABORT_SYSTEM`, playable, no upload
/// left open). The conversation goes on on B: a new call is recorded there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_node_dies_another_takes_over_its_recording_and_the_conversation_goes_on() {
    let TwoNodes {
        a: mut d,
        a_base,
        b_base,
        b_dir,
        env,
        s3,
        _b,
        _database,
    } = TwoNodes::start().await;
    let b_log = || log_in(&b_dir);
    let mut talking = participant(
        &d.base,
        &d.conversation,
        &d.tokens[0],
        &["--seconds", "120", "--video", "720p"],
    );
    // A second participant, whose small file has no part in the store when A dies.
    let mut listening = participant(
        &d.base,
        &d.conversation,
        &d.tokens[1],
        &["--seconds", "120"],
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
    wait_until(
        Duration::from_secs(90),
        async || {
            metric_of(&d.http, &a_base, "convrec_upload_parts_total")
                .await
                .is_some_and(|parts| parts >= 1.0)
        },
        || format!("no part uploaded\n{}", d.log()),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A dies.
    d.server.kill().unwrap();
    d.server.wait().unwrap();
    let died = Instant::now();
    // While A is away, only a caller who may see the conversation learns so: a stranger gets
    // the 401 any conversation's path gives it, which tells nothing of which ones exist.
    let path = format!("/v1/conversations/{}", d.conversation);
    let stranger = d.status("GET", &path, "not-a-credential").await;
    let member = d.status("GET", &path, &d.tokens[0]).await;
    assert_eq!(stranger, 401);
    assert!(
        [502, 503, 200].contains(&member),
        "the member learns that A is away (or, once B took it over, is served): {member}"
    );
    for p in [&mut talking, &mut listening] {
        let _ = p.kill();
        let _ = p.wait();
    }
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
    assert_eq!(
        manifest["files"].as_array().unwrap().len(),
        1,
        "only the file with a stored part: {manifest}"
    );
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
    let (a, a_addr) = serve_in(
        d.dir.path(),
        ADMIN_KEY,
        "server-restarted.log",
        &a_env(&env),
    );
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
    let restored = poll_until(
        Duration::from_secs(60),
        async || {
            let manifest = d.manifest(&first);
            let bytes = manifest["files"][0]["bytes"].as_u64().unwrap();
            if bytes > size {
                Ok(bytes)
            } else {
                Err(manifest)
            }
        },
        |manifest| format!("the rest was not stored: {manifest}\n{}", d.log()),
    )
    .await;
    let first_object = d.object(&first_key);
    assert_eq!(std::fs::metadata(&first_object).unwrap().len(), restored);
    let longer = assert_playable(&first_object, true);
    assert!(longer > seconds, "{longer} s now, {seconds} s before");
    // The second participant's file, of which nothing had reached the store, is added.
    let manifest = poll_until(
        Duration::from_secs(30),
        async || {
            let manifest = d.manifest(&first);
            if manifest["files"].as_array().unwrap().len() == 2 {
                Ok(manifest)
            } else {
                Err(manifest)
            }
        },
        |manifest| format!("the second file was not stored: {manifest}\n{}", d.log()),
    )
    .await;
    let added = &manifest["files"][1];
    let added_object = d.object(added["objectKey"].as_str().unwrap());
    assert_eq!(
        added["bytes"].as_u64().unwrap(),
        std::fs::metadata(&added_object).unwrap().len()
    );
    assert!(assert_playable(&added_object, true) > 10.0, "{manifest}");
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

/// A dies before any part of its recording reached the store (a call shorter than one part, as
/// most audio calls are): B takes A over but cannot finish that recording, and leaves it. When A
/// starts again it takes the recording back and finishes it from its spool, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_none_of_which_reached_the_store_is_finished_when_its_node_returns() {
    let TwoNodes {
        a: mut d,
        b_dir,
        env,
        _b,
        _database,
        s3,
        ..
    } = TwoNodes::start().await;
    let mut talking = participant(&d.base, &d.conversation, &d.tokens[0], &["--seconds", "60"]);
    d.wait_for_state("STARTED").await;
    let id = d.recording_id().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    d.server.kill().unwrap();
    d.server.wait().unwrap();
    let _ = talking.kill();
    let _ = talking.wait();
    wait_until(
        Duration::from_secs(30),
        async || log_in(&b_dir).contains("has nothing in the object store"),
        || format!("B did not take A over\n{}", log_in(&b_dir)),
    )
    .await;
    let listed = d
        .call(
            "GET",
            &format!(
                "/v1/conversationhistory/{}/getConversationRecordings",
                d.conversation
            ),
            &d.tokens[0],
            serde_json::Value::Null,
        )
        .await;
    assert_ne!(listed["items"][0]["status"], "COMPLETE", "{listed}");

    let (a, _) = serve_in(
        d.dir.path(),
        ADMIN_KEY,
        "server-restarted.log",
        &a_env(&env),
    );
    let _a = KillOnDrop(a);
    let (object, _) = d.the_one_stored_file(&id, "ABORT_SYSTEM").await;
    let seconds = assert_playable(&object, true);
    assert!(seconds > 4.0, "{seconds} s kept of about 6");
    assert_eq!(s3.unfinished_uploads(), 0, "no upload is left open");
    let restarted = std::fs::read_to_string(d.dir.path().join("server-restarted.log")).unwrap();
    assert!(restarted.contains("taking back a recording"), "{restarted}");
}
