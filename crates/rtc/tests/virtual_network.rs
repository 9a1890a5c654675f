//! The room and its clients over an in-memory network on a virtual clock (no sockets, no
//! waiting): deterministic scenarios of what a real network does to a call. The addresses are
//! loopback labels; nothing is sent anywhere.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use convrec_media::source::synthetic::{SourceEvent, SyntheticConfig, SyntheticSource};
use convrec_media::timeline::MediaKind;
use convrec_rtc::Datagram;
use convrec_rtc::client::{Client, ClientEvent};
use convrec_rtc::room::{Room, RoomEvent};
use convrec_testkit::*;

const LATENCY: Duration = Duration::from_millis(5);

/// A call: a room, one publisher, one subscriber, and the wire between them.
struct Call {
    start: Instant,
    now: Instant,
    publisher_id: convrec_rtc::room::PeerId,
    room: Room,
    publisher: Client,
    subscriber: Client,
    wire: Vec<(Instant, SocketAddr, Datagram)>,
    /// While set, every datagram is lost.
    down_until: Option<Instant>,
    /// While set, the publisher's datagrams to the room are lost (the rest flows).
    publisher_down_until: Option<Instant>,
    source: SyntheticSource,
    next_frame: Option<(Duration, SourceEvent)>,
    received: Vec<Duration>,
    /// The subscriber's video frames: (RTP time, whether it holds an IDR picture).
    received_video: Vec<(u32, bool)>,
    /// Room events with the virtual time they happened.
    room_events: Vec<(Duration, RoomEvent)>,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl Call {
    fn new() -> Self {
        Self::with_subscriber(false)
    }

    /// A call whose subscriber is a recorder (`recorder`) or a participant.
    fn with_subscriber(recorder: bool) -> Self {
        let start = Instant::now();
        let mut room = Room::new(addr("127.0.0.1:5000"));
        let (mut publisher, offer) = Client::publisher(
            start,
            addr("127.0.0.2:6000"),
            &[MediaKind::Audio, MediaKind::Video],
        )
        .unwrap();
        let (publisher_id, answer) = room.publish(start, &offer).unwrap();
        publisher.accept_answer(&answer).unwrap();
        let (mut subscriber, offer) = Client::subscriber(start, addr("127.0.0.3:7000")).unwrap();
        let (_, answer) = if recorder {
            room.subscribe_recorder(start, publisher_id, &offer)
                .unwrap()
        } else {
            room.subscribe(start, publisher_id, &offer).unwrap()
        };
        subscriber.accept_answer(&answer).unwrap();
        let source = SyntheticSource::new(
            SyntheticConfig::default(),
            video_fixture("cbp-320x240-30fps.h264"),
            opus_fixture(),
        );
        Self {
            start,
            now: start,
            publisher_id,
            room,
            publisher,
            subscriber,
            wire: Vec::new(),
            down_until: None,
            publisher_down_until: None,
            source,
            next_frame: None,
            received: Vec::new(),
            received_video: Vec::new(),
            room_events: Vec::new(),
        }
    }

    fn collect(&mut self) {
        let mut out = Vec::new();
        while let Some(d) = self.room.poll_transmit() {
            out.push(d);
        }
        while let Some(d) = self.publisher.poll_transmit() {
            out.push(d);
        }
        while let Some(d) = self.subscriber.poll_transmit() {
            out.push(d);
        }
        let down = self.down_until.is_some_and(|until| self.now < until);
        let publisher_down = self
            .publisher_down_until
            .is_some_and(|until| self.now < until);
        if !down {
            self.wire.extend(
                out.into_iter()
                    .filter(|d| !(publisher_down && d.source.port() == 6000))
                    .map(|d| (self.now + LATENCY, d.source, d)),
            );
        }
        while let Some(e) = self.room.poll_event() {
            self.room_events.push((self.now - self.start, e));
        }
        while let Some(e) = self.publisher.poll_event() {
            if e == ClientEvent::KeyframeRequested {
                self.source.request_keyframe();
            }
        }
        while let Some(e) = self.subscriber.poll_event() {
            if let ClientEvent::Frame(MediaKind::Video, frame) = e {
                self.received.push(self.now - self.start);
                let idr = convrec_media::h264::annexb_nals(&frame.data)
                    .any(|nal| convrec_media::h264::nal_type(nal) == Some(5));
                self.received_video.push((frame.rtp_time, idr));
            }
        }
    }

    /// Runs the call until `until` (virtual time since the start), sending media once the
    /// publisher is connected.
    fn run(&mut self, until: Duration) {
        let end = self.start + until;
        loop {
            self.collect();
            if self.publisher.is_connected() && self.next_frame.is_none() {
                self.next_frame = Some(self.source.next_event());
            }
            let frame_at = self.next_frame.as_ref().map(|(at, _)| self.start + *at);
            let next = [
                self.room.poll_timeout(),
                self.publisher.poll_timeout(),
                self.subscriber.poll_timeout(),
                self.wire.iter().map(|(at, _, _)| *at).min(),
                frame_at,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end);
            if next >= end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            let now = self.now;
            if frame_at.is_some_and(|at| at <= now) {
                let (_, event) = self.next_frame.take().unwrap();
                if let SourceEvent::Frame(kind, frame) = event {
                    let _ = self
                        .publisher
                        .write(now, kind, u64::from(frame.rtp_time), &frame.data);
                }
            }
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.wire)
                .into_iter()
                .partition(|(at, _, _)| *at <= now);
            self.wire = later;
            for (_, from, d) in due {
                match d.destination.port() {
                    5000 => self.room.handle_receive(now, from, &d.contents),
                    6000 => self.publisher.handle_receive(now, from, &d.contents),
                    _ => self.subscriber.handle_receive(now, from, &d.contents),
                }
            }
            if self.room.poll_timeout().is_some_and(|t| t <= now) {
                self.room.handle_timeout(now);
            }
            if self.publisher.poll_timeout().is_some_and(|t| t <= now) {
                self.publisher.handle_timeout(now);
            }
            if self.subscriber.poll_timeout().is_some_and(|t| t <= now) {
                self.subscriber.handle_timeout(now);
            }
        }
    }

