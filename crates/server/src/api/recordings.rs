//! A conversation's recordings (SPEC §4–5): the list with files, names (from the file-name
//! pattern) and signed download links; the recording state; manual start and stop.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convrec_core::orchestrator::{Refusal, Requester, State as OrchestratorState};
use convrec_store::metadata::{Recording, Role};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiPath, ErrorBody};
use super::visible_conversation;
use crate::AppState;
use crate::auth::Caller;

/// One file of a recording (one in a composed recording; one per publication in raw mode).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingFileView {
    /// Its number (`?file=N` of the download).
    file: u32,
    /// The publication it records (raw mode).
    publication_id: Option<String>,
    /// Where the object store keeps it (for operators; downloads go through the link).
    object_key: String,
    /// The name users see and download (from `recordingFilenamePattern`).
    file_name: String,
    /// Bytes durable so far (all of it once `COMPLETE`).
    size: u64,
    /// When its media began (Unix ms).
    started_at: i64,
    /// Whether it ended normally with an `mfra` index.
    indexed: bool,
    /// The key it is encrypted for (hex SHA-256 of the public key's SubjectPublicKeyInfo), when
    /// the account set one: open it with `convrec decrypt` or in the history page. `null`: a
    /// plain fMP4.
    encryption_key_id: Option<String>,
    /// Absolute URL with a signed, expiring grant: plays in `<video src>` without a header.
    download_link: String,
}

/// A recording as the history lists it (SPEC §5).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingView {
    /// Its id.
    pub id: String,
    /// Its conversation.
    pub conversation_id: String,
    /// The first file's name.
    pub file_name: Option<String>,
    /// `video/mp4` or `audio/mp4`.
    pub mime_type: String,
    /// Bytes of all its files.
    pub total_size: u64,
    /// One per file.
    pub download_links: Vec<String>,
    /// Its first durable fragment (Unix ms).
    pub recording_start_timestamp: i64,
    /// Its end (Unix ms), while not running.
    pub recording_end_timestamp: Option<i64>,
    /// `INITIALIZING`, `PENDING` or `COMPLETE`.
    pub status: String,
    /// `NORMAL` or an `ABORT_*` reason, once it ended.
    pub end_reason: Option<String>,
    /// `AUDIO` or `AUDIO_VIDEO`.
    pub recording_type: String,
    /// `COMPOSED` or `RAW_TRACKS`.
    pub layout: String,
    /// The calls it overlapped.
    pub call_ids: Vec<String>,
    /// The participants whose media it holds.
    pub participants: Vec<String>,
    /// Its files.
    pub files: Vec<RecordingFileView>,
}

/// `{items}` of `getConversationRecordings`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingList {
    /// Oldest first.
    items: Vec<RecordingView>,
}

/// A conversation's recordings that produced media, with their files, names and signed
/// download links. A participant whose role is not in `allowSeeRecordingAvailableMessages`
/// gets an empty list.
#[utoipa::path(get, operation_id = "getConversationRecordings", path = "/conversationhistory/{id}/getConversationRecordings", tag = "recordings",
    params(("id" = String, Path, description = "The conversation")),
    responses((status = 200, body = RecordingList)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RecordingList>, ApiError> {
    visible_conversation(&app, &caller, &id).await?;
    let mut items = Vec::new();
    if super::sees_recordings(&app, &caller, &id).await? {
        for recording_id in app.metadata.recording_ids(&id).await? {
            if let Some(r) = app.metadata.recording(&recording_id).await? {
                items.extend(view(&app, r).await?);
            }
        }
    }
    Ok(Json(RecordingList { items }))
}

/// How the history shows a recording; none for one that never produced media (SPEC §5).
pub async fn view(app: &AppState, r: Recording) -> Result<Option<RecordingView>, ApiError> {
    let Some(started) = r.started_at_ms else {
        return Ok(None);
    };
    let files = app.metadata.recording_files(&r.id).await?;
    let mut listed = Vec::new();
    for f in &files {
        listed.push(RecordingFileView {
            file: f.file,
            publication_id: f.publication_id.clone(),
            object_key: f.object_key.clone(),
            file_name: super::download::file_name(app, &r, f, files.len()).await?,
            size: f.durable_bytes,
            started_at: f.started_at_ms,
            indexed: f.finished,
            encryption_key_id: f.encryption_key_id.clone(),
            download_link: super::download::link(app, &r.id, f.file),
        });
    }
    let (call_ids, participants) = app
        .metadata
        .recorded_calls_and_participants(&r, crate::now_ms())
        .await?;
    Ok(Some(RecordingView {
        file_name: listed.first().map(|f| f.file_name.clone()),
        mime_type: super::download::recording_mime_type(&r, &files).to_owned(),
        total_size: files.iter().map(|f| f.durable_bytes).sum(),
        download_links: listed.iter().map(|f| f.download_link.clone()).collect(),
        recording_start_timestamp: started,
        recording_end_timestamp: r.ended_at_ms,
        id: r.id,
        conversation_id: r.conversation_id,
        status: r.status,
        end_reason: r.end_reason,
        recording_type: r.recording_type,
        layout: r.layout,
        call_ids,
        participants,
        files: listed,
    }))
}

/// `getRecordingState`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingState {
    /// The conversation.
    conversation_id: String,
    /// The running or last recording.
    recording_id: Option<String>,
    /// `IDLE`, `INITIALIZING`, `WAITING_READY`, `READY`, `STARTED`, `STOPPED` or `FAILED`.
    recording_state: String,
    /// `AUDIO` or `AUDIO_VIDEO`.
    recording_type: Option<String>,
    /// Its first durable fragment (Unix ms).
    recording_start_timestamp: Option<i64>,
}

