//! The client side of one WebRTC session: a publisher (synthetic participant) or a subscriber
//! (the recorder, a test). Sans-IO like [`crate::room`]: it makes the SDP offer, takes the answer,
//! and is then driven with datagrams and timeouts.
//!
//! A subscriber hands out frames in the media core's form ([`MediaFrame`] with the RTP SSRC and
//! 32-bit RTP time) together with the sender reports, which is what the recorder's timeline needs.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use convrec_media::rtp_time::{NANOS_PER_SEC, nanos_to_ntp};
use convrec_media::timeline::{MediaFrame, MediaKind, SenderReport};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, KeyframeRequestKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use thiserror::Error;

use crate::Datagram;
use crate::codecs::client_rtc;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: i128 = 2_208_988_800;

/// What happened in a client session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// ICE and DTLS are up: media flows.
    Connected,
    /// A frame arrived (subscribers).
    Frame(MediaKind, MediaFrame),
    /// A sender report arrived (subscribers).
    SenderReport(MediaKind, SenderReport),
    /// The far side asks for a key frame (publishers).
    KeyframeRequested,
    /// The session ended.
    Disconnected,
}

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The answer could not be used.
    #[error("the SDP answer could not be used: {0}")]
    Answer(String),
    /// The session has no section of that kind, or its codec was not negotiated.
    #[error("no negotiated {0:?} section to write to")]
    NotNegotiated(MediaKind),
    /// Writing failed.
    #[error("could not send: {0}")]
    Write(String),
    /// The local address cannot be an ICE candidate.
    #[error("bad local address: {0}")]
    Address(String),
    /// An Opus packet too large for one RTP packet.
    #[error(
        "an audio frame of {0} bytes is over the {MAX_AUDIO_FRAME}-byte limit of one RTP packet"
    )]
    AudioFrameTooLarge(usize),
}

/// The largest Opus packet a client sends. RFC 7587 carries one Opus packet per RTP packet;
/// str0m splits a larger payload over several, which receivers would take for several packets
/// (found by the `media_path` fuzz target). Encoders at WebRTC's bitrates stay far below it
/// (128 kbit/s in 20 ms frames: 320 bytes).
pub const MAX_AUDIO_FRAME: usize = 1000;

/// Where a client's session is reached: its own socket, or a TURN relay's address for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// The socket's address (a host candidate).
    Host(SocketAddr),
    /// The relayed address of a TURN allocation (a relay candidate).
    Relayed(SocketAddr),
}

impl From<SocketAddr> for Local {
    fn from(addr: SocketAddr) -> Self {
        Local::Host(addr)
    }
}

/// One session's client side. See the [module docs](self).
pub struct Client {
    rtc: Rtc,
    local_addr: SocketAddr,
    media: Vec<(Mid, MediaKind)>,
    pending: Option<SdpPendingOffer>,
    timeout: Instant,
    connected: bool,
    transmits: VecDeque<Datagram>,
    events: VecDeque<ClientEvent>,
}

impl Client {
    /// A publisher of `kinds` (sendonly); returns it and its SDP offer.
    pub fn publisher(
        now: Instant,
        local: impl Into<Local>,
        kinds: &[MediaKind],
    ) -> Result<(Self, String), ClientError> {
        Self::new(now, local.into(), kinds, Direction::SendOnly)
    }

    /// A subscriber of one publication's audio and video (recvonly); returns it and its offer.
    pub fn subscriber(
        now: Instant,
        local: impl Into<Local>,
    ) -> Result<(Self, String), ClientError> {
        Self::new(
            now,
            local.into(),
            &[MediaKind::Audio, MediaKind::Video],
            Direction::RecvOnly,
        )
    }

