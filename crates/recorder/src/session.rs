//! One recorder's work, free of I/O: it speaks the entry-point protocol with the server,
//! subscribes to every publication (one WebRTC session and UDP socket each), records each
//! publication into its own fMP4 file (raw mode, SPEC §6) with the media core — or, when the
//! welcome asks for a composition, all of them into one composed file ([`crate::composed`]) —
//! and streams the files' blocks, numbered, for the server to make durable and acknowledge.
//!
//! Inputs: [`handle_server`](RecorderSession::handle_server) (a message from the server),
//! [`handle_receive`](RecorderSession::handle_receive) (a datagram),
//! [`handle_timeout`](RecorderSession::handle_timeout). Outputs: [`poll_message`]
//! (a message for the server), [`poll_transmit`](RecorderSession::poll_transmit) (a datagram),
//! [`poll_timeout`](RecorderSession::poll_timeout).
//!
//! It reports **ready** (SPEC §4) once it is subscribed to every publication the server named in
//! its welcome and each of those WebRTC sessions is connected. On `stop` it finishes every file
//! (writing its index) and says `done` when every block has been acknowledged.
//!
//! A server that stops acknowledging (its spool's disk stalls) would make the blocks on their
//! way pile up in the recorder's memory: past [`DEFAULT_MAX_UNACKNOWLEDGED`] bytes sent and not
//! acknowledged the session fails, saying why, instead of growing until the host kills it.
//!
//! [`poll_message`]: RecorderSession::poll_message

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use convrec_core::recorder_protocol::{
    FileSummary, FromRecorder, FromServer, PROTOCOL_VERSION, PublicationInfo,
};
use convrec_media::recording::{PublicationRecorder, RecorderConfig, RecorderOutput};
use convrec_media::timeline::{MediaKind, TimelineConfig, TimelineStats};
use convrec_rtc::Datagram;
use convrec_rtc::client::{Client, ClientEvent, Local};

use crate::composed::ComposedFile;

/// Where a recorder session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `hello` sent, waiting for `welcome`.
    Greeting,
    /// Subscribing to the publications of `welcome`.
    Subscribing,
    /// `ready` sent; recording.
    Recording,
    /// `stop` received: finishing files, waiting for the last acknowledgements.
    Stopping,
    /// `done` sent.
    Done,
    /// The session failed (`failed` sent, or the server refused us).
    Failed,
}

/// Bytes sent and not yet acknowledged past which a session fails: at 5 Mbit/s of recorded
/// media, about 7 minutes of a server that takes blocks and acknowledges none.
pub const DEFAULT_MAX_UNACKNOWLEDGED: u64 = 256 << 20;

/// One file as it is sent: blocks numbered from 0, and what the server acknowledged.
struct SentFile {
    number: u32,
    blocks: u64,
    bytes: u64,
    /// Where each block sent and not yet acknowledged ends (bytes into the file), oldest first:
    /// blocks `blocks - len ..` are the unacknowledged ones.
    unacknowledged_ends: VecDeque<u64>,
    /// Bytes of the file acknowledged.
    acked_bytes: u64,
}

impl SentFile {
    fn new(number: u32) -> Self {
        Self {
            number,
            blocks: 0,
            bytes: 0,
            unacknowledged_ends: VecDeque::new(),
            acked_bytes: 0,
        }
    }

    /// Queues the file's next block (after `fileStarted`, for its first).
    fn send(
        &mut self,
        bytes: Vec<u8>,
        publication_id: Option<&str>,
        messages: &mut VecDeque<FromRecorder>,
    ) {
        if self.blocks == 0 {
            messages.push_back(FromRecorder::FileStarted {
                file: self.number,
                publication_id: publication_id.map(str::to_owned),
            });
        }
        self.bytes += bytes.len() as u64;
        self.unacknowledged_ends.push_back(self.bytes);
        messages.push_back(FromRecorder::Block {
            file: self.number,
            seq: self.blocks,
            bytes,
        });
        self.blocks += 1;
    }

    /// The server made blocks up to `seq` durable (an acknowledgement of a block not sent
    /// counts for those sent).
    fn ack(&mut self, seq: u64) {
        let acked = seq.saturating_add(1).min(self.blocks);
        while self.blocks - (self.unacknowledged_ends.len() as u64) < acked {
            let Some(end) = self.unacknowledged_ends.pop_front() else {
                break;
            };
            self.acked_bytes = end;
        }
    }

