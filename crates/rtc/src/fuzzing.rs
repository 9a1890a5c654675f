//! Harnesses shared by the `cargo fuzz` targets (`fuzz/`) and the corpus replay test, so a
//! crash found once stays fixed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use convrec_media::timeline::MediaKind;

use crate::client::Client;
use crate::room::Room;
use crate::scenario::{PUBLISHER, ROOM, SUBSCRIBER, VirtualCall};

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

/// Hostile traffic on a connected media path (`convrec_rtc::scenario`): after ICE and DTLS, the
/// input is a program of datagrams injected at the room (as from the publisher's address) and at
/// the subscriber (as from the room's), frames the publisher sends with hostile payloads (so they
/// reach the room's and the subscriber's RTP depacketizers and the room's key-frame detection
/// through SRTP), and time passing. The first byte picks a participant or a recorder as the
/// subscriber. Nothing panics, and the subscriber never gets more frames than were sent: injected
/// datagrams never turn into media.
pub fn media_path(data: &[u8]) {
    media_path_frames(data);
}

/// [`media_path`], returning the (video, audio) frames the subscriber received.
pub fn media_path_frames(data: &[u8]) -> (usize, usize) {
    let Some((&first, mut program)) = data.split_first() else {
        return (0, 0);
    };
    let start = Instant::now();
    let mut call = VirtualCall::new(start, first & 1 == 1).expect("str0m's own offers are taken");
    call.run_until(start + Duration::from_millis(300));
    let (mut video_sent, mut audio_sent) = (0usize, 0usize);
    while let Some((&op, rest)) = program.split_first() {
        program = rest;
        match op % 5 {
            0 | 1 => {
                let (bytes, rest) = sized(program);
                program = rest;
                let (from, to) = if op % 5 == 0 {
                    (PUBLISHER, ROOM)
                } else {
                    (ROOM, SUBSCRIBER)
                };
                call.inject(from, to, bytes.to_vec());
            }
            2 | 3 => {
                let (payload, rest) = sized(program);
                program = rest;
                let now = call.now;
                let (kind, sent, ticks) = if op % 5 == 2 {
                    (MediaKind::Video, &mut video_sent, 3000)
                } else {
                    (MediaKind::Audio, &mut audio_sent, 960)
                };
                *sent += 1;
                let rtp_time = u64::try_from(*sent)
                    .unwrap_or(u64::MAX)
                    .saturating_mul(ticks);
                let _ = call.publisher.write(now, kind, rtp_time, payload);
            }
            _ => {
                let (&ms, rest) = program.split_first().unwrap_or((&0, &[]));
                program = rest;
                let end = call.now + Duration::from_millis(u64::from(ms) * 4);
                call.run_until(end);
            }
        }
    }
    let end = call.now + Duration::from_millis(200);
    call.run_until(end);
    let video = call.video().count();
    let audio = call.received.len() - video;
    assert!(
        video <= video_sent,
        "{video} video frames received of {video_sent} sent"
    );
    assert!(
        audio <= audio_sent,
        "{audio} audio frames received of {audio_sent} sent"
    );
    (video, audio)
}

/// A length-prefixed (u16, big-endian) run of `program`, cut to what is there, and the rest.
fn sized(program: &[u8]) -> (&[u8], &[u8]) {
    let (len, rest) = match program {
        [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
        _ => (0, &[][..]),
    };
    rest.split_at(len.min(rest.len()))
}
