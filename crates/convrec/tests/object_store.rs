//! Recordings in an S3-compatible object store (`s3s-fs`, which checks every request's
//! signature, run on loopback): files go up in parts while they are recorded, an outage of the
//! store is ridden out from the spool up to the configured backlog, and a server that crashes
//! mid-upload resumes the upload from the database after its restart. The same in Azure Blob
//! Storage (Azurite, which checks Shared Key signatures).
#![allow(
    clippy::unwrap_used,
    reason = "tests fail by panicking, with the value in the message"
)]

mod common;

use std::time::Duration;

use common::S3Server;
use common::azurite::Azurite;
use common::deployment::Deployment;
use common::{assert_playable, finished_participant, participant, poll_until};
use serde_json::json;

/// A deployment storing into `s3` under `s3://recordings/convrec`, with 5 MiB parts and `env`.
async fn storing_in(s3: &S3Server, env: &[(&str, &str)]) -> Deployment {
    let mut all = s3.server_env("s3://recordings/convrec");
    all.push(("CONVREC_PART_SIZE_MIB", "5".to_owned()));
    all.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut d = Deployment::start_with(1, json!({}), &all).await;
    d.objects = s3.root.path().join("recordings/convrec");
    d
}

/// Waits (up to `seconds`) until `metric` reaches `at_least`.
async fn wait_for_metric(d: &Deployment, metric: &str, at_least: f64, seconds: u64) {
    poll_until(
        Duration::from_secs(seconds),
        async || {
            let value = d.metric(metric).await.unwrap_or(0.0);
            if value >= at_least {
                Ok(())
            } else {
                Err(value)
            }
        },
        |value| format!("{metric} is {value}, not {at_least}\n{}", d.log()),
    )
    .await;
}

/// A 720p participant (about 2 Mbit/s: a 5 MiB part every 21 s) publishing for `seconds`.
fn hd_participant(d: &Deployment, seconds: u32) -> std::process::Child {
    participant(
        &d.base,
        &d.conversation,
        &d.tokens[0],
        &["--seconds", &seconds.to_string(), "--video", "720p"],
    )
}

/// Recordings stored in an S3-compatible object store (`s3s-fs`, which checks every request's
/// signature): the files and the manifest land in the bucket under the configured prefix, play,
/// and download through their links, served from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_stored_in_an_s3_compatible_object_store() {
    let s3 = S3Server::start("recordings");
    let env = s3.server_env("s3://recordings/convrec");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut d = Deployment::start_with(2, json!({}), &env).await;
    d.objects = s3.root.path().join("recordings/convrec");
    let (a, b) = (d.participant(0, 4.0), d.participant(1, 4.0));
    finished_participant(a);
    finished_participant(b);
    let recordings = d.complete_recordings().await;
    assert_eq!(recordings.len(), 1, "{recordings:?}\n{}", d.log());
    let id = recordings[0]["id"].as_str().unwrap();
    let manifest = d.manifest(id);
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{manifest}");
    for file in files {
        assert_playable(&d.object(file["objectKey"].as_str().unwrap()), true);
    }
    assert!(
        !d.dir.path().join("data/objects").exists(),
        "nothing is stored in the data directory"
    );
    let link = recordings[0]["downloadLinks"][0].as_str().unwrap();
    let downloaded = d.http.get(link).send().await.unwrap();
    assert_eq!(downloaded.status(), 200);
    let bytes = downloaded.bytes().await.unwrap();
    let stored: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(d.object(f["objectKey"].as_str().unwrap())).unwrap())
        .collect();
    assert!(
        stored.iter().any(|s| s[..] == bytes[..]),
        "the link serves a stored file's bytes"
    );
    let (status, health) = d.health().await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["checks"]["objectStore"], "ok", "{health}");
    // The store goes away: the node says it is not ready, and names why.
    drop(s3);
    let (status, health) = d.health().await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(
        health,
        json!({"status": "unavailable", "checks": {"database": "ok", "objectStore": "unavailable"}})
    );
}

/// The store goes away during a recording, while the first part falls due: the recording goes
/// on from the spool, the part goes up when the store is back; then the server crashes with the
/// upload open, and after its restart the upload is resumed from its recorded parts and
/// completed. The object holds the whole file the spool acknowledged, and plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_and_a_server_crash_mid_upload_lose_nothing() {
    let mut s3 = S3Server::start("recordings");
    let mut d = storing_in(&s3, &[]).await;
    let mut talking = hd_participant(&d, 90);
    d.wait_for_state("STARTED").await;
    let id = d.recording_id().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    s3.stop();
    // More than a part waits: the part fell due and could not go up.
    wait_for_metric(&d, "convrec_upload_backlog_bytes", 5.5 * 1048576.0, 60).await;
    assert_eq!(d.state().await, "STARTED", "the recording goes on");
    let (status, _) = d.health().await;
    assert_eq!(status, 503);
    assert_eq!(d.metric("convrec_upload_parts_total").await, Some(0.0));
    s3.restart();
    let back = std::time::Instant::now();
    wait_for_metric(&d, "convrec_upload_parts_total", 1.0, 90).await;
    eprintln!(
        "object store away: the first waiting part stored {:.1} s after the store came back",
        back.elapsed().as_secs_f64()
    );
    assert!(
        d.metric("convrec_upload_backlog_bytes").await.unwrap() < 5.0 * 1048576.0,
        "the part left the backlog"
    );
    // A crash with the first part stored and the rest of the file in the spool.
    d.crash_and_restart();
    let _ = talking.kill();
    let _ = talking.wait();
    let (object, size) = d.the_one_stored_file(&id, "ABORT_SYSTEM").await;
    assert!(size > 5 << 20, "{size} bytes: more than the first part");
    let length = assert_playable(&object, true);
    eprintln!(
        "object store away, then a server crash: {size} bytes stored, as acknowledged; {length:.1} s of video"
    );
    assert!(length > 20.0, "{length} s recorded");
    assert_eq!(s3.unfinished_uploads(), 0, "no upload is left open");
    assert!(
        d.log().contains("parts_uploaded=1"),
        "the restart resumed the upload from its stored part\n{}",
        d.log()
    );
}

