//! What is happening now in each conversation: its active calls and collaboration layers, the
//! publications (WHIP sessions) and subscriptions (WHEP sessions) in the SFU, the recording that
//! runs, and the channel its events reach clients on (SSE). Lost with the process, as the media
//! sessions are; the metadata store keeps the history.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use convrec_core::recorder_protocol::{FromServer, PublicationInfo};
use convrec_rtc::room::PeerId;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use convrec_core::orchestrator::{Orchestrator, RecordingNo};

use crate::recording::SpooledFile;
use crate::recording::launcher::RecorderProcess;

/// Events a conversation's clients receive (`GET /v1/conversations/{id}/events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ConversationEvent {
    /// A call or collaboration layer started.
    InteractionStarted {
        /// Its id.
        interaction_id: String,
        /// `CALL` or `COLLABORATION_LAYER`.
        source: String,
        /// `AUDIO`, `AUDIO_VIDEO` or `SCREEN_SHARING`.
        interaction_type: String,
    },
    /// It ended.
    InteractionEnded {
        /// Its id.
        interaction_id: String,
        /// Why, when not by its participants (`RECORDING_DENIED`).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A publication's media flows: subscribe to it with WHEP.
    PublicationStarted {
        /// Its id.
        publication_id: String,
        /// Its call or layer.
        interaction_id: String,
        /// Who publishes.
        participant_id: String,
        /// It sends audio.
        audio: bool,
        /// It sends video.
        video: bool,
    },
    /// A publication ended.
    PublicationEnded {
        /// Its id.
        publication_id: String,
    },
    /// The conversation's recording state changed (SPEC §4).
    RecordingState {
        /// The recording (left out for participants who may not see recordings).
        #[serde(skip_serializing_if = "Option::is_none")]
        recording_id: Option<String>,
        /// `INITIALIZING`, `WAITING_READY`, `READY`, `STARTED`, `STOPPED` or `FAILED`.
        recording_state: String,
    },
    /// An interaction's media is held until the recording is ready (SPEC §4, synchronous
    /// start), or released.
    MediaHeld {
        /// The interaction.
        interaction_id: String,
        /// Held (true) or released.
        held: bool,
    },
    /// A recording's files are complete and stored.
    RecordingAvailable {
        /// The recording.
        recording_id: String,
    },
    /// A chat message was posted.
    MessagePosted {
        /// Its id.
        message_id: String,
        /// Who sent it (a participant's or an API key's id).
        sender_id: String,
        /// Its name.
        sender_name: String,
        /// What it says.
        text: String,
        /// When (Unix ms).
        timestamp: i64,
    },
}

/// `CALL` or `COLLABORATION_LAYER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An audio or audio/video call.
    Call,
    /// A screen share (co-browsing layers come later).
    CollaborationLayer,
}

impl Source {
    /// As in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Call => "CALL",
            Source::CollaborationLayer => "COLLABORATION_LAYER",
        }
    }
}

/// An active call or layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// Its id.
    pub id: String,
    /// Call or layer.
    pub source: Source,
    /// Its type.
    pub kind: String,
    /// When it started (Unix ms).
    pub started_at_ms: i64,
}

/// A WHIP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Its id.
    pub id: String,
    /// Its call or layer.
    pub interaction_id: String,
    /// Who publishes.
    pub participant_id: String,
    /// The publisher's name.
    pub participant_name: String,
    /// Its session in the SFU.
    pub peer: PeerId,
    /// It sends audio.
    pub audio: bool,
    /// It sends video.
    pub video: bool,
    /// When it was accepted (Unix ms).
    pub started_at_ms: i64,
    /// Its media flows.
    pub connected: bool,
}

