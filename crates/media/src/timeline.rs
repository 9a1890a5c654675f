//! The timeline of one publication: received frames in, file samples with timestamps out.
//!
//! Sans-IO: every input carries the local time it happened at (`now`), and nothing here reads a
//! clock. Feed frames with [`PublicationTimeline::handle_video`] / [`handle_audio`], sender
//! reports with [`handle_sender_report`], wake it at [`poll_timeout`] with [`handle_timeout`], and
//! drain [`poll_event`] after each call.
//!
//! How time is assigned (see `docs/internals/timestamps.md` for the reasoning):
//! - File time 0 is the `epoch` given at construction (when the publication started).
//! - Each source (SSRC) is anchored at its first frame's arrival; later frames are placed by
//!   their RTP timestamp difference, so network jitter never moves a sample.
//! - Once an RTCP sender report is known for a source, the source is placed by the sender's NTP
//!   clock instead, which is common to audio and video: this aligns them (lip sync). The first
//!   report fixes the offset between sender time and file time so its source does not move;
//!   a later source whose report would pull it back moves the offset forward instead, so
//!   alignment only ever opens a short gap and never squeezes time.
//! - Gaps stay gaps: a sample's duration is the distance to the next sample of its track, so a
//!   pause shows as a long last frame (video) or a long packet (audio) and no later sample moves.
//! - Per track, time only moves forward: duplicates, late and out-of-order frames are dropped
//!   (video then waits for a key frame), never re-timed backwards.
//!
//! [`handle_audio`]: PublicationTimeline::handle_audio
//! [`handle_sender_report`]: PublicationTimeline::handle_sender_report
//! [`poll_timeout`]: PublicationTimeline::poll_timeout
//! [`handle_timeout`]: PublicationTimeline::handle_timeout
//! [`poll_event`]: PublicationTimeline::poll_event

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::h264::{self, AccessUnitInfo};
use crate::opus;
use crate::rtp_time::{nanos_to_ticks, nearest_extended, ntp_to_nanos, ticks_to_nanos};

/// RTP clock rate of H.264 video (RFC 6184).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;
/// RTP clock rate of Opus audio (RFC 7587).
pub const AUDIO_CLOCK_RATE: u32 = opus::OPUS_CLOCK_RATE;

/// Audio that overlaps the previous packet by less than this is butted against it instead of
/// dropped (re-anchoring on a sender report moves a track by a few milliseconds).
const AUDIO_SNAP_TOLERANCE_NS: i128 = 10_000_000;
/// The most a sender report may move a source from where it is placed (see
/// [`PublicationTimeline::handle_sender_report`]). Real corrections (the first report of the
/// second track, RTP clock drift) are tens of milliseconds.
pub const MAX_SENDER_REPORT_CORRECTION: Duration = Duration::from_secs(1);
/// A report that would pull a source back by less than this is taken as jitter, not a real
/// step: audio and video stay within this of each other, and frame timing stays smooth.
const SENDER_REPORT_DEAD_BAND_NS: i128 = 15_000_000;
/// The shortest frame interval taken as a frame rate (120 fps).
const MIN_VIDEO_FRAME_TICKS: u32 = VIDEO_CLOCK_RATE / 120;
/// Video frame duration assumed when none has been observed yet (30 fps).
const DEFAULT_VIDEO_FRAME_TICKS: u32 = VIDEO_CLOCK_RATE / 30;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// Opus audio.
    Audio,
    /// H.264 video.
    Video,
}

impl MediaKind {
    /// The RTP (and file) clock rate of this kind.
    pub fn clock_rate(self) -> u32 {
        match self {
            MediaKind::Audio => AUDIO_CLOCK_RATE,
            MediaKind::Video => VIDEO_CLOCK_RATE,
        }
    }
}

/// One received media frame: an H.264 access unit (Annex B) or one Opus packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFrame {
    /// The RTP synchronisation source it came from.
    pub ssrc: u32,
    /// Its RTP timestamp (90 kHz for video, 48 kHz for audio).
    pub rtp_time: u32,
    /// False when the WebRTC layer knows frames were lost just before this one.
    pub contiguous: bool,
    /// The payload: Annex B for H.264, one packet for Opus.
    pub data: Vec<u8>,
}

/// The mapping an RTCP sender report gives: this RTP timestamp was sampled at this NTP time of
/// the sender's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    /// The source it describes.
    pub ssrc: u32,
    /// RTP timestamp.
    pub rtp_time: u32,
    /// Sender wall clock, 64-bit NTP format.
    pub ntp_time: u64,
}

