//! Real WebRTC on loopback: a synthetic publisher sends the fixtures through the SFU room to a
//! subscriber, whose frames go through the media core into an fMP4 that ffprobe and ffmpeg
//! judge. Also: an offer without usable codecs is refused with a message naming them.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::time::{Duration, Instant};

use convrec_media::inspect::inspect;
use convrec_media::recording::{PublicationRecorder, RecorderConfig, RecorderOutput};
use convrec_media::source::synthetic::{SourceEvent, SyntheticConfig, SyntheticSource};
use convrec_media::timeline::{MediaFrame, MediaKind};
use convrec_rtc::client::{Client, ClientEvent};
use convrec_rtc::driver::{self, DriverHandle};
use convrec_rtc::room::{Room, RoomError, RoomEvent};
use convrec_testkit::*;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;

const SECONDS: u64 = 4;

async fn bind() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port")
}

async fn until<E>(
    events: &mut UnboundedReceiver<E>,
    what: &str,
    mut wanted: impl FnMut(&E) -> bool,
) {
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(e) if wanted(&e) => return,
                Some(_) => {}
                None => panic!("events ended before {what}"),
            },
            () = &mut deadline => panic!("no {what} within 10 s"),
        }
    }
}

async fn connect_client(
    room: &DriverHandle<Room>,
    make: impl FnOnce(std::net::SocketAddr) -> (Client, String),
    accept: impl FnOnce(
        &mut Room,
        Instant,
        String,
    ) -> Result<(convrec_rtc::room::PeerId, String), RoomError>
    + Send
    + 'static,
) -> (
    DriverHandle<Client>,
    UnboundedReceiver<ClientEvent>,
    convrec_rtc::room::PeerId,
) {
    let socket = bind().await;
    let (client, offer) = make(socket.local_addr().unwrap());
    let (peer, answer) = room
        .call(move |r, now| accept(r, now, offer))
        .await
        .unwrap()
        .unwrap();
    let (handle, mut events) = driver::spawn(socket, client).unwrap();
    handle
        .call(move |c, _| c.accept_answer(&answer))
        .await
        .unwrap()
        .unwrap();
    until(&mut events, "connection", |e| *e == ClientEvent::Connected).await;
    (handle, events, peer)
}

/// What one call through the room produced.
struct Call {
    file: Vec<u8>,
    /// Key-frame requests the subscriber's recorder made.
    keyframe_asks: u32,
    /// Key-frame requests that reached the publisher.
    publisher_saw: u32,
}