/// The recording being made in a conversation (at most one), as the server carries out what
/// the orchestrator decides.
pub struct RunningRecording {
    /// The orchestrator's number for it.
    pub no: RecordingNo,
    /// Its stored id.
    pub id: String,
    /// The current attempt (0 before the first launch).
    pub attempt: u32,
    /// Messages to the current attempt's recorder, once it connected.
    pub link: Option<mpsc::UnboundedSender<FromServer>>,
    /// The current attempt's recorder connected (its connection reports how it ends; its
    /// process exiting says nothing more).
    pub connected: bool,
    /// The current attempt's recorder process.
    pub process: Option<Box<dyn RecorderProcess>>,
    /// When the current attempt was launched (for the ready latency).
    pub launched: std::time::Instant,
    /// Files its recorders wrote, handed over when their connections ended.
    pub files: Vec<SpooledFile>,
    /// Given to each recorder connection: one that ends after the recording was finished (its
    /// recorder hung on stop, or it was still waiting for ready) sends its files here.
    pub late_files: mpsc::UnboundedSender<Vec<SpooledFile>>,
    /// Where those files arrive. The task that stores the recording reads it until every
    /// connection has ended, so no file is left out, or deleted with the spool, for having
    /// been open when the recording was finished.
    pub late_files_rx: mpsc::UnboundedReceiver<Vec<SpooledFile>>,
    /// Set when the server is stopping: the end reason to finish it with.
    pub abort_reason: Option<&'static str>,
}

/// One conversation's live state.
pub struct LiveConversation {
    /// Its account.
    pub account_id: String,
    /// Active calls and layers.
    pub interactions: Vec<Interaction>,
    /// WHIP sessions.
    pub publications: Vec<Publication>,
    /// WHEP sessions: (subscription id, peer, participant).
    pub subscriptions: Vec<(String, PeerId, String)>,
    /// The recording that runs.
    pub recording: Option<RunningRecording>,
    /// Decides when recordings start and stop (made when the conversation becomes active).
    pub orchestrator: Option<Orchestrator>,
    /// Interactions whose media is held (a synchronous start waits for its recorder).
    pub held: Vec<String>,
    /// Serializes the orchestrator's work for this conversation.
    pub drive_lock: Arc<tokio::sync::Mutex<()>>,
    /// Bumped whenever the orchestrator's timer is set again.
    pub timer_generation: u64,
    /// The stored ids of the orchestrator's recordings.
    pub recording_ids: HashMap<RecordingNo, String>,
    events: broadcast::Sender<ConversationEvent>,
}

impl LiveConversation {
    fn new(account_id: String) -> Self {
        Self {
            account_id,
            interactions: Vec::new(),
            publications: Vec::new(),
            subscriptions: Vec::new(),
            recording: None,
            orchestrator: None,
            held: Vec::new(),
            drive_lock: Arc::default(),
            timer_generation: 0,
            recording_ids: HashMap::new(),
            events: broadcast::channel(256).0,
        }
    }

    /// Tells the conversation's clients.
    pub fn publish(&self, event: ConversationEvent) {
        // No receiver is fine: nobody listens.
        let _ = self.events.send(event);
    }

    /// Sends a message to the recording's recorder, if one is connected.
    pub fn tell_recorder(&self, message: FromServer) {
        if let Some(link) = self.recording.as_ref().and_then(|r| r.link.as_ref()) {
            let _ = link.send(message);
        }
    }

    /// The events so far as a snapshot for a new listener, and a receiver for what follows.
    pub fn subscribe(
        &self,
    ) -> (
        Vec<ConversationEvent>,
        broadcast::Receiver<ConversationEvent>,
    ) {
        let mut snapshot: Vec<ConversationEvent> = self
            .interactions
            .iter()
            .map(|i| ConversationEvent::InteractionStarted {
                interaction_id: i.id.clone(),
                source: i.source.as_str().to_owned(),
                interaction_type: i.kind.clone(),
            })
            .collect();
        snapshot.extend(
            self.publications
                .iter()
                .filter(|p| p.connected)
                .map(publication_started),
        );
        if let (Some(r), Some(o)) = (&self.recording, &self.orchestrator) {
            snapshot.push(ConversationEvent::RecordingState {
                recording_id: Some(r.id.clone()),
                recording_state: o.state().as_str().to_owned(),
            });
        }
        snapshot.extend(self.held.iter().map(|i| ConversationEvent::MediaHeld {
            interaction_id: i.clone(),
            held: true,
        }));
        (snapshot, self.events.subscribe())
    }

    /// The publications whose media flows, as the recorder is told of them.
    pub fn recordable(&self) -> Vec<PublicationInfo> {
        self.publications
            .iter()
            .filter(|p| p.connected)
            .map(|p| self.publication_info(p))
            .collect()
    }