/// Settings of a [`PublicationTimeline`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineConfig {
    /// The publication carries video: ask for a key frame at once.
    pub expect_video: bool,
    /// Ask for a key frame when none came for this long, so players can seek. `None`: never.
    pub keyframe_interval: Option<Duration>,
    /// While waiting for a key frame, repeat the request this often.
    pub keyframe_retry: Duration,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        Self {
            expect_video: true,
            keyframe_interval: Some(Duration::from_secs(10)),
            keyframe_retry: Duration::from_secs(1),
        }
    }
}

/// The current H.264 parameter sets of a video track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterSets {
    /// Sequence parameter set NAL unit.
    pub sps: Vec<u8>,
    /// Picture parameter set NAL unit.
    pub pps: Vec<u8>,
}

/// A sample ready for the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineSample {
    /// Its track.
    pub kind: MediaKind,
    /// Decode (= presentation) time in ticks of [`MediaKind::clock_rate`] since the epoch.
    pub dts: u64,
    /// Ticks until the next sample of the track (gaps included).
    pub duration: u32,
    /// A sync sample (IDR for video; every Opus packet).
    pub keyframe: bool,
    /// Video: 4-byte length-prefixed NAL units, key frames always carrying SPS and PPS.
    /// Audio: one Opus packet.
    pub data: Vec<u8>,
    /// Video key frames: the parameter sets in force from this sample on.
    pub parameter_sets: Option<ParameterSets>,
}

/// Why a key frame is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyFrameReason {
    /// The recording of this publication begins.
    Start,
    /// Frames were lost (or dropped as late) and decoding cannot continue.
    Loss,
    /// A new source (SSRC) appeared.
    NewSource,
    /// The configured interval passed without a key frame.
    Interval,
}

/// What the timeline asks of its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimelineEvent {
    /// Write this sample.
    Sample(TimelineSample),
    /// Send a PLI/FIR to the publisher.
    RequestKeyFrame(KeyFrameReason),
}

/// Counters for operators and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineStats {
    /// Samples handed out.
    pub samples: u64,
    /// Frames dropped as duplicate, late or out of order.
    pub dropped_late: u64,
    /// Video frames dropped while waiting for a key frame.
    pub dropped_waiting_for_keyframe: u64,
    /// Frames dropped because their payload could not be read.
    pub dropped_invalid: u64,
    /// Key frame requests made.
    pub keyframe_requests: u64,
    /// New sources (SSRC changes) seen.
    pub source_changes: u64,
    /// Sender reports ignored because they would move their source implausibly far.
    pub ignored_sender_reports: u64,
}

/// The timeline of one publication (its audio and video tracks). See the module docs.
#[derive(Debug)]
pub struct PublicationTimeline {
    config: TimelineConfig,
    epoch: Instant,
    clock: SenderClock,
    audio: Track,
    video: Track,
    video_state: VideoState,
    events: VecDeque<TimelineEvent>,
    stats: TimelineStats,
    scratch: Vec<u8>,
}

/// Maps the sender's NTP clock to file time.
#[derive(Debug, Default)]
struct SenderClock {
    /// File time minus sender time, fixed at the first sender report.
    offset_ns: Option<i128>,
    /// The latest sender report: (local ns since epoch when received, sender ns).
    latest: Option<(i128, i128)>,
}

impl SenderClock {
    /// Where a frame that arrived at local time `local_ns` belongs in file time, for a source
    /// without its own sender report yet. Follows the sender's clock once it is known, so a
    /// source that starts hours in is not off by the drift between the two clocks.
    fn arrival_to_file(&self, local_ns: i128) -> i128 {
        match (self.offset_ns, self.latest) {
            (Some(offset), Some((received, sender))) => sender + (local_ns - received) + offset,
            _ => local_ns,
        }
    }
}

#[derive(Debug)]
struct Track {
    kind: MediaKind,
    source: Option<Source>,
    /// The sender report that places the current source, once adopted.
    report: Option<SenderReport>,
    /// A report that came before its source's first frame, with when it was received.
    waiting_report: Option<(SenderReport, i128)>,
    /// Held back until the next sample tells its duration.
    pending: Option<TimelineSample>,
    /// End of the pending sample by its own length (audio: TOC; video: last frame interval).
    pending_nominal: u32,
    /// End of the last sample released by [`PublicationTimeline::flush`].
    flushed_end: Option<u64>,
    /// Video: the last observed frame interval in ticks.
    frame_ticks: u32,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    ssrc: u32,
    /// Whether a frame of this source has been placed yet.
    placed_any: bool,
    last_ext: i64,
    last_local_ns: i128,
    /// Arrival anchor: this extended RTP time sits at this file time.
    anchor_ext: i64,
    anchor_file_ns: i128,
}