    fn unacknowledged_bytes(&self) -> u64 {
        self.bytes - self.acked_bytes
    }

    fn all_acked(&self) -> bool {
        self.unacknowledged_ends.is_empty()
    }

    fn summary(&self) -> Option<FileSummary> {
        (self.blocks > 0).then_some(FileSummary {
            file: self.number,
            blocks: self.blocks,
            bytes: self.bytes,
        })
    }
}

struct Publication {
    info: PublicationInfo,
    client: Client,
    /// Its own file (raw mode) and how it is sent; none when it goes into the composed file.
    recorder: Option<(PublicationRecorder, SentFile)>,
    /// Its source number in the composed file.
    source: u64,
    /// Part of the `welcome` set that `ready` waits for.
    initial: bool,
    /// The answer was applied.
    subscribed: bool,
    finished: bool,
}

/// The composed file and how it is sent.
struct ComposedOutput {
    file: ComposedFile,
    sent: SentFile,
}

/// One recorder's session. See the [module docs](self).
pub struct RecorderSession {
    phase: Phase,
    /// Publications waiting for their socket: (request, info, counts for ready).
    waiting_for_socket: Vec<(u64, PublicationInfo, bool)>,
    socket_requests: VecDeque<u64>,
    next_request: u64,
    publications: Vec<Publication>,
    /// The one file of a composed recording (SPEC §6 `COMPOSED`).
    composed: Option<ComposedOutput>,
    next_file: u32,
    messages: VecDeque<FromRecorder>,
    transmits: VecDeque<Datagram>,
    /// Its sockets are TURN relays (see `convrec_rtc::relay`): sessions offer relay candidates.
    relayed: bool,
    /// Bytes sent and not acknowledged past which the session fails.
    max_unacknowledged: u64,
    /// Why it failed.
    failure: Option<String>,
}

impl RecorderSession {
    /// A new session; it greets the server. Each publication's WebRTC session gets a UDP socket of
    /// its own (asked for with [`poll_socket_request`](Self::poll_socket_request)): sessions that
    /// share an address pair with the room could not be told apart.
    pub fn new() -> Self {
        Self {
            phase: Phase::Greeting,
            waiting_for_socket: Vec::new(),
            socket_requests: VecDeque::new(),
            next_request: 0,
            publications: Vec::new(),
            composed: None,
            next_file: 0,
            messages: VecDeque::from([FromRecorder::Hello {
                protocol: PROTOCOL_VERSION,
            }]),
            transmits: VecDeque::new(),
            relayed: false,
            max_unacknowledged: DEFAULT_MAX_UNACKNOWLEDGED,
            failure: None,
        }
    }

    /// The same, failing past `bytes` sent and not acknowledged (instead of
    /// [`DEFAULT_MAX_UNACKNOWLEDGED`]).
    pub fn with_max_unacknowledged(bytes: u64) -> Self {
        Self {
            max_unacknowledged: bytes,
            ..Self::new()
        }
    }

    /// Where the session stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The sockets it gets from now on are TURN relays.
    pub fn set_relayed(&mut self) {
        self.relayed = true;
    }

