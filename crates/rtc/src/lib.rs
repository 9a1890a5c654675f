//! WebRTC for convrec, on str0m: the SFU room of a conversation ([`room`]), the client side of a
//! session for recorders and synthetic participants ([`client`]), the codecs negotiated
//! ([`codecs`]), and the one place that touches sockets and clocks ([`driver`]).

pub mod client;
pub mod codecs;
pub mod driver;
pub mod room;
