//! Harnesses shared by the `cargo fuzz` targets (`fuzz/`) and the corpus replay test, so a
//! crash found once stays fixed.

use std::net::SocketAddr;
use std::time::Instant;

use convrec_media::timeline::MediaKind;

use crate::client::Client;
use crate::room::Room;

/// An SDP offer as a WHIP or WHEP body brings it: the room takes it as a publisher's offer,
/// then as a participant's and a recorder's subscription to a real publication. Each is
/// answered with an SDP answer or refused with an error; the room goes on either way.
/// Panics only if convrec (or str0m under it) is wrong.
pub fn sdp_offer(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let now = Instant::now();
    let mut room = Room::new(SocketAddr::from(([127, 0, 0, 1], 5000)));
    if let Ok((peer, answer)) = room.publish(now, &text) {
        assert!(answer.starts_with("v=0"), "an answer is SDP: {answer}");
        room.remove(now, peer).expect("the publication just made");
    }
    let (_publisher, offer) = Client::publisher(
        now,
        SocketAddr::from(([127, 0, 0, 2], 6000)),
        &[MediaKind::Audio, MediaKind::Video],
    )
    .expect("a publisher's offer");
    let (publication, _) = room
        .publish(now, &offer)
        .expect("str0m's own offer is taken");
    for recorder in [false, true] {
        let subscribed = if recorder {
            room.subscribe_recorder(now, publication, &text)
        } else {
            room.subscribe(now, publication, &text)
        };
        if let Ok((_, answer)) = subscribed {
            assert!(answer.starts_with("v=0"), "an answer is SDP: {answer}");
        }
    }
    room.handle_timeout(now);
    while room.poll_transmit().is_some() {}
    while room.poll_event().is_some() {}
}