#[derive(Debug)]
struct VideoState {
    waiting_for_keyframe: Option<KeyFrameReason>,
    last_request: Option<Instant>,
    last_keyframe: Option<Instant>,
    parameter_sets: Option<ParameterSets>,
    expected: bool,
}

impl VideoState {
    /// The key-frame interval counts from the last key frame or request, whichever is later.
    fn interval_anchor(&self) -> Option<Instant> {
        self.last_keyframe.max(self.last_request)
    }
}

impl Track {
    fn new(kind: MediaKind) -> Self {
        Self {
            kind,
            source: None,
            report: None,
            waiting_report: None,
            pending: None,
            pending_nominal: 0,
            flushed_end: None,
            frame_ticks: DEFAULT_VIDEO_FRAME_TICKS,
        }
    }

    fn rate(&self) -> u32 {
        self.kind.clock_rate()
    }

    /// File time (ns) of an extended RTP time of the current source.
    fn file_ns(&self, source: &Source, ext: i64, clock: &SenderClock) -> i128 {
        match (self.report, clock.offset_ns) {
            (Some(report), Some(offset)) if report.ssrc == source.ssrc => {
                let report_ext = nearest_extended(report.rtp_time, ext);
                ntp_to_nanos(report.ntp_time)
                    + ticks_to_nanos(ext - report_ext, self.rate())
                    + offset
            }
            _ => source.anchor_file_ns + ticks_to_nanos(ext - source.anchor_ext, self.rate()),
        }
    }

    /// Where the next sample may go: (earliest dts, end of the previous sample by its own
    /// length), from the pending sample or, after a flush, the end of what was released.
    fn floor(&self) -> Option<(u64, u64)> {
        match &self.pending {
            Some(p) => Some((
                p.dts.saturating_add(1),
                p.dts.saturating_add(u64::from(self.pending_nominal)),
            )),
            None => self.flushed_end.map(|end| (end, end)),
        }
    }
}

/// Outcome of placing a frame on its track.
enum Placement {
    /// Place at this dts (ticks).
    At(u64),
    /// The same RTP time as the frame placed last: a duplicate of it.
    Duplicate,
    /// Older than the frame placed last (late, out of order), or overlapping it: drop it.
    Late,
}

impl PublicationTimeline {
    /// A timeline whose file time 0 is `now`.
    pub fn new(config: TimelineConfig, now: Instant) -> Self {
        let expected = config.expect_video;
        let mut timeline = Self {
            config,
            epoch: now,
            clock: SenderClock::default(),
            audio: Track::new(MediaKind::Audio),
            video: Track::new(MediaKind::Video),
            video_state: VideoState {
                waiting_for_keyframe: Some(KeyFrameReason::Start),
                last_request: None,
                last_keyframe: None,
                parameter_sets: None,
                expected,
            },
            events: VecDeque::new(),
            stats: TimelineStats::default(),
            scratch: Vec::new(),
        };
        timeline.handle_timeout(now);
        timeline
    }

    /// The local time that file time 0 stands for.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Counters so far.
    pub fn stats(&self) -> TimelineStats {
        self.stats
    }

    fn local_ns(&self, now: Instant) -> i128 {
        // A `now` before the epoch is a caller's mistake; treat it as the epoch.
        i128::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(i128::MAX)
    }

