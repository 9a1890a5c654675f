//! WebRTC for convrec, on str0m: the SFU room of a conversation ([`room`]), the client side of a
//! session for recorders and synthetic participants ([`client`]), the codecs negotiated
//! ([`codecs`]), the one place that touches sockets and clocks ([`driver`]), local addresses
//! ([`net`]), a real-time synthetic publisher ([`synthetic`]), and a TURN client ([`turn`]) that
//! forces an endpoint through a relay ([`relay`]).

pub mod client;
pub mod codecs;
pub mod driver;
#[doc(hidden)]
pub mod fuzzing;
pub mod net;
pub mod relay;
pub mod room;
pub mod scenario;
pub mod synthetic;
pub mod turn;

use std::net::SocketAddr;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The local address (socket) to send it from.
    pub source: SocketAddr,
    /// Where to.
    pub destination: SocketAddr,
    /// The bytes.
    pub contents: Vec<u8>,
}

/// str0m's media kind for the media core's.
pub(crate) fn str0m_kind(kind: convrec_media::timeline::MediaKind) -> str0m::media::MediaKind {
    match kind {
        convrec_media::timeline::MediaKind::Audio => str0m::media::MediaKind::Audio,
        convrec_media::timeline::MediaKind::Video => str0m::media::MediaKind::Video,
    }
}

/// The media core's media kind for str0m's.
pub(crate) fn media_kind(kind: str0m::media::MediaKind) -> convrec_media::timeline::MediaKind {
    match kind {
        str0m::media::MediaKind::Audio => convrec_media::timeline::MediaKind::Audio,
        str0m::media::MediaKind::Video => convrec_media::timeline::MediaKind::Video,
    }
}
