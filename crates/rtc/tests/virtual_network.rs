//! The room and its clients over an in-memory network on a virtual clock (no sockets, no
//! waiting; `convrec_rtc::scenario`): deterministic scenarios of what a real network does to a
//! call.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::time::{Duration, Instant};

use convrec_media::source::synthetic::{SourceEvent, SyntheticConfig, SyntheticSource};
use convrec_rtc::room::RoomEvent;
use convrec_rtc::scenario::VirtualCall;
use convrec_testkit::*;

/// A virtual call whose publisher sends the embedded fixtures from a synthetic source.
struct Call {
    call: VirtualCall,
    source: SyntheticSource,
    next_frame: Option<(Duration, SourceEvent)>,
}

impl std::ops::Deref for Call {
    type Target = VirtualCall;
    fn deref(&self) -> &VirtualCall {
        &self.call
    }
}

impl std::ops::DerefMut for Call {
    fn deref_mut(&mut self) -> &mut VirtualCall {
        &mut self.call
    }
}

impl Call {
    fn new() -> Self {
        Self::with_subscriber(false)
    }

    /// A call whose subscriber is a recorder (`recorder`) or a participant.
    fn with_subscriber(recorder: bool) -> Self {
        Self {
            call: VirtualCall::new(Instant::now(), recorder).unwrap(),
            source: SyntheticSource::new(
                SyntheticConfig::default(),
                video_fixture("cbp-320x240-30fps.h264"),
                opus_fixture(),
            ),
            next_frame: None,
        }
    }

    /// Runs the call until `until` (virtual time since the start), sending media once the
    /// publisher is connected and a key frame whenever one is asked for.
    fn run(&mut self, until: Duration) {
        let end = self.call.start + until;
        loop {
            if self.call.publisher.is_connected() && self.next_frame.is_none() {
                self.next_frame = Some(self.source.next_event());
            }
            let frame_at = self
                .next_frame
                .as_ref()
                .map(|(at, _)| self.call.start + *at);
            if !self.call.step(end, frame_at) {
                return;
            }
            let now = self.call.now;
            if frame_at.is_some_and(|at| at <= now) {
                let (_, event) = self.next_frame.take().unwrap();
                if let SourceEvent::Frame(kind, frame) = event {
                    let _ = self.call.publisher.write(
                        now,
                        kind,
                        u64::from(frame.rtp_time),
                        &frame.data,
                    );
                }
            }
            for _ in 0..std::mem::take(&mut self.call.keyframe_requests) {
                self.source.request_keyframe();
            }
        }
    }

    /// The subscriber's video frames: (RTP time, whether it holds an IDR picture).
    fn received_video(&self) -> Vec<(u32, bool)> {
        self.call.video().map(|r| (r.rtp_time, r.idr)).collect()
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
    let frames = &call.received_video();
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
        let (from, asked) = (call.received_video().len(), call.now - call.start);
        call.subscriber.request_keyframe();
        let answered = loop {
            let elapsed = call.now - call.start;
            assert!(
                elapsed < asked + Duration::from_secs(2),
                "request {round} at {asked:?} not answered"
            );
            call.run(elapsed + Duration::from_millis(5));
            let video: Vec<_> = call.video().copied().collect();
            if let Some(frame) = video[from..].iter().find(|r| r.idr) {
                break frame.at;
            }
        };
        // Two trips over the wire and one frame interval at 30 fps.
        assert!(
            answered - asked < Duration::from_millis(100),
            "request {round} at {asked:?} answered at {answered:?}"
        );
    }
}