    /// How the recorder is told of a publication.
    pub fn publication_info(&self, p: &Publication) -> PublicationInfo {
        let interaction_type = self
            .interactions
            .iter()
            .find(|i| i.id == p.interaction_id)
            .map(|i| i.kind.clone())
            .unwrap_or_default();
        PublicationInfo {
            publication_id: p.id.clone(),
            interaction_id: p.interaction_id.clone(),
            interaction_type,
            participant_id: p.participant_id.clone(),
            participant_name: p.participant_name.clone(),
            audio: p.audio,
            video: p.video,
            started_at_ms: p.started_at_ms,
        }
    }
}

/// The event announcing a publication.
pub fn publication_started(p: &Publication) -> ConversationEvent {
    ConversationEvent::PublicationStarted {
        publication_id: p.id.clone(),
        interaction_id: p.interaction_id.clone(),
        participant_id: p.participant_id.clone(),
        audio: p.audio,
        video: p.video,
    }
}

/// Every conversation's live state.
#[derive(Default)]
pub struct Live {
    conversations: Mutex<HashMap<String, LiveConversation>>,
    /// Recordings whose files are being finished (no longer running, not yet stored).
    finishing: std::sync::atomic::AtomicUsize,
    /// The server is stopping: no recording may start.
    stopping: std::sync::atomic::AtomicBool,
}

impl Live {
    /// Runs `f` on a conversation's live state (made on first use).
    pub fn with<R>(
        &self,
        conversation_id: &str,
        account_id: &str,
        f: impl FnOnce(&mut LiveConversation) -> R,
    ) -> R {
        let mut all = self.lock();
        let conversation = all
            .entry(conversation_id.to_owned())
            .or_insert_with(|| LiveConversation::new(account_id.to_owned()));
        f(conversation)
    }

    /// Runs `f` on a conversation's live state if it has one.
    pub fn with_existing<R>(
        &self,
        conversation_id: &str,
        f: impl FnOnce(&mut LiveConversation) -> R,
    ) -> Option<R> {
        self.lock().get_mut(conversation_id).map(f)
    }

    /// The conversation and publication of a peer of the SFU.
    pub fn find_peer(&self, peer: PeerId) -> Option<(String, PeerOf)> {
        self.lock().iter().find_map(|(id, c)| {
            c.publications
                .iter()
                .find(|p| p.peer == peer)
                .map(|p| PeerOf::Publication(p.id.clone()))
                .or_else(|| {
                    c.subscriptions
                        .iter()
                        .find(|(_, s, _)| *s == peer)
                        .map(|(sub, _, _)| PeerOf::Subscription(sub.clone()))
                })
                .map(|of| (id.clone(), of))
        })
    }

    /// Every conversation that has a running recording: (conversation, recording).
    pub fn running_recordings(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .filter_map(|(id, c)| c.recording.as_ref().map(|r| (id.clone(), r.id.clone())))
            .collect()
    }

    /// A recording's files start being finished.
    pub fn begin_finishing(&self) {
        self.finishing
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// A recording's files are finished (or given up on).
    pub fn end_finishing(&self) {
        self.finishing
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// From now on no recording starts (the server is stopping).
    pub fn stop_starting(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether recordings may start.
    pub fn may_start(&self) -> bool {
        !self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Ended recordings whose files are being stored.
    pub fn finishing(&self) -> usize {
        self.finishing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether recordings run or are being finished.
    pub fn recording_work_left(&self) -> bool {
        !self.running_recordings().is_empty()
            || self.finishing.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// Every conversation's active calls and layers: (conversation, interaction ids).
    pub fn active_interactions(&self) -> Vec<(String, Vec<String>)> {
        self.lock()
            .iter()
            .filter(|(_, c)| !c.interactions.is_empty())
            .map(|(id, c)| {
                (
                    id.clone(),
                    c.interactions.iter().map(|i| i.id.clone()).collect(),
                )
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveConversation>> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.conversations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a peer of the SFU is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerOf {
    /// A WHIP session.
    Publication(String),
    /// A WHEP session.
    Subscription(String),
}
