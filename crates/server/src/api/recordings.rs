//! `GET /v1/conversationhistory/{id}/getConversationRecordings` (SPEC §5): the recordings that
//! produced media, with their files, names (from the file-name pattern) and signed download
//! links.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use convrec_core::orchestrator::{Refusal, Requester, State as OrchestratorState};
use convrec_store::metadata::Role;
use serde_json::{Value, json};

use super::error::ApiError;
use super::visible_conversation;
use crate::AppState;
use crate::auth::Caller;

/// Lists a conversation's recordings.
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, participant) = visible_conversation(&app, &caller, &id).await?;
    if let Some(p) = participant {
        // Roles outside `allowSeeRecordingAvailableMessages` see none (SPEC §5).
        let settings = crate::recording::settings(&app, &id).await?;
        if !settings.roles_that_see.iter().any(|r| r == p.role.as_str()) {
            return Ok(Json(json!({ "items": [] })));
        }
    }
    let mut items = Vec::new();
    for recording_id in app.metadata.recording_ids(&id).await? {
        let Some(r) = app.metadata.recording(&recording_id).await? else {
            continue;
        };
        // One that never produced media is not listed (SPEC §5).
        let Some(started) = r.started_at_ms else {
            continue;
        };
        let files = app.metadata.recording_files(&recording_id).await?;
        let total: u64 = files.iter().map(|f| f.durable_bytes).sum();
        let mut listed = Vec::new();
        for f in &files {
            listed.push(json!({
                "file": f.file,
                "publicationId": f.publication_id,
                "objectKey": f.object_key,
                "fileName": super::download::file_name(&app, &r, f, files.len()).await?,
                "size": f.durable_bytes,
                "startedAt": f.started_at_ms,
                "indexed": f.finished,
                "downloadLink": super::download::link(&app, &r.id, f.file),
            }));
        }
        let file_name = listed.first().map(|f| f["fileName"].clone());
        items.push(json!({
            "id": r.id,
            "conversationId": r.conversation_id,
            "mimeType": super::download::mime_type(&r.recording_type),
            "totalSize": total,
            "recordingStartTimestamp": started,
            "recordingEndTimestamp": r.ended_at_ms,
            "status": r.status,
            "endReason": r.end_reason,
            "recordingType": r.recording_type,
            "layout": r.layout,
            "fileName": file_name,
            "downloadLinks": listed.iter().map(|f| f["downloadLink"].clone()).collect::<Vec<_>>(),
            "files": listed,
        }));
    }
    Ok(Json(json!({ "items": items })))
}

/// `POST /v1/conversations/{id}/getRecordingState` (SPEC §4–5).
pub async fn state(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "conversationId": id,
        "recordingId": recording_id,
        "recordingState": state,
        "recordingType": recording.as_ref().map(|r| r.recording_type.clone()),
        "recordingStartTimestamp": recording.and_then(|r| r.started_at_ms),
    })))
}

/// `POST /v1/conversations/{id}/startRecording`: a manual start (always asynchronous) → 204.
pub async fn start(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
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

/// `POST /v1/conversations/{id}/stopRecording` → 204.
pub async fn stop(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    visible_conversation(&app, &caller, &id).await?;
    let requester = requester(&caller);
    request(&app, &id, move |o, now| {
        o.handle_stop_request(now, requester)
    })
    .await
}

fn requester(caller: &Caller) -> Requester {
    match caller {
        Caller::Admin => Requester::Admin,
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
