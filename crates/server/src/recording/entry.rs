//! The recorder entry point: `GET /recording/entry/{token}` upgraded to a WebSocket (SPEC §4).
//! The token is single-use and expires; a wrong, reused or expired one is refused and logged.
//! Then the server plays its part of `convrec_core::recorder_protocol`: it welcomes the recorder
//! with the publications to record, answers its subscriptions from the SFU, spools each block
//! (append + fsync) before acknowledging it, and tells it of publications that come and go.

use std::collections::BTreeMap;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use convrec_core::recorder_protocol::{
    BLOCK_HEADER_LEN, Composition, Frame, FromRecorder, FromServer, MAX_BLOCK, PROTOCOL_VERSION,
    decode_from_recorder,
};
use convrec_seal::{RecipientKey, Sealer};
use convrec_store::metadata::{EntryPointRefusal, RecordingFile};
use convrec_store::spool::{SpoolError, SpoolFile};
use tokio::sync::mpsc;

use super::SpooledFile;
use super::drive::{Feed, drive};
use crate::AppState;
use crate::api::error::ApiError;
use crate::storage::object_key;
use crate::upload::{Progress, UploadTarget, Uploader};
use convrec_core::orchestrator::Failure;

/// Upgrades a recorder's connection once its entry point is redeemed.
pub async fn entry(
    State(app): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The recorder key first: a wrong one must not use the entry point up.
    if let Some(required) = &app.recording_api_key_id {
        match crate::auth::presents_recorder_key(&app, &headers, required).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("a recorder came without the recorder key this server requires");
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "RECORDER_KEY_REQUIRED",
                    "this server requires recorders to present its RECORDER API key (conversation.recording.recordingApiKeyId) as a bearer token: give it to them in CONVREC_RECORDER_API_KEY",
                )
                .into_response();
            }
            Err(e) => return e.into_response(),
        }
    }
    let redeemed = match app
        .metadata
        .redeem_entry_point(&token, crate::now_ms())
        .await
    {
        Ok(r) => r,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let entry = match redeemed {
        Ok(entry) => entry,
        Err(refusal) => {
            // The token itself is never logged.
            tracing::warn!(%refusal, "a recorder's entry point was refused");
            let mut response = ApiError::new(
                StatusCode::FORBIDDEN,
                "ENTRY_POINT_REFUSED",
                refusal.to_string(),
            )
            .into_response();
            // Only a token never issued is a guess. A used or expired one was issued to a
            // recorder that came twice or late (a launcher's retry, a slow pod); counting those
            // could lock its host, and every other recorder on it, out of the server.
            if refusal == EntryPointRefusal::Unknown {
                response
                    .extensions_mut()
                    .insert(crate::limits::FailedAuthentication);
            }
            return response;
        }
    };
    let recording = match app.metadata.recording(&entry.recording_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return ApiError::not_found("recording", &entry.recording_id).into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    // An account that set a public key gets every file sealed for it; if that cannot be known,
    // nothing is recorded in the clear by mistake: the attempt fails and is retried.
    let recipient = match super::settings(&app, &recording.conversation_id).await {
        Ok(settings) => match settings
            .encryption_public_key
            .as_deref()
            .map(RecipientKey::from_pem)
        {
            None => None,
            Some(Ok(key)) => Some(key),
            Some(Err(e)) => {
                tracing::error!(recording = %recording.id, error = %e, "the account's encryption key cannot be used; not recording");
                return ApiError::internal(e).into_response();
            }
        },
        Err(e) => return ApiError::from(e).into_response(),
    };
    let (link, orders) = mpsc::unbounded_channel();
    let attached = app
        .live
        .with_existing(&recording.conversation_id, |c| match c.recording.as_mut() {
            Some(r) if r.id == recording.id && r.attempt == entry.attempt && r.link.is_none() => {
                r.link = Some(link);
                r.connected = true;
                Some((r.no, r.late_files.clone()))
            }
            _ => None,
        })
        .flatten();
    let Some((recording_no, late_files)) = attached else {
        tracing::warn!(recording = %recording.id, attempt = entry.attempt, "a recorder joined a recording that does not wait for one");
        return ApiError::conflict(
            "RECORDING_NOT_WAITING",
            "this recording does not wait for a recorder",
        )
        .into_response();
    };
    upgrade
        .max_message_size(BLOCK_HEADER_LEN + MAX_BLOCK)
        .max_frame_size(BLOCK_HEADER_LEN + MAX_BLOCK)
        .on_upgrade(move |socket| async move {
            let relay = app
                .turn
                .as_ref()
                .filter(|t| t.force_relay)
                .map(|t| t.relay_for(&recording.id, crate::now_ms()));
            let connection = Connection {
                app,
                conversation_id: recording.conversation_id,
                recording_id: recording.id,
                recording_no,
                attempt: entry.attempt,
                recording_type: recording.recording_type,
                composed: recording.layout == "COMPOSED",
                relay,
                recipient,
                files: BTreeMap::new(),
                late_files,
                started: false,
                started_marked: false,
                joined_at_ms: crate::now_ms(),
                subscribed: Default::default(),
            };
            connection.run(socket, orders).await
        })
}

/// The mixed sound of a composed recording, bits per second (voices, mono).
const COMPOSED_AUDIO_BITRATE: u32 = 48_000;

/// Files a recorder may number (0 to 999); the server stores attempt n's file f as
/// `(n - 1) * 1000 + f`, so the files of a recording's attempts never collide.
const FILES_PER_ATTEMPT: u32 = 1000;

/// Why a recorder connection ended.
enum Ending {
    /// `done`: every file finished and acknowledged.
    Done,
    /// The recorder failed, broke the protocol or went away.
    Lost,
    /// The spool could not be written.
    Storage,
    /// The server let this recorder go: a later attempt runs, or the recording was finished.
    Dismissed,
}

struct Connection {
    app: AppState,
    conversation_id: String,
    recording_id: String,
    /// The orchestrator's number for the recording, and this recorder's attempt.
    recording_no: u64,
    attempt: u32,
    recording_type: String,
    /// One composed file (SPEC §6) rather than one per publication.
    composed: bool,
    /// The TURN relay the recorder must use, if any.
    relay: Option<convrec_core::recorder_protocol::TurnRelay>,
    /// The account's public key: files are sealed for it.
    recipient: Option<RecipientKey>,
    /// By the recorder's file number.
    files: BTreeMap<u32, SpooledFile>,
    /// Where the files go if the recording was finished before this connection ended.
    late_files: mpsc::UnboundedSender<Vec<SpooledFile>>,
    /// A block is durable, and the orchestrator was told (the recording is STARTED once its
    /// recorder is ready).
    started: bool,
    /// The recording's start is stored.
    started_marked: bool,
    /// When the recorder connected (Unix ms).
    joined_at_ms: i64,
    /// Publications subscribed to, with when each started (Unix ms).
    subscribed: std::collections::HashMap<String, i64>,
}

impl Connection {
    async fn run(mut self, mut socket: WebSocket, mut orders: mpsc::UnboundedReceiver<FromServer>) {
        let ending = loop {
            let frame = tokio::select! {
                received = socket.recv() => match received {
                    Some(Ok(Message::Text(text))) => Frame::Text(text.to_string()),
                    Some(Ok(Message::Binary(bytes))) => Frame::Binary(bytes.to_vec()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break Ending::Lost,
                    Some(Err(e)) => {
                        tracing::warn!(recording = %self.recording_id, error = %e, "the recorder connection failed");
                        break Ending::Lost;
                    }
                },
                order = orders.recv() => match order {
                    Some(order) => {
                        if send(&mut socket, &order).await.is_err() {
                            break Ending::Lost;
                        }
                        continue;
                    }
                    // Its link was dropped.
                    None => break Ending::Dismissed,
                },
            };
            let message = match decode_from_recorder(&frame) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(recording = %self.recording_id, error = %e, "the recorder broke the protocol");
                    let _ = send(&mut socket, &refusal("PROTOCOL", e.to_string())).await;
                    break Ending::Lost;
                }
            };
            match self.handle(message).await {
                Ok(Step::Reply(replies)) => {
                    for reply in replies {
                        if send(&mut socket, &reply).await.is_err() {
                            break;
                        }
                    }
                }
                Ok(Step::End(ending)) => break ending,
                Err((ending, reply)) => {
                    let _ = send(&mut socket, &reply).await;
                    break ending;
                }
            }
        };
        let _ = socket.send(Message::Close(None)).await;
        // The files go to the recording, to be finished when the orchestrator closes it.
        let mut files: Vec<SpooledFile> = std::mem::take(&mut self.files).into_values().collect();
        let (no, attempt) = (self.recording_no, self.attempt);
        self.app.live.with_existing(&self.conversation_id, |c| {
            if let Some(r) = c.recording.as_mut().filter(|r| r.no == no) {
                r.files.append(&mut files);
                if r.attempt == attempt {
                    r.link = None;
                }
            }
        });
        if !files.is_empty() {
            // The recording was finished while this connection lasted: the task storing it
            // waits for these.
            if let Err(unsent) = self.late_files.send(files) {
                tracing::error!(recording = %self.recording_id, attempt, files = unsent.0.len(), "no task stores these files (the conversation is gone); they stay in the spool for the next start");
                for f in unsent.0 {
                    f.uploader.abandon();
                }
            }
        }
        let feed: Feed = match ending {
            Ending::Done => Box::new(move |o, now| o.handle_recorder_done(now, no)),
            Ending::Storage => {
                self.app.metrics.recorder_failed("storage");
                Box::new(move |o, now| o.handle_recorder_failed(now, no, attempt, Failure::Storage))
            }
            Ending::Lost => {
                self.app.metrics.recorder_failed("lost");
                Box::new(move |o, now| o.handle_recorder_failed(now, no, attempt, Failure::Crashed))
            }
            // The orchestrator is done with this attempt already.
            Ending::Dismissed => return,
        };
        drive(&self.app, &self.conversation_id, feed).await;
    }

    async fn handle(&mut self, message: FromRecorder) -> Result<Step, (Ending, FromServer)> {
        let lost = |code: &str, message: String| (Ending::Lost, refusal(code, message));
        match message {
            FromRecorder::Hello { protocol } => {
                if protocol != PROTOCOL_VERSION {
                    return Err(lost(
                        "PROTOCOL",
                        format!(
                            "protocol {protocol} is not spoken here; this server speaks {PROTOCOL_VERSION}"
                        ),
                    ));
                }
                let publications = self
                    .app
                    .live
                    .with_existing(&self.conversation_id, |c| c.recordable())
                    .unwrap_or_default();
                let composition = if self.composed {
                    let settings = crate::recording::settings(&self.app, &self.conversation_id)
                        .await
                        .map_err(|e| {
                            let code = if e.is_unavailable() {
                                "DATABASE_UNAVAILABLE"
                            } else {
                                "INTERNAL"
                            };
                            (Ending::Lost, refusal(code, e.to_string()))
                        })?;
                    let video = self.recording_type == "AUDIO_VIDEO";
                    Some(Composition {
                        width: video.then_some(settings.resolution.0),
                        height: video.then_some(settings.resolution.1),
                        fps: settings.frame_rate,
                        video_bitrate: settings.video_bitrate,
                        audio_bitrate: COMPOSED_AUDIO_BITRATE,
                    })
                } else {
                    None
                };
                Ok(Step::Reply(vec![FromServer::Welcome {
                    recording_id: self.recording_id.clone(),
                    conversation_id: self.conversation_id.clone(),
                    recording_type: self.recording_type.clone(),
                    publications,
                    composition,
                    relay: self.relay.clone(),
                }]))
            }
            FromRecorder::Subscribe {
                publication_id,
                offer,
            } => {
                let found = self
                    .app
                    .live
                    .with_existing(&self.conversation_id, |c| {
                        c.publications
                            .iter()
                            .find(|p| p.id == publication_id)
                            .map(|p| (p.peer, p.started_at_ms))
                    })
                    .flatten();
                let Some((peer, started_at_ms)) = found else {
                    return Ok(Step::Reply(vec![FromServer::PublicationEnded {
                        publication_id,
                    }]));
                };
                let answer = self
                    .app
                    .room
                    .call(move |room, now| room.subscribe_recorder(now, peer, &offer))
                    .await
                    .map_err(|e| lost("INTERNAL", e.to_string()))?;
                match answer {
                    Ok((_, answer)) => {
                        // Its file may start after the publication ended: remember it here.
                        self.subscribed
                            .insert(publication_id.clone(), started_at_ms);
                        Ok(Step::Reply(vec![FromServer::Subscribed {
                            publication_id,
                            answer,
                        }]))
                    }
                    // It ended in between.
                    Err(convrec_rtc::room::RoomError::UnknownPublisher(_)) => {
                        Ok(Step::Reply(vec![FromServer::PublicationEnded {
                            publication_id,
                        }]))
                    }
                    Err(e) => Err(lost("SUBSCRIPTION_REFUSED", e.to_string())),
                }
            }
            FromRecorder::Ready {} => {
                self.app.live.with_existing(&self.conversation_id, |c| {
                    if let Some(r) = c.recording.as_ref().filter(|r| r.no == self.recording_no) {
                        self.app
                            .metrics
                            .recorder_ready_seconds
                            .observe(r.launched.elapsed().as_secs_f64());
                        tracing::info!(
                            recording = %r.id,
                            attempt = self.attempt,
                            ready_ms = r.launched.elapsed().as_secs_f64() * 1000.0,
                            "recorder ready"
                        );
                    }
                });
                let (no, attempt) = (self.recording_no, self.attempt);
                drive(
                    &self.app,
                    &self.conversation_id,
                    Box::new(move |o, now| o.handle_recorder_ready(now, no, attempt)),
                )
                .await;
                Ok(Step::Reply(Vec::new()))
            }
            FromRecorder::FileStarted {
                file,
                publication_id,
            } => self.start_file(file, publication_id).await,
            FromRecorder::Block { file, seq, bytes } => self.append(file, seq, bytes).await,
            FromRecorder::Done { files } => {
                for summary in files {
                    let matches = self.files.get(&summary.file).is_some_and(|f| {
                        f.spool.next_seq() == summary.blocks && f.spool.len() == summary.bytes
                    });
                    if !matches {
                        tracing::warn!(recording = %self.recording_id, file = summary.file, "the recorder's summary differs from what was spooled");
                    }
                }
                Ok(Step::End(Ending::Done))
            }
            FromRecorder::Failed { reason } => {
                tracing::warn!(recording = %self.recording_id, %reason, "the recorder failed");
                Ok(Step::End(Ending::Lost))
            }
        }
    }

    async fn start_file(
        &mut self,
        file: u32,
        publication_id: Option<String>,
    ) -> Result<Step, (Ending, FromServer)> {
        let lost = |message: String| (Ending::Lost, refusal("PROTOCOL", message));
        if self.files.contains_key(&file) {
            return Err(lost(format!("file {file} was started already")));
        }
        if file >= FILES_PER_ATTEMPT {
            return Err(lost(format!(
                "file {file}: a recorder numbers its files below {FILES_PER_ATTEMPT}"
            )));
        }
        // Each attempt's recorder numbers its files from 0: stored numbers keep them apart.
        let stored = (self.attempt.saturating_sub(1)) * FILES_PER_ATTEMPT + file;
        let started_at_ms = match (&publication_id, self.composed) {
            (Some(publication_id), false) => {
                let Some(&publication_started) = self.subscribed.get(publication_id) else {
                    return Err(lost(format!(
                        "publication '{publication_id}' was not subscribed to"
                    )));
                };
                // The file begins when its publication began, or when the recorder joined if
                // later.
                publication_started.max(self.joined_at_ms)
            }
            // The composed file begins when the recorder joined.
            (None, true) => self.joined_at_ms,
            (Some(_), true) => {
                return Err(lost(
                    "a composed recording has one file, of no publication".into(),
                ));
            }
            (None, false) => {
                return Err(lost(
                    "a raw recording's file must name its publication".into(),
                ));
            }
        };
        let path = self.app.storage.spool_path(&self.recording_id, stored);
        let sealer = match self.recipient.as_ref().map(Sealer::new).transpose() {
            Ok(sealer) => sealer,
            Err(e) => {
                tracing::error!(recording = %self.recording_id, error = %e, "cannot seal a file");
                return Err((
                    Ending::Storage,
                    refusal("STORAGE", "the server cannot store the file".into()),
                ));
            }
        };
        let created = tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                convrec_store::spool::create_dir_durable(dir).map_err(|e| SpoolError::Io {
                    path: dir.to_owned(),
                    source: e,
                })?;
            }
            SpoolFile::create(&path, sealer)
        })
        .await;
        let spool = match created {
            Ok(Ok(spool)) => spool,
            Ok(Err(e)) => {
                tracing::error!(recording = %self.recording_id, error = %e, "cannot create a spool file");
                return Err((
                    Ending::Storage,
                    refusal("STORAGE", "the server cannot store the file".into()),
                ));
            }
            Err(e) => return Err((Ending::Storage, refusal("INTERNAL", e.to_string()))),
        };
        let row = RecordingFile {
            recording_id: self.recording_id.clone(),
            file: stored,
            publication_id: publication_id.clone(),
            object_key: object_key(&self.recording_id, stored),
            durable_bytes: 0,
            blocks: 0,
            finished: false,
            started_at_ms,
            encryption_key_id: self.recipient.as_ref().map(RecipientKey::key_id_hex),
        };
        if let Err(e) = self.app.metadata.add_recording_file(&row).await {
            tracing::error!(error = %e, "cannot register a recording file");
            return Err((
                Ending::Storage,
                refusal("STORAGE", "the server cannot store the file".into()),
            ));
        }
        let target = UploadTarget::of(&self.app, &self.recording_id, stored);
        self.files.insert(
            file,
            SpooledFile {
                file: stored,
                publication_id,
                started_at_ms,
                spool,
                uploader: Uploader::start(&self.app, target, None, Progress::default()),
            },
        );
        Ok(Step::Reply(Vec::new()))
    }

    async fn append(
        &mut self,
        file: u32,
        seq: u64,
        bytes: Vec<u8>,
    ) -> Result<Step, (Ending, FromServer)> {
        let arrived = std::time::Instant::now();
        let Some(mut spooled) = self.files.remove(&file) else {
            return Err((
                Ending::Lost,
                refusal(
                    "PROTOCOL",
                    format!("block for file {file}, which was never started"),
                ),
            ));
        };
        // The store has been away long enough that the spool holds all it may: refused, so
        // the recording ends (ABORT_BLOBSTORE_FAILURE) with what it acknowledged kept.
        let backlog = u64::try_from(self.app.metrics.upload_backlog_bytes.get()).unwrap_or(0);
        let limit = self.app.upload_settings.max_backlog;
        if backlog.saturating_add(bytes.len() as u64) > limit {
            tracing::error!(recording = %self.recording_id, backlog, limit, "the object store is not taking uploads and the spool holds all it may (object_store.max_backlog_mib); the recording ends");
            self.files.insert(file, spooled);
            return Err((
                Ending::Storage,
                refusal(
                    "STORAGE",
                    format!(
                        "the object store is unreachable and {backlog} bytes wait in the spool (the limit is {limit})"
                    ),
                ),
            ));
        }
        // append() fsyncs: off the async threads.
        let (spool, result) = match tokio::task::spawn_blocking(move || {
            let result = append_keeping_the_file(&mut spooled.spool, seq, &bytes);
            (spooled, result)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => return Err((Ending::Storage, refusal("INTERNAL", e.to_string()))),
        };
        let stored = spool.file;
        let durable = (
            spool.spool.len(),
            spool.spool.next_seq(),
            spool.spool.is_finished(),
        );
        spool.uploader.grew(durable.0);
        self.files.insert(file, spool);
        let ack = match result {
            Ok(ack) => ack,
            Err(SpoolError::Io { path, source }) => {
                tracing::error!(recording = %self.recording_id, path = %path.display(), error = %source, "the spool failed");
                return Err((
                    Ending::Storage,
                    refusal("STORAGE", "the server cannot store the file".into()),
                ));
            }
            Err(e) => return Err((Ending::Lost, refusal("PROTOCOL", e.to_string()))),
        };
        if let Err(e) = self
            .app
            .metadata
            .set_file_durable(&self.recording_id, stored, durable.0, durable.1, durable.2)
            .await
        {
            tracing::warn!(error = %e, "cannot record a file's durable length");
        }
        if !self.started_marked {
            // The recording starts where the media of its first durable file starts. Until
            // that is stored, each block tries again: a restart finds only started recordings
            // to finish.
            let media_start = self
                .files
                .get(&file)
                .map_or_else(crate::now_ms, |f| f.started_at_ms);
            match self
                .app
                .metadata
                .mark_recording_started(&self.recording_id, media_start)
                .await
            {
                Ok(()) => self.started_marked = true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot mark the recording started; trying again at the next block")
                }
            }
        }
        if !self.started {
            self.started = true;
            let (no, attempt) = (self.recording_no, self.attempt);
            drive(
                &self.app,
                &self.conversation_id,
                Box::new(move |o, now| o.handle_fragment_durable(now, no, attempt)),
            )
            .await;
        }
        self.app
            .metrics
            .fragment_ack_seconds
            .observe(arrived.elapsed().as_secs_f64());
        Ok(Step::Reply(vec![FromServer::Ack { file, seq: ack.seq }]))
    }
}