/// The recording state of a conversation (SPEC §4–5).
#[utoipa::path(post, operation_id = "getRecordingState", path = "/conversations/{id}/getRecordingState", tag = "recordings",
    params(("id" = String, Path, description = "The conversation")),
    responses((status = 200, body = RecordingState)))]
pub async fn state(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RecordingState>, ApiError> {
    visible_conversation(&app, &caller, &id).await?;
    let live = app
        .live
        .with_existing(&id, |c| {
            let state = c.orchestrator.as_ref()?.state();
            Some((state, c.recording.as_ref().map(|r| r.id.clone())))
        })
        .flatten()
        .filter(|(state, _)| *state != OrchestratorState::Idle);
    let last = app.metadata.recording_ids(&id).await?.pop();
    let (recording_id, state) = match live {
        Some((state, current)) => (current.or(last), state.as_str().to_owned()),
        None => match last {
            None => (None, "IDLE".to_owned()),
            Some(last) => {
                let normal = app
                    .metadata
                    .recording(&last)
                    .await?
                    .is_some_and(|r| r.end_reason.as_deref() == Some("NORMAL"));
                let state = if normal { "STOPPED" } else { "FAILED" };
                (Some(last), state.to_owned())
            }
        },
    };
    let recording = match &recording_id {
        Some(r) => app.metadata.recording(r).await?,
        None => None,
    };
    let sees_recordings = super::sees_recordings(&app, &caller, &id).await?;
    Ok(Json(RecordingState {
        conversation_id: id,
        // Its id is for those who may see recordings (docs/security.md).
        recording_id: recording_id.filter(|_| sees_recordings),
        recording_state: state,
        recording_type: recording.as_ref().map(|r| r.recording_type.clone()),
        recording_start_timestamp: recording.and_then(|r| r.started_at_ms),
    }))
}

/// Starts a recording by hand (always asynchronous; `conversation.recording_started` or
/// `conversation.recording_failed` tells how it went). While the last recording is still being
/// finished, the start is accepted and the new recording begins once that one is finished.
#[utoipa::path(post, operation_id = "startRecording", path = "/conversations/{id}/startRecording", tag = "recordings",
    params(("id" = String, Path, description = "The conversation")),
    responses((status = 204, description = "Starting"),
        (status = 403, description = "`RECORDING_DENIED`: the caller's role may not start one", body = ErrorBody),
        (status = 409, description = "`RECORDING_RUNNING` (one runs, or a start already waits) or `NOTHING_TO_RECORD`", body = ErrorBody),
        (status = 503, description = "`STORAGE_UNAVAILABLE` (the spool takes no file), or `DATABASE_UNAVAILABLE` (with `Retry-After`)", body = ErrorBody)))]
pub async fn start(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    visible_conversation(&app, &caller, &id).await?;
    if !app.storage.usable().await {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "STORAGE_UNAVAILABLE",
            "the recording storage is not usable; see the server log",
        ));
    }
    let requester = requester(&caller);
    request(&app, &id, move |o, now| {
        o.handle_start_request(now, requester)
    })
    .await
}

/// Stops a manually started recording (admitted participants), or any recording (admins).
#[utoipa::path(post, operation_id = "stopRecording", path = "/conversations/{id}/stopRecording", tag = "recordings",
    params(("id" = String, Path, description = "The conversation")),
    responses((status = 204, description = "Stopping"),
        (status = 403, description = "`RECORDING_DENIED`: an automatic recording, or a role that may not stop it", body = ErrorBody),
        (status = 409, description = "`RECORDING_NOT_RUNNING`", body = ErrorBody)))]
pub async fn stop(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    visible_conversation(&app, &caller, &id).await?;
    let requester = requester(&caller);
    request(&app, &id, move |o, now| {
        o.handle_stop_request(now, requester)
    })
    .await
}

/// How the orchestrator sees a caller.
pub fn requester(caller: &Caller) -> Requester {
    match caller {
        Caller::GlobalAdmin { .. } | Caller::AccountAdmin { .. } => Requester::Admin,
        Caller::Participant(p) => match p.role {
            Role::AssignedAgent => Requester::AssignedAgent,
            Role::SecondaryAgent => Requester::SecondaryAgent,
            Role::Visitor => Requester::Visitor,
        },
    }
}

/// Asks the orchestrator and answers with what it said.
async fn request(
    app: &AppState,
    conversation_id: &str,
    ask: impl FnOnce(
        &mut convrec_core::orchestrator::Orchestrator,
        std::time::Instant,
    ) -> Result<(), Refusal>
    + Send
    + 'static,
) -> Result<StatusCode, ApiError> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    crate::recording::drive::drive(
        app,
        conversation_id,
        Box::new(move |o, now| {
            let _ = answer.send(ask(o, now));
        }),
    )
    .await;
    match answered.await {
        Ok(Ok(())) => Ok(StatusCode::NO_CONTENT),
        Ok(Err(refusal)) => Err(match refusal {
            Refusal::RecordingRunning => {
                ApiError::conflict("RECORDING_RUNNING", refusal.to_string())
            }
            Refusal::NothingToRecord => {
                ApiError::conflict("NOTHING_TO_RECORD", refusal.to_string())
            }
            Refusal::RecordingNotRunning => {
                ApiError::conflict("RECORDING_NOT_RUNNING", refusal.to_string())
            }
            Refusal::RecordingDenied => ApiError::new(
                StatusCode::FORBIDDEN,
                "RECORDING_DENIED",
                refusal.to_string(),
            ),
        }),
        // No orchestrator yet: nothing was ever active.
        Err(_) => Err(ApiError::conflict(
            "NOTHING_TO_RECORD",
            "no call or collaboration layer is active",
        )),
    }
}