    /// A message from the server arrived.
    pub fn handle_server(&mut self, now: Instant, message: FromServer) {
        match message {
            FromServer::Welcome {
                publications,
                composition,
                ..
            } if self.phase == Phase::Greeting => {
                self.phase = Phase::Subscribing;
                if let Some(composition) = composition {
                    // Creation time 0, as raw files: the recorder reads no wall clock.
                    match ComposedFile::new(&composition, now, 0) {
                        Ok(file) => {
                            self.composed = Some(ComposedOutput {
                                file,
                                sent: SentFile::new(self.new_file_number()),
                            });
                        }
                        Err(e) => {
                            self.fail(format!("cannot compose: {e}"));
                            return;
                        }
                    }
                }
                for info in publications {
                    self.subscribe(info, true);
                }
                self.check_ready();
            }
            FromServer::Subscribed {
                publication_id,
                answer,
            } => {
                let outcome = self
                    .publications
                    .iter_mut()
                    .find(|p| p.info.publication_id == publication_id)
                    .map(|p| {
                        let result = p.client.accept_answer(&answer);
                        p.subscribed = result.is_ok();
                        result
                    });
                if let Some(Err(e)) = outcome {
                    self.fail(format!(
                        "the answer for publication {publication_id} was unusable: {e}"
                    ));
                }
            }
            FromServer::PublicationAdded { publication } => {
                // One that appears before ready exists "at that moment" too (SPEC §4).
                let initial = self.phase == Phase::Subscribing;
                if matches!(self.phase, Phase::Subscribing | Phase::Recording) {
                    self.subscribe(publication, initial);
                }
            }
            FromServer::PublicationEnded { publication_id } => {
                if let Some(index) = self
                    .publications
                    .iter()
                    .position(|p| p.info.publication_id == publication_id)
                {
                    self.finish(now, index);
                }
            }
            FromServer::Ack { file, seq } => {
                if let Some(sent) = self.sent_files_mut().find(|f| f.number == file) {
                    sent.ack(seq);
                }
            }
            FromServer::Stop { .. }
                if matches!(
                    self.phase,
                    Phase::Greeting | Phase::Subscribing | Phase::Recording
                ) =>
            {
                self.phase = Phase::Stopping;
                for index in 0..self.publications.len() {
                    self.finish(now, index);
                }
                if let Some(c) = &mut self.composed {
                    c.file.finish(now);
                }
            }
            FromServer::Error { code, message } => {
                tracing::warn!(%code, %message, "the server refused the recorder");
                self.phase = Phase::Failed;
                self.failure = Some(format!("the server refused: {code}: {message}"));
            }
            FromServer::Welcome { .. } | FromServer::Stop { .. } => {}
        }
        self.pump(now);
    }