    fn new(
        now: Instant,
        local: Local,
        kinds: &[MediaKind],
        direction: Direction,
    ) -> Result<(Self, String), ClientError> {
        let mut rtc = client_rtc(now);
        let (local_addr, candidate) = match local {
            Local::Host(addr) => (addr, Candidate::host(addr, "udp")),
            // The relay is the session's only address (see crate::relay).
            Local::Relayed(addr) => (addr, Candidate::relayed(addr, addr, "udp")),
        };
        let candidate = candidate.map_err(|e| ClientError::Address(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let mut api = rtc.sdp_api();
        let media = kinds
            .iter()
            .map(|&kind| {
                (
                    api.add_media(crate::str0m_kind(kind), direction, None, None, None),
                    kind,
                )
            })
            .collect();
        let (offer, pending) = api
            .apply()
            .expect("bug: media were just added, so there is a change to offer");
        let client = Self {
            rtc,
            local_addr,
            media,
            pending: Some(pending),
            timeout: now,
            connected: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        Ok((client, offer.to_sdp_string()))
    }

    /// Applies the server's SDP answer.
    pub fn accept_answer(&mut self, answer: &str) -> Result<(), ClientError> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| ClientError::Answer("no offer is waiting for an answer".into()))?;
        let answer =
            SdpAnswer::from_sdp_string(answer).map_err(|e| ClientError::Answer(e.to_string()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| ClientError::Answer(e.to_string()))?;
        self.drain();
        Ok(())
    }

    /// The local address (socket) this session uses.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether the session still runs.
    pub fn is_alive(&self) -> bool {
        self.rtc.is_alive()
    }

    /// Sends one frame (publishers): an H.264 access unit in Annex B, or an Opus packet, with
    /// its RTP time (90 kHz or 48 kHz, extended to 64 bits by the caller) and the time it was
    /// captured, which the sender reports tie to the RTP time (so an encoder that delays video
    /// does not shift it against audio).
    pub fn write(
        &mut self,
        captured: Instant,
        kind: MediaKind,
        rtp_time: u64,
        data: &[u8],
    ) -> Result<(), ClientError> {
        if kind == MediaKind::Audio && data.len() > MAX_AUDIO_FRAME {
            return Err(ClientError::AudioFrameTooLarge(data.len()));
        }
        let mid = self.mid_of(kind).ok_or(ClientError::NotNegotiated(kind))?;
        let (codec, frequency) = match kind {
            MediaKind::Audio => (Codec::Opus, Frequency::FORTY_EIGHT_KHZ),
            MediaKind::Video => (Codec::H264, Frequency::NINETY_KHZ),
        };
        let remote = self
            .rtc
            .media(mid)
            .map(|m| m.remote_pts().to_vec())
            .unwrap_or_default();
        let writer = self
            .rtc
            .writer(mid)
            .ok_or(ClientError::NotNegotiated(kind))?;
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == codec && remote.contains(&p.pt()))
            .map(|p| p.pt())
            .ok_or(ClientError::NotNegotiated(kind))?;
        writer
            .write(
                pt,
                captured,
                MediaTime::new(rtp_time, frequency),
                data.to_vec(),
            )
            .map_err(|e| ClientError::Write(e.to_string()))?;
        self.drain();
        Ok(())
    }

    /// Asks the publisher for a key frame (subscribers). Fails quietly until video has arrived.
    pub fn request_keyframe(&mut self) {
        let Some(mid) = self.mid_of(MediaKind::Video) else {
            return;
        };
        if let Some(mut writer) = self.rtc.writer(mid)
            && writer.is_request_keyframe_possible(KeyframeRequestKind::Pli)
        {
            let _ = writer.request_keyframe(None, KeyframeRequestKind::Pli);
        }
        self.drain();
    }

    /// Ends the session.
    pub fn close(&mut self) {
        self.rtc.disconnect();
        self.drain();
    }

    /// A datagram arrived at the client's socket.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        self.try_receive(now, source, contents);
    }

    /// Takes the datagram if it belongs to this session (several sessions may share a socket);
    /// returns whether it did.
    pub fn try_receive(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) -> bool {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local_addr, contents) else {
            return false;
        };
        let input = Input::Receive(now, receive);
        if !self.rtc.accepts(&input) {
            return false;
        }
        if self.rtc.handle_input(input).is_err() {
            self.rtc.disconnect();
        }
        self.drain();
        true
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            self.rtc.disconnect();
        }
        self.drain();
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rtc.is_alive().then_some(self.timeout)
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.transmits.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn mid_of(&self, kind: MediaKind) -> Option<Mid> {
        self.media.iter().find(|(_, k)| *k == kind).map(|(m, _)| *m)
    }

    fn kind_of(&self, mid: Mid) -> Option<MediaKind> {
        self.media.iter().find(|(m, _)| *m == mid).map(|(_, k)| *k)
    }

    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.timeout = at;
                    break;
                }
                Ok(Output::Transmit(t)) => self.transmits.push_back(Datagram {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.to_vec(),
                }),
                Ok(Output::Event(event)) => self.on_event(event),
                Err(_) => {
                    self.rtc.disconnect();
                    break;
                }
            }
        }
        if !self.rtc.is_alive()
            && self.events.back() != Some(&ClientEvent::Disconnected)
            && self.connected
        {
            self.connected = false;
            self.events.push_back(ClientEvent::Disconnected);
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                self.events.push_back(ClientEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.rtc.disconnect()
            }
            Event::KeyframeRequest(_) => self.events.push_back(ClientEvent::KeyframeRequested),
            Event::MediaData(data) => {
                let Some(kind) = self.kind_of(data.mid) else {
                    return;
                };
                let ssrc = self
                    .rtc
                    .direct_api()
                    .stream_rx_by_mid(data.mid, data.rid)
                    .map_or(0, |s| *s.ssrc());
                let frame = MediaFrame {
                    ssrc,
                    // The timeline unwraps RTP time itself; str0m's extension is per stream.
                    rtp_time: data.time.numer() as u32,
                    contiguous: data.contiguous,
                    data: data.data.to_vec(),
                };
                self.events.push_back(ClientEvent::Frame(kind, frame));
            }
            Event::SenderFeedback(feedback) => {
                let Some(kind) = self.kind_of(feedback.mid) else {
                    return;
                };
                let info = feedback.sender_info;
                let report = SenderReport {
                    ssrc: *info.ssrc,
                    rtp_time: info.rtp_time.numer() as u32,
                    ntp_time: system_time_to_ntp(info.ntp_time),
                };
                self.events
                    .push_back(ClientEvent::SenderReport(kind, report));
            }
            _ => {}
        }
    }
}

/// A wall-clock time as a 64-bit NTP timestamp.
fn system_time_to_ntp(time: SystemTime) -> u64 {
    let unix_nanos = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    };
    nanos_to_ntp(unix_nanos + NTP_UNIX_OFFSET_SECS * NANOS_PER_SEC)
}
