//! A recorder session against the real parts of the server side: the SFU room answers its
//! subscriptions, a spool makes each block durable before it is acknowledged, and two synthetic
//! participants publish over real WebRTC (two publications: two WebRTC sessions, which must not
//! get mixed up). The file in the spool must play, and the session must
//! go greeting → ready → recording → done. (The server crate will own this glue; until it
//! exists, the test plays the server's part of the entry-point protocol with those parts.)
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::time::{Duration, Instant};

use convrec_compose::layout::{Canvas, Scene, arrange};
use convrec_core::recorder_protocol::{Composition, FromRecorder, FromServer, PublicationInfo};
use convrec_media::source::synthetic::{SourceEvent, SyntheticConfig, SyntheticSource};
use convrec_media::timeline::MediaKind;
use convrec_recorder::session::{Phase, RecorderSession};
use convrec_rtc::client::{Client, ClientEvent};
use convrec_rtc::driver;
use convrec_rtc::room::{Room, RoomEvent};
use convrec_store::spool::SpoolFile;
use convrec_testkit::*;
use tokio::net::UdpSocket;

async fn bind() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// How the test's server side answers the recorder's blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// Makes each durable and acknowledges it, and stops the recording after 4 s.
    Acknowledging,
    /// Makes each durable and acknowledges none (its disk "stalls"); the recorder, which holds
    /// at most `SILENT_LIMIT` bytes unacknowledged, must fail.
    Silent,
}

const SILENT_LIMIT: u64 = 48 << 10;

/// What a recorder did: the spool's files by number, with their publications, and why it
/// failed, if it did.
type Recorded = (
    tempfile::TempDir,
    std::collections::BTreeMap<u32, Option<String>>,
    Option<String>,
);