    /// A datagram arrived at the socket bound to `local`.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        local: SocketAddr,
        source: SocketAddr,
        contents: &[u8],
    ) {
        if let Some(p) = self
            .publications
            .iter_mut()
            .find(|p| p.client.local_addr() == local)
        {
            p.client.handle_receive(now, source, contents);
        }
        self.pump(now);
    }

    /// The next socket wanted (a request number for [`handle_socket`](Self::handle_socket)).
    pub fn poll_socket_request(&mut self) -> Option<u64> {
        self.socket_requests.pop_front()
    }

    /// The socket for `request` is bound at `local`: the publication waiting for it subscribes.
    pub fn handle_socket(&mut self, now: Instant, request: u64, local: SocketAddr) {
        let Some(index) = self
            .waiting_for_socket
            .iter()
            .position(|(r, _, _)| *r == request)
        else {
            return;
        };
        let (_, info, initial) = self.waiting_for_socket.remove(index);
        self.start_subscription(now, info, initial, local);
        self.pump(now);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        for p in &mut self.publications {
            if p.client.poll_timeout().is_some_and(|t| t <= now) {
                p.client.handle_timeout(now);
            }
            if let Some((recorder, _)) = &mut p.recorder
                && recorder.poll_timeout().is_some_and(|t| t <= now)
            {
                recorder.handle_timeout(now);
            }
        }
        if let Some(c) = &mut self.composed {
            c.file.handle_timeout(now);
        }
        self.pump(now);
    }

    /// The next message for the server.
    pub fn poll_message(&mut self) -> Option<FromRecorder> {
        self.messages.pop_front()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.transmits.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.publications
            .iter()
            .flat_map(|p| {
                [
                    p.client.poll_timeout(),
                    p.recorder.as_ref().and_then(|(r, _)| r.poll_timeout()),
                ]
            })
            .flatten()
            .chain(self.composed.as_ref().and_then(|c| c.file.poll_timeout()))
            .min()
    }

    fn subscribe(&mut self, info: PublicationInfo, initial: bool) {
        if self
            .publications
            .iter()
            .any(|p| p.info.publication_id == info.publication_id)
        {
            return;
        }
        if !info.audio && !info.video {
            tracing::warn!(publication = %info.publication_id, "a publication without audio or video has nothing to record");
            return;
        }
        let waiting = self
            .waiting_for_socket
            .iter()
            .any(|(_, w, _)| w.publication_id == info.publication_id);
        if waiting {
            return;
        }
        let request = self.next_request;
        self.next_request += 1;
        self.socket_requests.push_back(request);
        self.waiting_for_socket.push((request, info, initial));
    }

    fn start_subscription(
        &mut self,
        now: Instant,
        info: PublicationInfo,
        initial: bool,
        local: SocketAddr,
    ) {
        let local = if self.relayed {
            Local::Relayed(local)
        } else {
            Local::Host(local)
        };
        let (client, offer) = match Client::subscriber(now, local) {
            Ok(made) => made,
            Err(e) => {
                tracing::warn!(error = %e, "cannot make a WebRTC session");
                self.fail(format!("cannot make a WebRTC session: {e}"));
                return;
            }
        };
        let config = RecorderConfig {
            timeline: TimelineConfig {
                expect_video: info.video,
                ..TimelineConfig::default()
            },
            audio_channels: info.audio.then_some(2),
            ..RecorderConfig::default()
        };
        self.messages.push_back(FromRecorder::Subscribe {
            publication_id: info.publication_id.clone(),
            offer,
        });
        let source = self.publications.len() as u64;
        let recorder = match &mut self.composed {
            Some(c) => {
                c.file.add(now, source, &info);
                None
            }
            // Raw mode: a file per publication.
            None => Some((
                PublicationRecorder::new(config, now),
                SentFile::new(self.new_file_number()),
            )),
        };
        self.publications.push(Publication {
            info,
            client,
            recorder,
            source,
            initial,
            subscribed: false,
            finished: false,
        });
    }

    fn new_file_number(&mut self) -> u32 {
        self.next_file += 1;
        self.next_file - 1
    }

    /// Every file this session sends.
    fn sent_files(&self) -> impl Iterator<Item = &SentFile> {
        self.publications
            .iter()
            .filter_map(|p| p.recorder.as_ref().map(|(_, sent)| sent))
            .chain(self.composed.as_ref().map(|c| &c.sent))
    }

    fn sent_files_mut(&mut self) -> impl Iterator<Item = &mut SentFile> {
        self.publications
            .iter_mut()
            .filter_map(|p| p.recorder.as_mut().map(|(_, sent)| sent))
            .chain(self.composed.as_mut().map(|c| &mut c.sent))
    }

    fn finish(&mut self, now: Instant, index: usize) {
        let p = &mut self.publications[index];
        if !p.finished {
            p.finished = true;
            match &mut p.recorder {
                Some((recorder, _)) => {
                    recorder.finish(now);
                    let stats = recorder.stats();
                    log_intake("publication file finished", &stats.timeline);
                }
                None => {
                    if let Some(c) = &mut self.composed {
                        c.file.end_source(p.source);
                    }
                }
            }
            p.client.close();
        }
    }

    /// Fails the session: blocks not yet handed out are dropped, `failed` goes out first, and
    /// no block is made after it.
    fn fail(&mut self, reason: String) {
        self.phase = Phase::Failed;
        self.messages.retain(|m| {
            !matches!(
                m,
                FromRecorder::Block { .. } | FromRecorder::FileStarted { .. }
            )
        });
        self.messages.push_front(FromRecorder::Failed {
            reason: reason.clone(),
        });
        self.failure = Some(reason);
    }

    /// Why the session failed, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    fn check_ready(&mut self) {
        let all_connected = self
            .publications
            .iter()
            .filter(|p| p.initial && !p.finished)
            .all(|p| p.subscribed && p.client.is_connected())
            && !self
                .waiting_for_socket
                .iter()
                .any(|(_, _, initial)| *initial);
        if self.phase == Phase::Subscribing && all_connected {
            self.phase = Phase::Recording;
            self.messages.push_back(FromRecorder::Ready {});
        }
    }

    /// Moves what every session and recorder produced to where it goes.
    fn pump(&mut self, now: Instant) {
        // A failed session makes no more blocks: nothing would take them.
        let failed = self.phase == Phase::Failed;
        for p in &mut self.publications {
            while let Some(datagram) = p.client.poll_transmit() {
                self.transmits.push_back(datagram);
            }
            while let Some(event) = p.client.poll_event() {
                match (event, &mut p.recorder, &mut self.composed) {
                    (ClientEvent::Frame(MediaKind::Video, frame), Some((r, _)), _) => {
                        r.handle_video(now, frame)
                    }
                    (ClientEvent::Frame(MediaKind::Audio, frame), Some((r, _)), _) => {
                        r.handle_audio(now, frame)
                    }
                    (ClientEvent::SenderReport(kind, report), Some((r, _)), _) => {
                        r.handle_sender_report(now, kind, report)
                    }
                    (ClientEvent::Frame(kind, frame), None, Some(c)) => {
                        c.file.handle_frame(now, p.source, kind, frame)
                    }
                    (ClientEvent::SenderReport(kind, report), None, Some(c)) => {
                        c.file.handle_sender_report(now, p.source, kind, report)
                    }
                    _ => {}
                }
            }
            let Some((recorder, sent)) = &mut p.recorder else {
                continue;
            };
            while let Some(output) = recorder.poll_output() {
                match output {
                    RecorderOutput::RequestKeyFrame(_) => p.client.request_keyframe(),
                    RecorderOutput::Write(_) if failed => {}
                    RecorderOutput::Write(block) => sent.send(
                        block.bytes().to_vec(),
                        Some(&p.info.publication_id),
                        &mut self.messages,
                    ),
                }
            }
            // Requests above may have queued datagrams.
            while let Some(datagram) = p.client.poll_transmit() {
                self.transmits.push_back(datagram);
            }
        }
        if let Some(c) = &mut self.composed {
            while let Some(source) = c.file.poll_key_frame_request() {
                if let Some(p) = self.publications.iter_mut().find(|p| p.source == source) {
                    p.client.request_keyframe();
                    while let Some(datagram) = p.client.poll_transmit() {
                        self.transmits.push_back(datagram);
                    }
                }
            }
            // Blocks wait for ready: the server counts the first durable one as the start.
            let sending = matches!(self.phase, Phase::Recording | Phase::Stopping);
            while let Some(bytes) = sending.then(|| c.file.poll_block()).flatten() {
                c.sent.send(bytes, None, &mut self.messages);
            }
            if c.file.has_stopped() && self.phase != Phase::Failed {
                self.fail("the composition stopped before the file was finished".into());
                return;
            }
        }
        self.check_ready();
        let unacknowledged: u64 = self.sent_files().map(SentFile::unacknowledged_bytes).sum();
        if unacknowledged > self.max_unacknowledged && self.phase != Phase::Failed {
            self.fail(format!(
                "the server has not acknowledged {unacknowledged} bytes sent, more than the {} the recorder holds: it is not keeping up",
                self.max_unacknowledged
            ));
            return;
        }
        let finished = self.publications.iter().all(|p| p.finished)
            && self.composed.as_ref().is_none_or(|c| c.file.is_finished());
        let all_acked = self.sent_files().all(SentFile::all_acked);
        if self.phase == Phase::Stopping && finished && all_acked {
            self.phase = Phase::Done;
            let files = self.sent_files().filter_map(SentFile::summary).collect();
            self.messages.push_back(FromRecorder::Done { files });
        }
    }
}

