//! The SFU room of one conversation: publishers send their media in (WHIP), subscribers
//! receive one publication each (WHEP), all over one UDP port.
//!
//! Sans-IO like the media core: [`Room::handle_receive`] takes a datagram and the time it
//! arrived, [`Room::handle_timeout`] is called at [`Room::poll_timeout`], and
//! [`Room::poll_transmit`] / [`Room::poll_event`] are drained after every call. Each peer is a
//! str0m [`Rtc`]; a datagram goes to the peer whose ICE session accepts it.
//!
//! Forwarding: a publisher's frames go, as they are, to every connected subscriber of that
//! publication. A subscriber's key-frame request (PLI/FIR) is passed to its publisher unless one
//! is already on its way: asked less than [`KEYFRAME_REQUEST_SPACING`] ago and not yet answered
//! by a key frame. Many subscribers cannot flood a publisher (their requests while one is
//! outstanding are answered by the same key frame), and a subscriber that missed the key frame
//! is not kept waiting (its request after the answer goes straight on; dropping it until a
//! fixed spacing ran out cost a recording's first second of video whenever its first key frame
//! came before it could be received). When a subscriber connects, the room asks the publisher
//! for a key frame itself, under the same rule. When a
//! publisher's video frames are lost beyond repair (a frame arrives that does not follow on from
//! the last), the room forwards no video of it until the next key frame, which it asks for:
//! subscribers never get pictures that reference ones they never had. A publisher's media can
//! be held ([`Room::set_held`]): then only recorders' subscriptions
//! ([`Room::subscribe_recorder`]) receive it (SPEC §4's synchronous start).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use convrec_media::h264;
use convrec_media::rtp_time::{nearest_extended, ticks_to_nanos};
use convrec_media::timeline::MediaKind;
use str0m::change::SdpOffer;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::rtcp::SenderInfo;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use thiserror::Error;

use crate::Datagram;
use crate::codecs::{OfferError, check_offer, server_rtc};

/// NAL unit type of an IDR (key frame) slice.
const IDR: u8 = 5;

/// How long a key-frame request passed to a publisher stands for every later one, unless a key
/// frame answers it first (after this the request is taken as lost and the next one goes on).
pub const KEYFRAME_REQUEST_SPACING: Duration = Duration::from_millis(500);

/// A peer of the room (one WHIP or WHEP session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// What a peer does in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends its media in (WHIP).
    Publisher,
    /// Receives one publisher's media (WHEP).
    Subscriber {
        /// The publication it receives.
        publisher: PeerId,
    },
}

/// What happened in the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A publisher's session is up: its media can be received.
    PublicationStarted {
        /// The publisher.
        publisher: PeerId,
        /// The kinds of media it sends.
        kinds: Vec<MediaKind>,
    },
    /// A subscriber's session is up.
    SubscriberConnected {
        /// The subscriber.
        subscriber: PeerId,
        /// The publication it receives.
        publisher: PeerId,
    },
    /// A peer left (ended, timed out or failed); a publisher's subscribers are closed with it.
    PeerClosed {
        /// The peer.
        peer: PeerId,
        /// What it was.
        role: Role,
    },
}