/// The store forgets an upload mid-recording (a lifecycle rule expired it, or someone aborted
/// it): the next part is refused as unknown, the file's upload starts over from the spool's
/// first byte, and the object holds the whole file, which plays. The backlog drains to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_the_store_forgot_is_started_over_from_the_spool() {
    let d = Deployment::start_with(1, json!({}), &[("CONVREC_PART_SIZE_MIB", "5")]).await;
    let talking = hd_participant(&d, 50);
    d.wait_for_state("STARTED").await;
    let id = d.recording_id().await;
    wait_for_metric(&d, "convrec_upload_parts_total", 1.0, 60).await;
    // The local store keeps an unfinished upload's parts in a directory of its own.
    let uploads = d.objects.join(".uploads");
    let forgotten: Vec<_> = std::fs::read_dir(&uploads)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(forgotten.len(), 1, "{forgotten:?}");
    std::fs::remove_dir_all(&forgotten[0]).unwrap();
    finished_participant(talking);
    let (object, size) = d.the_one_stored_file(&id, "NORMAL").await;
    let log = d.log();
    assert!(
        log.contains("the store no longer knows the upload; starting it over"),
        "{log}"
    );
    assert!(
        size > 10 << 20,
        "{size} bytes: the whole file, parts sent before included"
    );
    // It plays, so its first part (the init segment) went up again.
    let length = assert_playable(&object, true);
    assert!(length > 40.0, "{length} s recorded");
    eprintln!(
        "the store forgot an upload: the file went up again, {size} bytes, {length:.1} s of video"
    );
    assert_eq!(d.metric("convrec_upload_backlog_bytes").await, Some(0.0));
}

/// The store stays away: once the spool holds the configured backlog, the recording ends as
/// `ABORT_BLOBSTORE_FAILURE`, and what it acknowledged is stored when the store returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_backlog_limit_the_recording_fails_clearly_and_keeps_what_it_had() {
    let mut s3 = S3Server::start("recordings");
    let d = storing_in(&s3, &[("CONVREC_MAX_BACKLOG_MIB", "5")]).await;
    let mut talking = hd_participant(&d, 90);
    d.wait_for_state("STARTED").await;
    s3.stop();
    d.wait_for_state("FAILED").await;
    let log = d.log();
    assert!(
        log.contains("the object store is not taking uploads and the spool holds all it may"),
        "{log}"
    );
    let backlog = d.metric("convrec_upload_backlog_bytes").await.unwrap();
    assert!(backlog > 4.0 * 1048576.0, "{backlog} bytes wait");
    s3.restart();
    let recordings = d.complete_recordings().await;
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    assert_eq!(recordings[0]["endReason"], "ABORT_BLOBSTORE_FAILURE");
    let manifest = d.manifest(recordings[0]["id"].as_str().unwrap());
    let object = d.object(manifest["files"][0]["objectKey"].as_str().unwrap());
    let length = assert_playable(&object, true);
    assert!(length > 15.0, "{length} s kept");
    assert_eq!(s3.unfinished_uploads(), 0);
    let _ = talking.kill();
    let _ = talking.wait();
}

/// Recordings stored in Azure Blob Storage (Azurite, Microsoft's emulator, which checks every
/// request's Shared Key signature): a file of more than one part goes up as blocks while it is
/// recorded and is committed at the end; its download link serves it from the store, and it
/// plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_stored_in_azure_blob_storage() {
    let azurite = Azurite::start("recordings");
    let mut env = azurite.server_env("az://recordings/convrec");
    env.push(("CONVREC_PART_SIZE_MIB", "5".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let d = Deployment::start_with(1, json!({}), &env).await;
    let (status, health) = d.health().await;
    assert_eq!(status, 200, "{health}");
    finished_participant(hd_participant(&d, 26));
    let recordings = d.complete_recordings().await;
    assert_eq!(recordings.len(), 1, "{recordings:?}\n{}", d.log());
    let parts = d.metric("convrec_upload_parts_total").await.unwrap();
    assert!(
        parts >= 2.0,
        "{parts} parts: one while recording, the rest at the end"
    );
    assert!(
        !d.dir.path().join("data/objects").exists(),
        "nothing is stored in the data directory"
    );
    let link = recordings[0]["downloadLinks"][0].as_str().unwrap();
    let downloaded = d.http.get(link).send().await.unwrap();
    assert_eq!(downloaded.status(), 200);
    let bytes = downloaded.bytes().await.unwrap();
    assert!(bytes.len() > 5 << 20, "{} bytes", bytes.len());
    let file = d.dir.path().join("downloaded.mp4");
    std::fs::write(&file, &bytes).unwrap();
    let length = assert_playable(&file, true);
    assert!(length > 20.0, "{length} s recorded");
}
