//! A recorder session against the real parts of the server side: the SFU room answers its
//! subscriptions, a spool makes each block durable before it is acknowledged, and a synthetic
//! participant publishes over real WebRTC. The file in the spool must play, and the session must
//! go greeting → ready → recording → done. (The server crate will own this glue; until it
//! exists, the test plays the server's part of the entry-point protocol with those parts.)
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::time::{Duration, Instant};

use convrec_core::recorder_protocol::{FromRecorder, FromServer, PublicationInfo};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_records_a_publication_into_a_durable_playable_file() {
    // The room and a publishing participant.
    let room_socket = bind().await;
    let room_addr = room_socket.local_addr().unwrap();
    let (room, mut room_events) = driver::spawn(room_socket, Room::new(room_addr)).unwrap();
    let publisher_socket = bind().await;
    let (client, offer) = Client::publisher(
        Instant::now(),
        publisher_socket.local_addr().unwrap(),
        &[MediaKind::Audio, MediaKind::Video],
    )
    .unwrap();
    let (publisher_id, answer) = room
        .call(move |r, now| r.publish(now, &offer))
        .await
        .unwrap()
        .unwrap();
    let (publisher, mut publisher_events) = driver::spawn(publisher_socket, client).unwrap();
    publisher
        .call(move |c, _| c.accept_answer(&answer))
        .await
        .unwrap()
        .unwrap();
    while let Some(event) = room_events.recv().await {
        if matches!(event, RoomEvent::PublicationStarted { .. }) {
            break;
        }
    }
    let publishing = tokio::spawn(async move {
        let mut source = SyntheticSource::new(
            SyntheticConfig::default(),
            video_fixture("cbp-320x240-30fps.h264"),
            opus_fixture(),
        );
        let start = tokio::time::Instant::now();
        loop {
            while let Ok(event) = publisher_events.try_recv() {
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
                publisher
                    .call(move |c, now| c.write(now, kind, u64::from(frame.rtp_time), &frame.data))
                    .await
                    .unwrap()
                    .unwrap();
            }
        }
    });

    // The recorder, on its own socket.
    let recorder_socket = bind().await;
    let session = RecorderSession::new(recorder_socket.local_addr().unwrap());
    let (recorder, mut messages) = driver::spawn(recorder_socket, session).unwrap();

    // The server's side of the entry point.
    let dir = tempfile::tempdir().unwrap();
    let publication = PublicationInfo {
        publication_id: "pub-1".into(),
        interaction_id: "call-1".into(),
        interaction_type: "CALL".into(),
        participant_id: "participant-1".into(),
        audio: true,
        video: true,
        started_at_ms: 0,
    };
    let mut spool: Option<SpoolFile> = None;
    let mut seen = Vec::new();
    let mut ready_at = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let stop_at = tokio::time::Instant::now() + Duration::from_secs(4);
    let mut stop_sent = false;
    // The acknowledgement of the last block (the index) is held back: `done` must wait for it.
    let mut held_ack: Option<(u32, u64, tokio::time::Instant)> = None;
    let mut last_ack_sent = false;
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
            () = async { tokio::time::sleep_until(held_ack.unwrap().2).await }, if held_ack.is_some() => {
                let (file, seq, _) = held_ack.take().unwrap();
                last_ack_sent = true;
                reply(FromServer::Ack { file, seq }).await;
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
                    publications: vec![publication.clone()],
                })
                .await;
            }
            FromRecorder::Subscribe {
                publication_id,
                offer,
            } => {
                assert_eq!(publication_id, "pub-1");
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
            FromRecorder::Ready {} => ready_at = Some(Instant::now()),
            FromRecorder::FileStarted {
                file,
                publication_id,
            } => {
                assert_eq!((file, publication_id.as_str()), (0, "pub-1"));
                spool = Some(SpoolFile::create(&dir.path().join("file-0.mp4")).unwrap());
            }
            FromRecorder::Block { file, seq, bytes } => {
                let ack = spool
                    .as_mut()
                    .expect("fileStarted comes first")
                    .append(seq, &bytes)
                    .unwrap();
                if convrec_media::layout::classify_block(&bytes)
                    == Ok(convrec_media::layout::BlockKind::Index)
                {
                    held_ack = Some((
                        file,
                        ack.seq,
                        tokio::time::Instant::now() + Duration::from_millis(300),
                    ));
                } else {
                    reply(FromServer::Ack { file, seq: ack.seq }).await;
                }
            }
            FromRecorder::Done { files } => {
                assert!(
                    last_ack_sent,
                    "done came before the last block was acknowledged"
                );
                assert_eq!(files.len(), 1);
                let spool = spool.as_ref().unwrap();
                assert_eq!(files[0].blocks, spool.next_seq());
                assert_eq!(files[0].bytes, spool.len());
                assert!(spool.is_finished(), "the index was written");
                break;
            }
            FromRecorder::Failed { reason } => panic!("the recorder failed: {reason}"),
        }
    }
    publishing.abort();
    assert!(ready_at.is_some(), "the recorder reported ready");
    assert_eq!(recorder.call(|s, _| s.phase()).await.unwrap(), Phase::Done);
    assert_eq!(
        seen[..5],
        ["Hello", "Subscribe", "Ready", "FileStarted", "block"],
        "{seen:?}"
    );

    let path = dir.path().join("file-0.mp4");
    assert_eq!(ffmpeg_decode_errors(&path), "");
    let probe = ffprobe(&path);
    let (video, audio) = (stream(&probe, "video"), stream(&probe, "audio"));
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(audio["codec_name"], "opus");
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
}