impl convrec_rtc::driver::Endpoint for RecorderSession {
    /// Messages for the server.
    type Event = FromRecorder;
    fn handle_receive(
        &mut self,
        now: Instant,
        local: SocketAddr,
        source: SocketAddr,
        contents: &[u8],
    ) {
        RecorderSession::handle_receive(self, now, local, source, contents)
    }
    fn handle_timeout(&mut self, now: Instant) {
        RecorderSession::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Datagram> {
        RecorderSession::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<FromRecorder> {
        RecorderSession::poll_message(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        RecorderSession::poll_timeout(self)
    }
    fn poll_socket_request(&mut self) -> Option<u64> {
        RecorderSession::poll_socket_request(self)
    }
    fn handle_socket(&mut self, now: Instant, request: u64, local: SocketAddr) {
        RecorderSession::handle_socket(self, now, request, local)
    }
}

impl Default for RecorderSession {
    fn default() -> Self {
        Self::new()
    }
}

/// What a publication's media lost on its way in (its timeline's counters), for the operator.
pub(crate) fn log_intake(what: &str, stats: &TimelineStats) {
    tracing::info!(
        samples = stats.samples,
        dropped_late = stats.dropped_late,
        dropped_waiting_for_key_frame = stats.dropped_waiting_for_keyframe,
        dropped_invalid = stats.dropped_invalid,
        key_frame_requests = stats.keyframe_requests,
        source_changes = stats.source_changes,
        ignored_sender_reports = stats.ignored_sender_reports,
        "{what}"
    );
}