    /// An H.264 access unit (Annex B) arrived at `now`.
    pub fn handle_video(&mut self, now: Instant, frame: MediaFrame) {
        self.video_state.expected = true;
        let info = match h264::annexb_to_length_prefixed(&frame.data, &mut self.scratch) {
            Ok(info) => info,
            Err(_) => {
                self.stats.dropped_invalid += 1;
                return;
            }
        };
        // Parameter sets count even when the frame carrying them is dropped.
        let AccessUnitInfo {
            keyframe,
            has_slice,
            sps,
            pps,
        } = info;
        if let Some(sps) = sps.filter(|s| h264::parse_sps(s).is_ok()) {
            let pps = pps.or_else(|| {
                self.video_state
                    .parameter_sets
                    .as_ref()
                    .map(|p| p.pps.clone())
            });
            if let Some(pps) = pps {
                self.video_state.parameter_sets = Some(ParameterSets { sps, pps });
            }
        } else if let (Some(pps), Some(current)) = (pps, self.video_state.parameter_sets.as_mut()) {
            current.pps = pps;
        }
        if !has_slice {
            self.stats.dropped_invalid += 1;
            return;
        }
        let new_source = self.note_source(MediaKind::Video, now, &frame);
        if new_source {
            self.start_waiting(KeyFrameReason::NewSource);
            // A request made before this source sent anything may never have reached it (an
            // SFU cannot ask a publisher whose video has not started): ask again now rather
            // than a retry interval later.
            self.video_state.last_request = None;
        } else if !frame.contiguous && !keyframe {
            self.start_waiting(KeyFrameReason::Loss);
        }
        if self.video_state.waiting_for_keyframe.is_some()
            && (!keyframe || self.video_state.parameter_sets.is_none())
        {
            self.stats.dropped_waiting_for_keyframe += 1;
            self.handle_timeout(now);
            return;
        }
        let dts = match self.place(MediaKind::Video, now, frame.rtp_time) {
            Placement::At(dts) => dts,
            // The frame just written, again: nothing is missing.
            Placement::Duplicate => {
                self.stats.dropped_late += 1;
                return;
            }
            Placement::Late => {
                self.stats.dropped_late += 1;
                // Frames written after it may reference it: decoding cannot go on.
                if !keyframe {
                    self.start_waiting(KeyFrameReason::Loss);
                }
                self.handle_timeout(now);
                return;
            }
        };
        if keyframe {
            self.video_state.waiting_for_keyframe = None;
        }
        let mut data = std::mem::take(&mut self.scratch);
        let mut parameter_sets = None;
        if keyframe {
            self.video_state.last_keyframe = Some(now);
            let params = self
                .video_state
                .parameter_sets
                .clone()
                .expect("bug: key frames are accepted only once parameter sets are known");
            if !has_in_band_parameter_sets(&data) {
                data = prepend_parameter_sets(&params, &data);
            }
            parameter_sets = Some(params);
        }
        let sample = TimelineSample {
            kind: MediaKind::Video,
            dts,
            duration: 0,
            keyframe,
            data,
            parameter_sets,
        };
        self.push(MediaKind::Video, sample, None);
        self.handle_timeout(now);
    }

    /// An Opus packet arrived at `now`.
    pub fn handle_audio(&mut self, now: Instant, frame: MediaFrame) {
        let samples = match opus::packet_samples(&frame.data) {
            Ok(samples) => samples,
            Err(_) => {
                self.stats.dropped_invalid += 1;
                return;
            }
        };
        self.note_source(MediaKind::Audio, now, &frame);
        let dts = match self.place(MediaKind::Audio, now, frame.rtp_time) {
            Placement::At(dts) => dts,
            Placement::Late | Placement::Duplicate => {
                self.stats.dropped_late += 1;
                return;
            }
        };
        let sample = TimelineSample {
            kind: MediaKind::Audio,
            dts,
            duration: samples,
            keyframe: true,
            data: frame.data,
            parameter_sets: None,
        };
        self.push(MediaKind::Audio, sample, Some(samples));
    }

    /// An RTCP sender report for one of the publication's sources arrived at `now`.
    ///
    /// A report is trusted only within reason: one that would move its source by more than
    /// [`MAX_SENDER_REPORT_CORRECTION`] from where it is placed now (a sender clock step, or
    /// garbage) is ignored and counted. A report for a source that has not sent media yet waits
    /// for its first frame and is checked then.
    pub fn handle_sender_report(&mut self, now: Instant, kind: MediaKind, report: SenderReport) {
        let received = self.local_ns(now);
        let track = self.track_mut(kind);
        if track
            .source
            .is_some_and(|s| s.ssrc == report.ssrc && s.placed_any)
        {
            self.adopt_report(kind, report, received, false);
        } else {
            track.waiting_report = Some((report, received));
        }
    }