/// Two synthetic participants publish for 6 s into a room; a recorder records them (raw, or
/// composed with `composition`) for 4 s, to a `server`.
async fn record_two_publications(composition: Option<Composition>, server: Server) -> Recorded {
    let room_socket = bind().await;
    let room_addr = room_socket.local_addr().unwrap();
    let (room, mut room_events) = driver::spawn(room_socket, Room::new(room_addr)).unwrap();

    // Two participants publish: different pictures, so the files can be told apart.
    let fixtures = ["cbp-320x240-30fps.h264", "main-resolution-change.h264"];
    let mut publisher_ids = Vec::new();
    let mut publishing = Vec::new();
    for fixture in fixtures {
        let socket = bind().await;
        let (client, offer) = Client::publisher(
            Instant::now(),
            socket.local_addr().unwrap(),
            &[MediaKind::Audio, MediaKind::Video],
        )
        .unwrap();
        let (publisher_id, answer) = room
            .call(move |r, now| r.publish(now, &offer))
            .await
            .unwrap()
            .unwrap();
        let (publisher, mut events) = driver::spawn(socket, client).unwrap();
        publisher
            .call(move |c, _| c.accept_answer(&answer))
            .await
            .unwrap()
            .unwrap();
        while let Some(event) = room_events.recv().await {
            if matches!(event, RoomEvent::PublicationStarted { publisher, .. } if publisher == publisher_id)
            {
                break;
            }
        }
        publisher_ids.push(publisher_id);
        publishing.push(tokio::spawn(async move {
            let mut source = SyntheticSource::new(
                SyntheticConfig::default(),
                video_fixture(fixture),
                opus_fixture(),
            );
            let start = tokio::time::Instant::now();
            loop {
                while let Ok(event) = events.try_recv() {
                    if event == ClientEvent::KeyframeRequested {
                        source.request_keyframe();
                    }
                }
                let (at, event) = source.next_event();
                if at >= Duration::from_secs(6) {
                    return;
                }
                tokio::time::sleep_until(start + at).await;
                if let SourceEvent::Frame(kind, frame) = event {
                    let captured = start.into_std() + at;
                    publisher
                        .call(move |c, _| {
                            c.write(captured, kind, u64::from(frame.rtp_time), &frame.data)
                        })
                        .await
                        .unwrap()
                        .unwrap();
                }
            }
        }));
    }

    // The recorder; its driver binds a socket per WebRTC session.
    let session = match server {
        Server::Acknowledging => RecorderSession::new(),
        Server::Silent => RecorderSession::with_max_unacknowledged(SILENT_LIMIT),
    };
    let (recorder, mut messages) = driver::spawn(bind().await, session).unwrap();

    // The server's side of the entry point.
    let dir = tempfile::tempdir().unwrap();
    let publication = |n: usize| PublicationInfo {
        publication_id: format!("pub-{n}"),
        interaction_id: "call-1".into(),
        interaction_type: "CALL".into(),
        participant_id: format!("participant-{n}"),
        participant_name: format!("Participant {n}"),
        audio: true,
        video: true,
        started_at_ms: 0,
    };
    let mut spools: std::collections::BTreeMap<u32, (Option<String>, SpoolFile)> =
        Default::default();
    let mut seen = Vec::new();
    let mut ready = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let stop_at = tokio::time::Instant::now() + Duration::from_secs(4);
    let mut stop_sent = server == Server::Silent;
    let mut failure = None;
    // The acknowledgement of each file's last block (its index) is held back: `done` must wait.
    let mut held_acks: Vec<(u32, u64)> = Vec::new();
    let mut release_at: Option<tokio::time::Instant> = None;
    let mut last_acks_sent = false;
    let reply = |message: FromServer| {
        let recorder = recorder.clone();
        async move {
            recorder
                .call(move |s, now| s.handle_server(now, message))
                .await
                .unwrap()
        }
    };
    loop {
        let message = tokio::select! {
            m = messages.recv() => m.expect("recorder messages"),
            () = async { tokio::time::sleep_until(release_at.unwrap()).await }, if release_at.is_some() => {
                release_at = None;
                last_acks_sent = true;
                for (file, seq) in std::mem::take(&mut held_acks) {
                    reply(FromServer::Ack { file, seq }).await;
                }
                continue;
            }
            () = tokio::time::sleep_until(stop_at), if !stop_sent => {
                stop_sent = true;
                reply(FromServer::Stop { reason: "NORMAL".into() }).await;
                continue;
            }
            () = tokio::time::sleep_until(deadline) => panic!("the recorder did not finish; it said {seen:?}"),
        };
        let kind = match &message {
            FromRecorder::Block { .. } => "block".to_owned(),
            other => format!("{other:?}")
                .split([' ', '{'])
                .next()
                .unwrap()
                .to_owned(),
        };
        if seen.last() != Some(&kind) {
            seen.push(kind);
        }
        match message {
            FromRecorder::Hello { protocol } => {
                assert_eq!(protocol, 1);
                reply(FromServer::Welcome {
                    recording_id: "rec-1".into(),
                    conversation_id: "conv-1".into(),
                    recording_type: "AUDIO_VIDEO".into(),
                    publications: vec![publication(0), publication(1)],
                    composition,
                    relay: None,
                })
                .await;
            }
            FromRecorder::Subscribe {
                publication_id,
                offer,
            } => {
                let n: usize = publication_id
                    .strip_prefix("pub-")
                    .unwrap()
                    .parse()
                    .unwrap();
                let publisher_id = publisher_ids[n];
                let (_, answer) = room
                    .call(move |r, now| r.subscribe(now, publisher_id, &offer))
                    .await
                    .unwrap()
                    .unwrap();
                reply(FromServer::Subscribed {
                    publication_id,
                    answer,
                })
                .await;
            }
            FromRecorder::Ready {} => ready = true,
            FromRecorder::FileStarted {
                file,
                publication_id,
            } => {
                let spool =
                    SpoolFile::create(&dir.path().join(format!("file-{file}.mp4")), None).unwrap();
                spools.insert(file, (publication_id, spool));
            }
            FromRecorder::Block { file, seq, bytes } => {
                let (_, spool) = spools.get_mut(&file).expect("fileStarted comes first");
                let ack = spool.append(seq, &bytes).unwrap();
                if server == Server::Silent {
                    continue;
                }
                if convrec_media::layout::classify_block(&bytes)
                    == Ok(convrec_media::layout::BlockKind::Index)
                {
                    held_acks.push((file, ack.seq));
                    release_at
                        .get_or_insert(tokio::time::Instant::now() + Duration::from_millis(300));
                } else {
                    reply(FromServer::Ack { file, seq: ack.seq }).await;
                }
            }
            FromRecorder::Done { files } => {
                assert!(
                    last_acks_sent,
                    "done came before the last blocks were acknowledged"
                );
                assert_eq!(files.len(), if composition.is_some() { 1 } else { 2 });
                for summary in &files {
                    let (_, spool) = &spools[&summary.file];
                    assert_eq!(summary.blocks, spool.next_seq());
                    assert_eq!(summary.bytes, spool.len());
                    assert!(spool.is_finished(), "file {} has its index", summary.file);
                }
                break;
            }
            FromRecorder::Failed { reason } if server == Server::Silent => {
                failure = Some(reason);
                // Nothing follows: the session makes no block once it failed.
                let after = tokio::time::timeout(Duration::from_secs(1), messages.recv()).await;
                assert!(
                    matches!(after, Err(_) | Ok(None)),
                    "after failing, the recorder said {after:?}"
                );
                break;
            }
            FromRecorder::Failed { reason } => panic!("the recorder failed: {reason}"),
        }
    }
    for task in publishing {
        task.abort();
    }
    assert!(ready, "the recorder reported ready");
    let phase = recorder.call(|s, _| s.phase()).await.unwrap();
    match server {
        Server::Acknowledging => assert_eq!(phase, Phase::Done),
        Server::Silent => assert_eq!(phase, Phase::Failed),
    }
    assert_eq!(
        seen[..4],
        ["Hello", "Subscribe", "Ready", "FileStarted"],
        "{seen:?}"
    );

    let files = spools.into_iter().map(|(n, (p, _))| (n, p)).collect();
    (dir, files, failure)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_records_two_publications_into_durable_playable_files() {
    let (dir, spools, _) = record_two_publications(None, Server::Acknowledging).await;
    // Each file holds its own publication: 320 pixels wide throughout, or 320 then 480.
    for (file, publication_id) in &spools {
        let publication_id = publication_id.as_deref().unwrap_or_default();
        let path = dir.path().join(format!("file-{file}.mp4"));
        assert_eq!(ffmpeg_decode_errors(&path), "", "{publication_id}");
        let probe = ffprobe(&path);
        let (video, audio) = (stream(&probe, "video"), stream(&probe, "audio"));
        assert!(
            media_length(video) > 3.0,
            "{publication_id}: video lasts {} s",
            media_length(video)
        );
        assert!(
            media_length(audio) > 3.0,
            "{publication_id}: audio lasts {} s",
            media_length(audio)
        );
        let widths = decoded_frame_widths(&path);
        let wide = widths.iter().filter(|&&w| w == 480).count();
        match publication_id {
            "pub-0" => assert_eq!(wide, 0, "pub-0 is the 320x240 fixture"),
            _ => assert!(wide > 0, "pub-1 switches to 480x270 after 2 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composing_recorder_makes_one_file_with_one_picture_and_one_sound() {
    let composition = Composition {
        width: Some(640),
        height: Some(360),
        fps: 15,
        video_bitrate: 500_000,
        audio_bitrate: 48_000,
    };
    let (dir, files, _) = record_two_publications(Some(composition), Server::Acknowledging).await;
    assert_eq!(files.len(), 1, "{files:?}");
    let (file, publication) = files.iter().next().unwrap();
    assert_eq!(
        *publication, None,
        "the composed file is of no one publication"
    );
    let path = dir.path().join(format!("file-{file}.mp4"));
    assert_eq!(ffmpeg_decode_errors(&path), "");
    let probe = ffprobe(&path);
    let (video, audio) = (stream(&probe, "video"), stream(&probe, "audio"));
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(audio["codec_name"], "opus");
    assert_eq!(audio["channels"].as_u64(), Some(1), "one mixed sound");
    assert_eq!(probe["streams"].as_array().unwrap().len(), 2);
    assert!(
        media_length(video) > 3.0,
        "video lasts {} s",
        media_length(video)
    );
    assert!(
        media_length(audio) > 3.0,
        "audio lasts {} s",
        media_length(audio)
    );
    // Both participants are in the picture at 2.5 s: each camera tile shows its moving test
    // pattern, not a flat placeholder.
    let out = tool("ffmpeg")
        .args(["-v", "error", "-ss", "2.5", "-i"])
        .arg(&path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let canvas = Canvas {
        width: 640,
        height: 360,
    };
    let scene = Scene {
        cameras: 2,
        screen: false,
        speaker: None,
    };
    for tile in arrange(canvas, &scene) {
        let r = tile.rect.fit(320, 240);
        let values: Vec<f64> = (r.y..r.bottom() - 24)
            .flat_map(|y| (r.x..r.right()).map(move |x| (x, y)))
            .map(|(x, y)| f64::from(out.stdout[(y * 640 + x) as usize]))
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let spread =
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
        assert!(
            spread > 10.0,
            "{:?} is flat (spread {spread:.1}): a placeholder, not a camera",
            tile.content
        );
    }
}

/// A server that takes blocks and acknowledges none (its spool's disk stalled): the recorder
/// does not hold them in memory without end. Once what it made passes its limit it fails and
/// says why, having handed out no more than the limit, and makes nothing after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_whose_blocks_are_never_acknowledged_fails_at_its_limit() {
    let (dir, files, failure) = record_two_publications(None, Server::Silent).await;
    let reason = failure.expect("the recorder failed");
    let unacknowledged: u64 = reason
        .strip_prefix("the server has not acknowledged ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(unacknowledged > SILENT_LIMIT, "{reason}");
    assert!(reason.ends_with("it is not keeping up"), "{reason}");
    let handed_out: u64 = files
        .keys()
        .map(|file| {
            let path = dir.path().join(format!("file-{file}.mp4"));
            std::fs::metadata(path).unwrap().len()
        })
        .sum();
    assert!(
        (1..=SILENT_LIMIT).contains(&handed_out),
        "{handed_out} bytes handed out"
    );
}