/// What the server does after a message.
enum Step {
    /// Answers (possibly none) and goes on.
    Reply(Vec<FromServer>),
    /// The connection ends.
    End(Ending),
}

/// Appends block `seq` to `spool`. A panic inside the append fails it as an I/O error would,
/// and leaves `spool` as the disk holds it (reopened as after a crash), so the file's
/// acknowledged blocks are still stored when the recording finishes.
fn append_keeping_the_file(
    spool: &mut SpoolFile,
    seq: u64,
    block: &[u8],
) -> Result<convrec_store::spool::Ack, SpoolError> {
    let appended =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| spool.append(seq, block)));
    appended.unwrap_or_else(|_| {
        let path = spool.path().to_owned();
        match SpoolFile::recover(&path) {
            Ok((recovered, _)) => *spool = recovered,
            Err(e) => {
                tracing::error!(error = %e, "cannot reopen a spool file after a failed append")
            }
        }
        Err(SpoolError::Io {
            path,
            source: std::io::Error::other("appending to the spool panicked"),
        })
    })
}

fn refusal(code: &str, message: String) -> FromServer {
    FromServer::Error {
        code: code.to_owned(),
        message,
    }
}

async fn send(socket: &mut WebSocket, message: &FromServer) -> Result<(), axum::Error> {
    let frame = match message.encode() {
        Frame::Text(text) => Message::Text(text.into()),
        Frame::Binary(bytes) => Message::Binary(bytes.into()),
    };
    socket.send(frame).await
}