    /// Places the track's current source by `report` if it is plausible (see
    /// [`handle_sender_report`](Self::handle_sender_report)). `first_frame`: the source has
    /// nothing in the file yet, so it may move either way.
    fn adopt_report(
        &mut self,
        kind: MediaKind,
        report: SenderReport,
        received: i128,
        first_frame: bool,
    ) {
        let sender_ns = ntp_to_nanos(report.ntp_time);
        let track = self.track(kind);
        let source = track
            .source
            .expect("bug: reports are adopted for a started source");
        let ext = nearest_extended(report.rtp_time, source.last_ext);
        let current_ns = track.file_ns(&source, ext, &self.clock);
        match self.clock.offset_ns {
            // The first report fixes the offset so its source keeps its current placement.
            None => self.clock.offset_ns = Some(current_ns - sender_ns),
            Some(offset) => {
                let correction = sender_ns + offset - current_ns;
                if correction.abs() > MAX_SENDER_REPORT_CORRECTION.as_nanos() as i128 {
                    self.stats.ignored_sender_reports += 1;
                    return;
                }
                // Reports jitter by a few milliseconds (a busy sender stamps them late or
                // early): following each would put hiccups into the frame timing. Within the
                // dead band the mapping in use stays; drift beyond it is followed.
                if !first_frame && correction.abs() < SENDER_REPORT_DEAD_BAND_NS {
                    return;
                }
                // A report may pull a source back: its first one when it reached us faster than
                // the source that fixed the offset, or a step back of the sender's clock. Move
                // the whole publication forward instead: the other track gets a short gap, and
                // no frame has to be squeezed or dropped.
                if !first_frame && correction < 0 {
                    self.clock.offset_ns = Some(offset - correction);
                }
            }
        }
        self.clock.latest = Some((received, sender_ns));
        self.track_mut(kind).report = Some(report);
    }