/// Publishes the fixtures through a room for `SECONDS` to a subscriber that records them. Video
/// leaves the publisher `video_encoder_delay` after it was captured (audio at once); both are
/// sent with their capture time.
async fn call_through_room(video_encoder_delay: Duration) -> Call {
    let room_socket = bind().await;
    let room_addr = room_socket.local_addr().unwrap();
    let (room, mut room_events) = driver::spawn(room_socket, Room::new(room_addr)).unwrap();

    let (publisher, mut publisher_events, publisher_id) = connect_client(
        &room,
        |addr| {
            Client::publisher(Instant::now(), addr, &[MediaKind::Audio, MediaKind::Video]).unwrap()
        },
        |r, now, offer| r.publish(now, &offer),
    )
    .await;
    until(&mut room_events, "publication", |e| {
        matches!(e, RoomEvent::PublicationStarted { .. })
    })
    .await;

    let (_subscriber, mut subscriber_events, _) = connect_client(
        &room,
        |addr| Client::subscriber(Instant::now(), addr).unwrap(),
        move |r, now, offer| r.subscribe(now, publisher_id, &offer),
    )
    .await;

    // The publisher plays the fixtures in real time and answers key-frame requests.
    let publishing = tokio::spawn(async move {
        let video = video_fixture("cbp-320x240-30fps.h264");
        let mut source = SyntheticSource::new(SyntheticConfig::default(), video, opus_fixture());
        let start = tokio::time::Instant::now();
        let mut keyframe_requests = 0;
        // Video frames wait here for their encoder delay while audio goes out on time.
        let mut encoding: std::collections::VecDeque<(Duration, MediaFrame)> =
            std::collections::VecDeque::new();
        let send = |kind: MediaKind, captured: Duration, frame: MediaFrame| {
            let captured = start.into_std() + captured;
            publisher
                .call(move |c, _| c.write(captured, kind, u64::from(frame.rtp_time), &frame.data))
        };
        loop {
            while let Ok(event) = publisher_events.try_recv() {
                if event == ClientEvent::KeyframeRequested {
                    keyframe_requests += 1;
                    source.request_keyframe();
                }
            }
            let (at, event) = source.next_event();
            let end = at >= Duration::from_secs(SECONDS);
            let until = if end { Duration::MAX } else { at };
            while let Some((captured, _)) = encoding
                .front()
                .filter(|(c, _)| *c + video_encoder_delay <= until)
            {
                tokio::time::sleep_until(start + *captured + video_encoder_delay).await;
                let (captured, frame) = encoding.pop_front().unwrap();
                send(MediaKind::Video, captured, frame)
                    .await
                    .unwrap()
                    .unwrap();
            }
            if end {
                return keyframe_requests;
            }
            match event {
                SourceEvent::Frame(MediaKind::Video, frame) => encoding.push_back((at, frame)),
                SourceEvent::Frame(kind, frame) => {
                    tokio::time::sleep_until(start + at).await;
                    send(kind, at, frame).await.unwrap().unwrap();
                }
                // str0m sends its own sender reports.
                SourceEvent::SenderReport(..) => {}
            }
        }
    });

    // The subscriber records what it receives, as the recorder will.
    let start = Instant::now();
    let mut recorder = PublicationRecorder::new(RecorderConfig::default(), start);
    let mut file = Vec::new();
    let mut keyframe_asks = 0;
    let end =
        tokio::time::Instant::now() + Duration::from_secs(SECONDS) + Duration::from_millis(500);
    loop {
        tokio::select! {
            event = subscriber_events.recv() => {
                let now = Instant::now();
                match event.expect("subscriber events") {
                    ClientEvent::Frame(MediaKind::Video, f) => recorder.handle_video(now, f),
                    ClientEvent::Frame(_, f) => recorder.handle_audio(now, f),
                    ClientEvent::SenderReport(kind, r) => recorder.handle_sender_report(now, kind, r),
                    _ => {}
                }
            }
            () = tokio::time::sleep_until(end) => break,
            () = tokio::time::sleep(Duration::from_millis(100)) => recorder.handle_timeout(Instant::now()),
        }
        while let Some(output) = recorder.poll_output() {
            match output {
                RecorderOutput::Write(block) => file.extend_from_slice(block.bytes()),
                RecorderOutput::RequestKeyFrame(_) => {
                    keyframe_asks += 1;
                    _subscriber.call(|c, _| c.request_keyframe()).await.unwrap();
                }
            }
        }
    }
    recorder.finish(Instant::now());
    while let Some(RecorderOutput::Write(block)) = recorder.poll_output() {
        file.extend_from_slice(block.bytes());
    }
    let publisher_saw = publishing.await.unwrap();
    Call {
        file,
        keyframe_asks,
        publisher_saw,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_reaches_a_subscriber_and_records_to_a_playable_file() {
    let Call {
        file,
        keyframe_asks,
        publisher_saw,
    } = call_through_room(Duration::ZERO).await;
    assert!(
        keyframe_asks >= 1,
        "the recorder asks for a key frame when it starts"
    );
    assert!(
        publisher_saw >= 1,
        "key-frame requests reach the publisher through the room"
    );

    let report = inspect(file.as_slice()).expect("the recording reads back");
    eprintln!(
        "recorded: video {:.3}-{:.3} s ({} frames), audio {:.3}-{:.3} s ({} packets), A/V start offset {:?} ms",
        report.tracks[0].start_seconds,
        report.tracks[0].end_seconds,
        report.tracks[0].samples,
        report.tracks[1].start_seconds,
        report.tracks[1].end_seconds,
        report.tracks[1].samples,
        report.av_start_offset_ms
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loopback.mp4");
    std::fs::write(&path, &file).unwrap();
    let probe = ffprobe(&path);
    let video = stream(&probe, "video");
    let audio = stream(&probe, "audio");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(audio["codec_name"], "opus");
    assert_eq!(ffmpeg_decode_errors(&path), "");
    // 4 s at 30 fps and 50 packets/s were sent; loopback loses next to nothing, and the
    // subscriber was connected before the first (key) frame.
    assert!(
        report.tracks[0].samples >= 110,
        "video frames: {}",
        report.tracks[0].samples
    );
    assert!(
        report.tracks[1].samples >= 190,
        "audio packets: {}",
        report.tracks[1].samples
    );
    assert!(
        media_length(video) > 3.5,
        "video lasts {} s",
        media_length(video)
    );
    assert!(
        media_length(audio) > 3.5,
        "audio lasts {} s",
        media_length(audio)
    );
    // Captured together, aligned by str0m's sender reports: they start together.
    let offset = report.av_start_offset_ms.expect("both tracks");
    assert!(offset.abs() <= 20.0, "video starts {offset} ms after audio");
}

#[tokio::test]
async fn offers_without_usable_codecs_are_refused_with_what_they_offered() {
    let mut room = Room::new("127.0.0.1:9".parse().unwrap());
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\na=sendonly\r\n";
    let err = room.publish(Instant::now(), offer).unwrap_err();
    assert!(matches!(err, RoomError::Offer(_)), "{err}");
    assert!(err.to_string().contains("video offers VP8/90000"), "{err}");
    let err = room
        .subscribe(Instant::now(), convrec_rtc::room::PeerId(42), offer)
        .unwrap_err();
    assert_eq!(
        err,
        RoomError::UnknownPublisher(convrec_rtc::room::PeerId(42))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishers_encoder_delay_does_not_shift_video_against_audio() {
    // Video leaves the publisher 150 ms after capture. The room passes each frame on with its
    // capture time (from the publisher's sender reports), so the recording keeps them aligned:
    // both tracks end together, as they were captured.
    let Call { file, .. } = call_through_room(Duration::from_millis(150)).await;
    let report = inspect(file.as_slice()).expect("the recording reads back");
    let (video, audio) = (&report.tracks[0], &report.tracks[1]);
    let skew = video.end_seconds - audio.end_seconds;
    eprintln!(
        "with a 150 ms encoder delay: video ends {:+.1} ms after audio",
        skew * 1000.0
    );
    assert!(
        skew.abs() < 0.050,
        "video ends {skew:.3} s after audio: the encoder delay leaked into the sync"
    );
}
