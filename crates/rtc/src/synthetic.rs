//! A synthetic publisher: plays a [`SyntheticSource`] (fixture media, looped) into a publishing
//! [`Client`] on its driver, in real time, answering key-frame requests. Synthetic participants,
//! the demo, tests and load benchmarks use it.

use std::time::Duration;

use convrec_media::source::synthetic::{SourceEvent, SyntheticSource};
use convrec_media::timeline::MediaKind;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::client::{Client, ClientEvent};
use crate::driver::DriverHandle;
use crate::relay::{Relayed, RelayedEvent};

/// How long a publisher may take to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a publisher sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayStats {
    /// Video frames written.
    pub video_frames: u64,
    /// Audio packets written.
    pub audio_packets: u64,
    /// Key-frame requests answered.
    pub keyframe_requests: u64,
    /// How long media flowed: from the connection to the last frame (setup and teardown are
    /// not in it).
    pub sent_for: Duration,
}

impl std::ops::AddAssign for PlayStats {
    /// Adds what a later session of the same publisher sent.
    fn add_assign(&mut self, later: Self) {
        self.video_frames += later.video_frames;
        self.audio_packets += later.audio_packets;
        self.keyframe_requests += later.keyframe_requests;
        self.sent_for += later.sent_for;
    }
}

/// Why playing stopped early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlayError {
    /// The session did not connect in time.
    #[error("the WebRTC session did not connect within {0:?}")]
    NotConnected(Duration),
    /// The session ended.
    #[error("the WebRTC session ended")]
    Disconnected,
    /// The driver stopped.
    #[error("the media driver stopped")]
    DriverStopped,
    /// The TURN relay failed.
    #[error("the TURN relay failed: {0}")]
    Relay(String),
}

/// Waits for `publisher` to connect, then plays `source` for `length`, sending only `kinds`.
pub async fn play(
    publisher: &DriverHandle<Relayed<Client>>,
    events: &mut UnboundedReceiver<RelayedEvent<ClientEvent>>,
    mut source: SyntheticSource,
    kinds: &[MediaKind],
    length: Duration,
) -> Result<PlayStats, PlayError> {
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
        while let Some(event) = events.recv().await {
            match event {
                RelayedEvent::Inner(ClientEvent::Connected) => return Ok(()),
                RelayedEvent::RelayFailed(reason) => return Err(PlayError::Relay(reason)),
                RelayedEvent::Inner(_) => {}
            }
        }
        Err(PlayError::Disconnected)
    })
    .await;
    match connected {
        Ok(result) => result?,
        Err(_) => return Err(PlayError::NotConnected(CONNECT_TIMEOUT)),
    }
    let mut stats = PlayStats::default();
    let start = tokio::time::Instant::now();
    loop {
        while let Ok(event) = events.try_recv() {
            match event {
                RelayedEvent::Inner(ClientEvent::KeyframeRequested) => {
                    stats.keyframe_requests += 1;
                    source.request_keyframe();
                }
                RelayedEvent::Inner(ClientEvent::Disconnected) => {
                    return Err(PlayError::Disconnected);
                }
                RelayedEvent::RelayFailed(reason) => return Err(PlayError::Relay(reason)),
                RelayedEvent::Inner(_) => {}
            }
        }
        let (at, event) = source.next_event();
        if at >= length {
            stats.sent_for = start.elapsed();
            return Ok(stats);
        }
        tokio::time::sleep_until(start + at).await;
        let SourceEvent::Frame(kind, frame) = event else {
            // The WebRTC stack sends its own sender reports.
            continue;
        };
        if !kinds.contains(&kind) {
            continue;
        }
        let captured = start.into_std() + at;
        let written = publisher
            .call(move |r, _| {
                r.inner()
                    .write(captured, kind, u64::from(frame.rtp_time), &frame.data)
            })
            .await
            .map_err(|_| PlayError::DriverStopped)?;
        if let Err(e) = written {
            tracing::debug!(error = %e, "a frame was not sent");
        }
        match kind {
            MediaKind::Video => stats.video_frames += 1,
            MediaKind::Audio => stats.audio_packets += 1,
        }
    }
}