    /// Time passed: key frame requests that fell due are queued.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.video_state.expected {
            return;
        }
        let state = &self.video_state;
        let due = match state.waiting_for_keyframe {
            Some(reason) => match state.last_request {
                Some(last) if now.saturating_duration_since(last) < self.config.keyframe_retry => {
                    None
                }
                _ => Some(reason),
            },
            None => self.config.keyframe_interval.and_then(|interval| {
                let since = state.interval_anchor()?;
                (now.saturating_duration_since(since) >= interval)
                    .then_some(KeyFrameReason::Interval)
            }),
        };
        if let Some(reason) = due {
            self.video_state.last_request = Some(now);
            self.stats.keyframe_requests += 1;
            self.events
                .push_back(TimelineEvent::RequestKeyFrame(reason));
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.video_state.expected {
            return None;
        }
        let state = &self.video_state;
        match state.waiting_for_keyframe {
            Some(_) => Some(
                state
                    .last_request
                    .map_or(self.epoch, |t| t + self.config.keyframe_retry),
            ),
            None => {
                let interval = self.config.keyframe_interval?;
                Some(state.interval_anchor()? + interval)
            }
        }
    }

    /// The next thing to do, if any.
    pub fn poll_event(&mut self) -> Option<TimelineEvent> {
        self.events.pop_front()
    }

    /// Releases the samples held back for their duration, giving each its nominal length: at
    /// the end of a recording. Later frames still go after what was released.
    pub fn flush(&mut self) {
        for kind in [MediaKind::Audio, MediaKind::Video] {
            let track = self.track_mut(kind);
            if let Some(mut sample) = track.pending.take() {
                sample.duration = track.pending_nominal;
                track.flushed_end = Some(sample.dts.saturating_add(u64::from(sample.duration)));
                self.stats.samples += 1;
                self.events.push_back(TimelineEvent::Sample(sample));
            }
        }
    }

    fn track(&self, kind: MediaKind) -> &Track {
        match kind {
            MediaKind::Audio => &self.audio,
            MediaKind::Video => &self.video,
        }
    }

    fn track_mut(&mut self, kind: MediaKind) -> &mut Track {
        match kind {
            MediaKind::Audio => &mut self.audio,
            MediaKind::Video => &mut self.video,
        }
    }

    fn start_waiting(&mut self, reason: KeyFrameReason) {
        if self.video_state.waiting_for_keyframe.is_none() {
            self.video_state.waiting_for_keyframe = Some(reason);
            // A new reason deserves a request now, not after the retry interval.
            self.video_state.last_request = None;
        }
    }

    /// Records the frame's source; returns whether it is a new one.
    fn note_source(&mut self, kind: MediaKind, now: Instant, frame: &MediaFrame) -> bool {
        let local = self.local_ns(now);
        let anchor_file_ns = self.clock.arrival_to_file(local);
        let track = self.track_mut(kind);
        if track.source.is_some_and(|s| s.ssrc == frame.ssrc) {
            return false;
        }
        let had_source = track.source.is_some();
        // The previous source's report does not describe the new one.
        track.report = None;
        let ext = i64::from(frame.rtp_time);
        track.source = Some(Source {
            ssrc: frame.ssrc,
            placed_any: false,
            last_ext: ext,
            last_local_ns: local,
            anchor_ext: ext,
            anchor_file_ns,
        });
        if had_source {
            self.stats.source_changes += 1;
        }
        true
    }

    /// Where a frame of the track's current source goes, enforcing forward-only time.
    fn place(&mut self, kind: MediaKind, now: Instant, rtp_time: u32) -> Placement {
        let local = self.local_ns(now);
        let track = self.track(kind);
        let mut source = track.source.expect("bug: note_source runs before place");
        let rate = track.rate();
        let elapsed_ticks = i64::try_from(nanos_to_ticks(local - source.last_local_ns, rate))
            .unwrap_or(i64::MAX / 2);
        let ext = nearest_extended(rtp_time, source.last_ext.saturating_add(elapsed_ticks));
        if source.placed_any && ext == source.last_ext {
            return Placement::Duplicate;
        }
        if source.placed_any && ext < source.last_ext {
            return Placement::Late;
        }
        let first_frame = !source.placed_any;
        source.placed_any = true;
        source.last_ext = ext;
        source.last_local_ns = local;
        let track = self.track_mut(kind);
        track.source = Some(source);
        if first_frame
            && let Some((report, received)) =
                track.waiting_report.take_if(|(r, _)| r.ssrc == source.ssrc)
        {
            // A report that came before the source's first frame places it from the start.
            self.adopt_report(kind, report, received, true);
        }
        let track = self.track(kind);
        let source = track.source.expect("bug: set above");
        let file_ns = track.file_ns(&source, ext, &self.clock);
        let ticks = u64::try_from(nanos_to_ticks(file_ns, rate).max(0)).unwrap_or(u64::MAX);
        let Some((earliest, end)) = track.floor() else {
            return Placement::At(ticks);
        };
        match kind {
            MediaKind::Audio => {
                let tolerance = u64::try_from(nanos_to_ticks(AUDIO_SNAP_TOLERANCE_NS, rate))
                    .expect("bug: tolerance is positive");
                if ticks.saturating_add(tolerance) < end {
                    Placement::Late
                } else {
                    Placement::At(ticks.max(end))
                }
            }
            // Video frames already have their place in the stream: keep them in order even if a
            // correction would put one a little earlier.
            MediaKind::Video => Placement::At(ticks.max(earliest)),
        }
    }

    /// Makes `sample` the pending one of its track, releasing the previous with its real length.
    fn push(&mut self, kind: MediaKind, sample: TimelineSample, nominal: Option<u32>) {
        let track = self.track_mut(kind);
        let dts = sample.dts;
        let released = track.pending.replace(sample).map(|mut previous| {
            let distance = dts.saturating_sub(previous.dts);
            previous.duration = u32::try_from(distance).unwrap_or(u32::MAX);
            previous
        });
        if let Some(previous) = &released
            && kind == MediaKind::Video
            && previous.duration > 0
        {
            // Keep the typical frame interval for the nominal length of the last frame; a
            // pause is not a frame interval, and neither is a frame kept in order by one tick.
            if (MIN_VIDEO_FRAME_TICKS..=VIDEO_CLOCK_RATE).contains(&previous.duration) {
                track.frame_ticks = previous.duration;
            }
        }
        track.pending_nominal = nominal.unwrap_or(track.frame_ticks);
        if let Some(previous) = released {
            self.stats.samples += 1;
            self.events.push_back(TimelineEvent::Sample(previous));
        }
    }
}

fn has_in_band_parameter_sets(length_prefixed: &[u8]) -> bool {
    let (mut sps, mut pps) = (false, false);
    for nal_type in h264::length_prefixed_nals(length_prefixed)
        .filter_map(|nal| nal.ok().and_then(h264::nal_type))
    {
        sps |= nal_type == h264::NAL_SPS;
        pps |= nal_type == h264::NAL_PPS;
    }
    sps && pps
}

fn prepend_parameter_sets(params: &ParameterSets, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + params.sps.len() + params.pps.len() + 8);
    for nal in [&params.sps, &params.pps] {
        h264::push_length_prefixed(&mut out, nal).expect("bug: parameter sets are small");
    }
    out.extend_from_slice(data);
    out
}