    fn frames_between(&self, from: Duration, to: Duration) -> usize {
        self.received
            .iter()
            .filter(|t| **t >= from && **t < to)
            .count()
    }
}

fn closed(call: &Call) -> Vec<Duration> {
    call.room_events
        .iter()
        .filter(|(_, e)| matches!(e, RoomEvent::PeerClosed { .. }))
        .map(|(at, _)| *at)
        .collect()
}

#[test]
fn a_call_survives_an_eight_second_network_outage() {
    let mut call = Call::new();
    call.run(Duration::from_secs(3));
    assert!(
        call.frames_between(Duration::from_secs(2), Duration::from_secs(3)) > 20,
        "media flows before the outage"
    );
    call.down_until = Some(call.now + Duration::from_secs(8));
    call.run(Duration::from_secs(11));
    assert_eq!(
        call.frames_between(Duration::from_millis(3100), Duration::from_secs(11)),
        0,
        "nothing gets through while it is down"
    );
    call.run(Duration::from_secs(16));
    let after = call.frames_between(Duration::from_secs(13), Duration::from_secs(16));
    assert!(
        after > 60,
        "media flows again after the outage ({after} frames in 3 s)"
    );
    assert!(
        closed(&call).is_empty(),
        "no session ended: {:?}",
        call.room_events
    );
    assert!(call.subscriber.is_alive() && call.publisher.is_alive());
}

#[test]
fn sessions_cut_off_for_good_end() {
    let mut call = Call::new();
    call.run(Duration::from_secs(3));
    call.down_until = Some(call.now + Duration::from_secs(3600));
    call.run(Duration::from_secs(60));
    let closed = closed(&call);
    eprintln!("sessions cut off at 3 s ended at {closed:?}");
    assert_eq!(closed.len(), 2, "both sessions end: {:?}", call.room_events);
    assert!(!call.subscriber.is_alive() && !call.publisher.is_alive());
}

#[test]
fn after_publisher_loss_subscribers_get_no_frame_they_cannot_decode() {
    let mut call = Call::new();
    call.run(Duration::from_secs(3));
    // The publisher's path to the room fails for 6 s: more than retransmission can repair.
    call.publisher_down_until = Some(call.now + Duration::from_secs(6));
    call.run(Duration::from_secs(14));
    let frames = &call.received_video;
    assert!(frames.len() > 150, "media flows: {} frames", frames.len());
    // 30 fps at 90 kHz: 3000 ticks a frame. After a hole, the next frame must be a key frame,
    // or the subscriber (the recorder) would hold pictures that reference what never came.
    let holes: Vec<_> = frames
        .windows(2)
        .filter(|w| w[1].0.wrapping_sub(w[0].0) > 3000)
        .map(|w| w[1])
        .collect();
    assert!(!holes.is_empty(), "the outage left a hole");
    for (rtp, idr) in &holes {
        assert!(
            idr,
            "the frame at RTP {rtp} after a hole is not a key frame"
        );
    }
}

#[test]
fn held_media_reaches_recorders_only_until_released() {
    for recorder in [false, true] {
        let mut call = Call::with_subscriber(recorder);
        call.run(Duration::from_secs(2));
        let (now, publisher) = (call.now, call.publisher_id);
        call.room.set_held(now, publisher, true).unwrap();
        call.run(Duration::from_secs(5));
        let while_held = call.frames_between(Duration::from_millis(2100), Duration::from_secs(5));
        if recorder {
            assert!(
                while_held > 60,
                "the recorder receives held media: {while_held}"
            );
        } else {
            assert_eq!(
                while_held, 0,
                "a participant receives nothing while it is held"
            );
        }
        let (now, publisher) = (call.now, call.publisher_id);
        call.room.set_held(now, publisher, false).unwrap();
        call.run(Duration::from_secs(8));
        let after = call.frames_between(Duration::from_secs(5), Duration::from_secs(8));
        assert!(after > 60, "released: media flows ({after} frames)");
    }
}

/// A subscriber that asks for a key frame right after the last request was answered (it missed
/// that key frame) gets one at once, not after a spacing: the room holds back only requests
/// that one still on its way will answer.
#[test]
fn a_key_frame_request_after_the_last_was_answered_goes_on_at_once() {
    let mut call = Call::new();
    call.run(Duration::from_secs(3));
    for round in 0..3 {
        let (from, asked) = (call.received_video.len(), call.now - call.start);
        call.subscriber.request_keyframe();
        let answered = loop {
            let elapsed = call.now - call.start;
            assert!(
                elapsed < asked + Duration::from_secs(2),
                "request {round} at {asked:?} not answered"
            );
            call.run(elapsed + Duration::from_millis(5));
            if let Some(i) = (from..call.received_video.len()).find(|&i| call.received_video[i].1) {
                break call.received[i];
            }
        };
        // Two trips over the wire and one frame interval at 30 fps.
        assert!(
            answered - asked < Duration::from_millis(100),
            "request {round} at {asked:?} answered at {answered:?}"
        );
    }
}
