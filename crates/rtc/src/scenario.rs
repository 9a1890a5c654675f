//! A call over an in-memory network on a virtual clock: a room, one publisher and one
//! subscriber, and the wire between them (no sockets, no waiting). Scenario tests drive it to
//! replay what a real network does to a call; the media-path fuzz target drives it with hostile
//! datagrams and payloads. The addresses are loopback labels; nothing is sent anywhere.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use convrec_media::timeline::MediaKind;

use crate::Datagram;
use crate::client::{Client, ClientError, ClientEvent};
use crate::room::{PeerId, Room, RoomError, RoomEvent};

/// How long a datagram takes over the wire.
pub const LATENCY: Duration = Duration::from_millis(5);
/// The room's address.
pub const ROOM: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    5000,
);
/// The publisher's address.
pub const PUBLISHER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)),
    6000,
);
/// The subscriber's address.
pub const SUBSCRIBER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3)),
    7000,
);

/// Why a call could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// A client failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The room failed.
    #[error(transparent)]
    Room(#[from] RoomError),
}

/// A frame the subscriber received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// When (virtual time since the start).
    pub at: Duration,
    /// Audio or video.
    pub kind: MediaKind,
    /// Its RTP time.
    pub rtp_time: u32,
    /// A video frame holding an IDR picture.
    pub idr: bool,
}

/// A call: a room, one publisher, one subscriber, and the wire between them. See the
/// [module docs](self).
pub struct VirtualCall {
    /// When it began.
    pub start: Instant,
    /// The virtual clock.
    pub now: Instant,
    /// The publisher's peer in the room.
    pub publisher_id: PeerId,
    /// The SFU.
    pub room: Room,
    /// The publishing client.
    pub publisher: Client,
    /// The subscribing client (a participant, or a recorder).
    pub subscriber: Client,
    /// While set, every datagram is lost.
    pub down_until: Option<Instant>,
    /// While set, the publisher's datagrams to the room are lost (the rest flows).
    pub publisher_down_until: Option<Instant>,
    /// Room events with the virtual time they happened.
    pub room_events: Vec<(Duration, RoomEvent)>,
    /// Frames the subscriber received, in order.
    pub received: Vec<Received>,
    /// Key-frame requests that reached the publisher and its source has not yet taken.
    pub keyframe_requests: u32,
    wire: Vec<(Instant, SocketAddr, Datagram)>,
}

impl VirtualCall {
    /// A call whose subscriber is a recorder (`recorder`) or a participant, offered and
    /// answered at `start`; ICE and DTLS happen as it runs.
    pub fn new(start: Instant, recorder: bool) -> Result<Self, ScenarioError> {
        let mut room = Room::new(ROOM);
        let (mut publisher, offer) =
            Client::publisher(start, PUBLISHER, &[MediaKind::Audio, MediaKind::Video])?;
        let (publisher_id, answer) = room.publish(start, &offer)?;
        publisher.accept_answer(&answer)?;
        let (mut subscriber, offer) = Client::subscriber(start, SUBSCRIBER)?;
        let (_, answer) = if recorder {
            room.subscribe_recorder(start, publisher_id, &offer)?
        } else {
            room.subscribe(start, publisher_id, &offer)?
        };
        subscriber.accept_answer(&answer)?;
        Ok(Self {
            start,
            now: start,
            publisher_id,
            room,
            publisher,
            subscriber,
            down_until: None,
            publisher_down_until: None,
            room_events: Vec::new(),
            received: Vec::new(),
            keyframe_requests: 0,
            wire: Vec::new(),
        })
    }

    /// Puts a datagram on the wire as if `from` sent it to `to` now (it arrives after
    /// [`LATENCY`]), past the outages: what an attacker on the path could send.
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, contents: Vec<u8>) {
        self.wire.push((
            self.now + LATENCY,
            from,
            Datagram {
                source: from,
                destination: to,
                contents,
            },
        ));
    }

    /// Advances to the next thing that happens before `end` (a timeout, a datagram arriving, or
    /// `wake`) and handles it. Returns false, with the clock at `end`, when nothing happens
    /// before it.
    pub fn step(&mut self, end: Instant, wake: Option<Instant>) -> bool {
        self.collect();
        let next = [
            self.room.poll_timeout(),
            self.publisher.poll_timeout(),
            self.subscriber.poll_timeout(),
            self.wire.iter().map(|(at, _, _)| *at).min(),
            wake,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(end);
        if next >= end {
            self.now = end;
            return false;
        }
        self.now = self.now.max(next);
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.wire)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.wire = later;
        for (_, from, d) in due {
            match d.destination {
                ROOM => self.room.handle_receive(now, from, &d.contents),
                PUBLISHER => self.publisher.handle_receive(now, from, &d.contents),
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
        true
    }

    /// Runs until `end` with nothing else to do.
    pub fn run_until(&mut self, end: Instant) {
        while self.step(end, None) {}
        self.collect();
    }

    /// Video frames received from `from` to `to` (virtual time since the start).
    pub fn frames_between(&self, from: Duration, to: Duration) -> usize {
        self.video().filter(|r| r.at >= from && r.at < to).count()
    }

    /// The video frames received, in order.
    pub fn video(&self) -> impl Iterator<Item = &Received> {
        self.received.iter().filter(|r| r.kind == MediaKind::Video)
    }

    /// Moves what every endpoint sends onto the wire (unless an outage drops it) and gathers
    /// their events.
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
                    .filter(|d| !(publisher_down && d.source == PUBLISHER))
                    .map(|d| (self.now + LATENCY, d.source, d)),
            );
        }
        while let Some(e) = self.room.poll_event() {
            self.room_events.push((self.now - self.start, e));
        }
        while let Some(e) = self.publisher.poll_event() {
            if e == ClientEvent::KeyframeRequested {
                self.keyframe_requests += 1;
            }
        }
        while let Some(e) = self.subscriber.poll_event() {
            if let ClientEvent::Frame(kind, frame) = e {
                let idr = kind == MediaKind::Video
                    && convrec_media::h264::annexb_nals(&frame.data)
                        .any(|nal| convrec_media::h264::nal_type(nal) == Some(5));
                self.received.push(Received {
                    at: self.now - self.start,
                    kind,
                    rtp_time: frame.rtp_time,
                    idr,
                });
            }
        }
    }
}