/// Why an offer was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RoomError {
    /// The offer carries no codec convrec records.
    #[error(transparent)]
    Offer(#[from] OfferError),
    /// The SDP could not be parsed or negotiated.
    #[error("the SDP offer could not be negotiated: {0}")]
    Sdp(String),
    /// A publisher offered no media to send, or a subscriber none to receive.
    #[error("the SDP offer has no media section that {0}")]
    WrongDirection(&'static str),
    /// The publication to subscribe to is not in the room.
    #[error("no publication {0:?} in this room")]
    UnknownPublisher(PeerId),
    /// The peer is not in the room.
    #[error("no session {0:?} in this room")]
    UnknownPeer(PeerId),
}

struct Peer {
    id: PeerId,
    role: Role,
    rtc: Rtc,
    /// Negotiated media (from the answer): mid, kind, and the direction as the room sees it.
    media: Vec<(Mid, MediaKind, Direction)>,
    timeout: Instant,
    connected: bool,
    /// Publishers: when a key frame was asked of it that no key frame has answered yet.
    keyframe_request_outstanding: Option<Instant>,
    /// Publishers: per section, the latest sender report and when it arrived.
    sender_reports: Vec<(Mid, SenderInfo, Instant)>,
    /// Publishers: video frames were lost and no key frame has come since.
    video_broken: bool,
    /// Publishers: media is held, forwarded only to recorders (a synchronous recording start).
    held: bool,
    /// Subscribers: a recorder (hidden; receives held media).
    recorder: bool,
}

impl Peer {
    /// When a publisher's frame was captured, on the room's clock: its RTP time placed through
    /// the publisher's latest sender report for that section (audio and video reports share the
    /// sender's clock, so this keeps their alignment for subscribers), or its arrival before any
    /// report came.
    fn capture_time(&self, data: &MediaData) -> Instant {
        let Some((_, report, received)) = self
            .sender_reports
            .iter()
            .find(|(mid, _, _)| *mid == data.mid)
        else {
            return data.network_time;
        };
        let rate = data.time.frequency().get();
        // Both are extended RTP times, extended separately: compare them modulo 2^32.
        let frame = i64::try_from(data.time.numer()).unwrap_or(i64::MAX);
        let reported = nearest_extended(report.rtp_time.numer() as u32, frame);
        let offset_ns = ticks_to_nanos(frame - reported, rate);
        let offset =
            Duration::from_nanos(u64::try_from(offset_ns.unsigned_abs()).unwrap_or(u64::MAX));
        let placed = if offset_ns >= 0 {
            received.checked_add(offset)
        } else {
            received.checked_sub(offset)
        };
        placed.unwrap_or(data.network_time)
    }

    /// Whether a publisher's video frame can be decoded by whoever receives it: after a loss
    /// (a frame that does not follow on from the last) nothing can until the next key frame.
    fn video_decodable(&mut self, data: &MediaData) -> bool {
        let idr = h264::annexb_nals(&data.data).any(|nal| h264::nal_type(nal) == Some(IDR));
        if idr {
            self.video_broken = false;
            self.keyframe_request_outstanding = None;
        } else if !data.contiguous {
            self.video_broken = true;
        }
        !self.video_broken
    }

    fn mid_of(&self, kind: MediaKind, sending: bool) -> Option<Mid> {
        self.media
            .iter()
            .find(|(_, k, d)| {
                *k == kind
                    && if sending {
                        d.is_sending()
                    } else {
                        d.is_receiving()
                    }
            })
            .map(|(mid, _, _)| *mid)
    }

    fn kind_of(&self, mid: Mid) -> Option<MediaKind> {
        self.media
            .iter()
            .find(|(m, _, _)| *m == mid)
            .map(|(_, k, _)| *k)
    }
}

/// Work that crosses from one peer to others, done after the first peer is drained.
enum Propagation {
    /// A publisher's frame, with the wallclock (capture time) to send it with.
    Media(PeerId, MediaKind, Box<MediaData>, Instant),
    KeyframeRequest(PeerId, KeyframeRequestKind),
    SubscriberConnected(PeerId, PeerId),
}

/// One conversation's SFU. See the [module docs](self).
pub struct Room {
    local_addr: SocketAddr,
    peers: Vec<Peer>,
    next_id: u64,
    transmits: VecDeque<Datagram>,
    events: VecDeque<RoomEvent>,
}

impl Room {
    /// A room whose peers reach it at `local_addr` (the address advertised as the ICE host
    /// candidate, and the destination of every datagram it receives).
    pub fn new(local_addr: SocketAddr) -> Self {
        Self {
            local_addr,
            peers: Vec::new(),
            next_id: 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Accepts a publisher's SDP offer (WHIP); returns its id and the SDP answer.
    pub fn publish(&mut self, now: Instant, offer: &str) -> Result<(PeerId, String), RoomError> {
        check_offer(offer)?;
        self.accept(now, offer, Role::Publisher, false)
    }

    /// Accepts a subscriber's SDP offer (WHEP) for `publisher`'s media.
    pub fn subscribe(
        &mut self,
        now: Instant,
        publisher: PeerId,
        offer: &str,
    ) -> Result<(PeerId, String), RoomError> {
        self.add_subscriber(now, publisher, offer, false)
    }

    /// Accepts a recorder's subscription: like [`subscribe`](Self::subscribe), but it also
    /// receives media that is held.
    pub fn subscribe_recorder(
        &mut self,
        now: Instant,
        publisher: PeerId,
        offer: &str,
    ) -> Result<(PeerId, String), RoomError> {
        self.add_subscriber(now, publisher, offer, true)
    }

    /// Holds a publisher's media (forwarded to recorders only) or releases it. On release the
    /// publisher is asked for a key frame, so the subscribers who had nothing can decode.
    pub fn set_held(
        &mut self,
        now: Instant,
        publisher: PeerId,
        held: bool,
    ) -> Result<(), RoomError> {
        let index = self
            .index_of(publisher)
            .filter(|&i| self.peers[i].role == Role::Publisher)
            .ok_or(RoomError::UnknownPublisher(publisher))?;
        let was_held = std::mem::replace(&mut self.peers[index].held, held);
        if was_held && !held {
            let mut work = VecDeque::new();
            self.ask_keyframe(now, publisher, KeyframeRequestKind::Pli, &mut work);
            self.propagate(now, work);
        }
        Ok(())
    }

    fn add_subscriber(
        &mut self,
        now: Instant,
        publisher: PeerId,
        offer: &str,
        recorder: bool,
    ) -> Result<(PeerId, String), RoomError> {
        if !self
            .peers
            .iter()
            .any(|p| p.id == publisher && p.role == Role::Publisher)
        {
            return Err(RoomError::UnknownPublisher(publisher));
        }
        check_offer(offer)?;
        self.accept(now, offer, Role::Subscriber { publisher }, recorder)
    }

    /// Ends a session (WHIP/WHEP `DELETE`).
    pub fn remove(&mut self, now: Instant, peer: PeerId) -> Result<(), RoomError> {
        let index = self.index_of(peer).ok_or(RoomError::UnknownPeer(peer))?;
        self.peers[index].rtc.disconnect();
        self.handle_timeout(now);
        Ok(())
    }

    /// The publishers whose sessions are up, with the kinds of media they send.
    pub fn publications(&self) -> Vec<(PeerId, Vec<MediaKind>)> {
        self.peers
            .iter()
            .filter(|p| p.role == Role::Publisher && p.connected)
            .map(|p| (p.id, p.media.iter().map(|(_, k, _)| *k).collect()))
            .collect()
    }

    /// The kinds of media a peer's session negotiated (empty for an unknown peer).
    pub fn media_kinds(&self, peer: PeerId) -> Vec<MediaKind> {
        self.index_of(peer)
            .map(|i| self.peers[i].media.iter().map(|(_, k, _)| *k).collect())
            .unwrap_or_default()
    }

    /// A datagram arrived at the room's socket.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local_addr, contents) else {
            return;
        };
        let input = Input::Receive(now, receive);
        let Some(index) = self.peers.iter().position(|p| p.rtc.accepts(&input)) else {
            return;
        };
        if let Err(e) = self.peers[index].rtc.handle_input(input) {
            tracing::debug!(peer = ?self.peers[index].id, error = %e, "dropping a peer on a bad input");
            self.peers[index].rtc.disconnect();
        }
        let mut work = VecDeque::new();
        self.drain(index, &mut work);
        self.propagate(now, work);
        self.remove_dead();
    }

    /// Time passed: every peer whose deadline came is woken.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut work = VecDeque::new();
        for index in 0..self.peers.len() {
            if self.peers[index].timeout <= now {
                if let Err(e) = self.peers[index].rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(peer = ?self.peers[index].id, error = %e, "peer failed on timeout");
                    self.peers[index].rtc.disconnect();
                }
                self.drain(index, &mut work);
            }
        }
        self.propagate(now, work);
        self.remove_dead();
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers.iter().map(|p| p.timeout).min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.transmits.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    fn index_of(&self, peer: PeerId) -> Option<usize> {
        self.peers.iter().position(|p| p.id == peer)
    }

    fn accept(
        &mut self,
        now: Instant,
        offer: &str,
        role: Role,
        recorder: bool,
    ) -> Result<(PeerId, String), RoomError> {
        let offer = SdpOffer::from_sdp_string(offer).map_err(|e| RoomError::Sdp(e.to_string()))?;
        let mut rtc = server_rtc(now);
        let candidate =
            Candidate::host(self.local_addr, "udp").map_err(|e| RoomError::Sdp(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| RoomError::Sdp(e.to_string()))?;
        let answer = answer.to_sdp_string();
        // The negotiated sections, as answered (str0m's MediaAdded events come later).
        let media: Vec<(Mid, MediaKind, Direction)> = answer
            .lines()
            .filter_map(|line| line.trim().strip_prefix("a=mid:"))
            .filter_map(|mid| rtc.media(Mid::from(mid)))
            .filter(|m| !m.disabled())
            .map(|m| (m.mid(), crate::media_kind(m.kind()), m.direction()))
            .collect();
        let id = PeerId(self.next_id);
        self.next_id += 1;
        let usable = match role {
            Role::Publisher => media.iter().any(|(_, _, d)| d.is_receiving()),
            Role::Subscriber { .. } => media.iter().any(|(_, _, d)| d.is_sending()),
        };
        if !usable {
            return Err(RoomError::WrongDirection(match role {
                Role::Publisher => "sends media (a WHIP offer must be sendonly or sendrecv)",
                Role::Subscriber { .. } => {
                    "receives media (a WHEP offer must be recvonly or sendrecv)"
                }
            }));
        }
        self.peers.push(Peer {
            id,
            role,
            rtc,
            media,
            timeout: now,
            connected: false,
            keyframe_request_outstanding: None,
            sender_reports: Vec::new(),
            video_broken: false,
            held: false,
            recorder,
        });
        let index = self.peers.len() - 1;
        let mut work = VecDeque::new();
        self.drain(index, &mut work);
        self.propagate(now, work);
        Ok((id, answer))
    }

    /// Runs a peer's output until its next timeout, queueing what must reach other peers.
    fn drain(&mut self, index: usize, work: &mut VecDeque<Propagation>) {
        let Room {
            peers,
            transmits,
            events,
            ..
        } = self;
        let peer = &mut peers[index];
        loop {
            match peer.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    peer.timeout = at;
                    return;
                }
                Ok(Output::Transmit(t)) => transmits.push_back(Datagram {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.to_vec(),
                }),
                Ok(Output::Event(event)) => match event {
                    Event::Connected => {
                        peer.connected = true;
                        match peer.role {
                            Role::Publisher => events.push_back(RoomEvent::PublicationStarted {
                                publisher: peer.id,
                                kinds: peer.media.iter().map(|(_, k, _)| *k).collect(),
                            }),
                            Role::Subscriber { publisher } => {
                                work.push_back(Propagation::SubscriberConnected(peer.id, publisher))
                            }
                        }
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        peer.rtc.disconnect()
                    }
                    Event::MediaData(data) if peer.role == Role::Publisher => {
                        if let Some(kind) = peer.kind_of(data.mid) {
                            if kind == MediaKind::Video && !peer.video_decodable(&data) {
                                // Dropped: it references pictures that never came. Ask for a
                                // key frame (spaced like subscribers' requests).
                                work.push_back(Propagation::KeyframeRequest(
                                    peer.id,
                                    KeyframeRequestKind::Pli,
                                ));
                                continue;
                            }
                            let wallclock = peer.capture_time(&data);
                            work.push_back(Propagation::Media(
                                peer.id,
                                kind,
                                Box::new(data),
                                wallclock,
                            ));
                        }
                    }
                    Event::SenderFeedback(feedback) if peer.role == Role::Publisher => {
                        peer.sender_reports
                            .retain(|(mid, _, _)| *mid != feedback.mid);
                        peer.sender_reports.push((
                            feedback.mid,
                            feedback.sender_info,
                            feedback.received_at,
                        ));
                    }
                    Event::KeyframeRequest(request) => {
                        if let Role::Subscriber { publisher } = peer.role {
                            work.push_back(Propagation::KeyframeRequest(publisher, request.kind));
                        }
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!(peer = ?peer.id, error = %e, "peer failed");
                    peer.rtc.disconnect();
                    return;
                }
            }
        }
    }

    fn propagate(&mut self, now: Instant, mut work: VecDeque<Propagation>) {
        while let Some(item) = work.pop_front() {
            match item {
                Propagation::Media(from, kind, data, wallclock) => {
                    let held = self.index_of(from).is_some_and(|i| self.peers[i].held);
                    for index in 0..self.peers.len() {
                        let peer = &mut self.peers[index];
                        if peer.role != (Role::Subscriber { publisher: from })
                            || !peer.connected
                            || (held && !peer.recorder)
                        {
                            continue;
                        }
                        forward(peer, kind, &data, wallclock);
                        self.drain(index, &mut work);
                    }
                }
                Propagation::KeyframeRequest(publisher, kind) => {
                    self.ask_keyframe(now, publisher, kind, &mut work)
                }
                Propagation::SubscriberConnected(subscriber, publisher) => {
                    self.events.push_back(RoomEvent::SubscriberConnected {
                        subscriber,
                        publisher,
                    });
                    self.ask_keyframe(now, publisher, KeyframeRequestKind::Pli, &mut work);
                }
            }
        }
    }

    fn ask_keyframe(
        &mut self,
        now: Instant,
        publisher: PeerId,
        kind: KeyframeRequestKind,
        work: &mut VecDeque<Propagation>,
    ) {
        let Some(index) = self.index_of(publisher) else {
            return;
        };
        let peer = &mut self.peers[index];
        if peer
            .keyframe_request_outstanding
            .is_some_and(|last| now.saturating_duration_since(last) < KEYFRAME_REQUEST_SPACING)
        {
            return;
        }
        let Some(mid) = peer.mid_of(MediaKind::Video, false) else {
            return;
        };
        let Some(mut writer) = peer.rtc.writer(mid) else {
            return;
        };
        if !writer.is_request_keyframe_possible(kind) {
            return;
        }
        // Fails until the publisher's video has started; the subscriber's retry comes later.
        if writer.request_keyframe(None, kind).is_ok() {
            peer.keyframe_request_outstanding = Some(now);
        }
        self.drain(index, work);
    }

    /// Closes what is no longer alive, and with a publisher its subscribers.
    fn remove_dead(&mut self) {
        while let Some(index) = self.peers.iter().position(|p| !p.rtc.is_alive()) {
            let peer = self.peers.remove(index);
            if peer.role == Role::Publisher {
                for sub in self
                    .peers
                    .iter_mut()
                    .filter(|p| p.role == (Role::Subscriber { publisher: peer.id }))
                {
                    sub.rtc.disconnect();
                }
            }
            self.events.push_back(RoomEvent::PeerClosed {
                peer: peer.id,
                role: peer.role,
            });
        }
    }
}

/// Writes a publisher's frame to a subscriber's matching send section. `wallclock` becomes the
/// frame's time in the sender reports the room sends to the subscriber.
fn forward(peer: &mut Peer, kind: MediaKind, data: &MediaData, wallclock: Instant) {
    let Some(mid) = peer.mid_of(kind, true) else {
        return;
    };
    let Some(writer) = peer.rtc.writer(mid) else {
        return;
    };
    let Some(pt) = writer.match_params(data.params) else {
        return;
    };
    // match_params looks at the whole session; the payload type must be negotiated on this mid.
    if !peer
        .rtc
        .media(mid)
        .is_some_and(|m| m.remote_pts().contains(&pt))
    {
        return;
    }
    let Some(writer) = peer.rtc.writer(mid) else {
        return;
    };
    if let Err(e) = writer.write(pt, wallclock, data.time, data.data.clone()) {
        tracing::debug!(peer = ?peer.id, error = %e, "could not forward a frame");
    }
}
