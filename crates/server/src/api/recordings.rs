//! `GET /v1/conversationhistory/{id}/getConversationRecordings` (SPEC §5): the recordings that
//! produced media, with their files. Step 4 adds download links, file names from the pattern,
//! and the participants; until then, raw files are listed with their manifest entries.

use axum::Json;
use axum::extract::{Path, State};
use convrec_store::metadata::Role;
use serde_json::{Value, json};

use super::error::ApiError;
use super::visible_conversation;
use crate::AppState;
use crate::auth::Caller;

/// Roles that see recordings by default (`allowSeeRecordingAvailableMessages`).
const ROLES_THAT_SEE: &[Role] = &[Role::AssignedAgent, Role::SecondaryAgent];

/// Lists a conversation's recordings.
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, participant) = visible_conversation(&app, &caller, &id).await?;
    if participant.is_some_and(|p| !ROLES_THAT_SEE.contains(&p.role)) {
        return Ok(Json(json!({ "items": [] })));
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
        items.push(json!({
            "id": r.id,
            "conversationId": r.conversation_id,
            "mimeType": "video/mp4",
            "totalSize": total,
            "recordingStartTimestamp": started,
            "recordingEndTimestamp": r.ended_at_ms,
            "status": r.status,
            "endReason": r.end_reason,
            "recordingType": r.recording_type,
            "layout": r.layout,
            "files": files.iter().map(|f| json!({
                "file": f.file,
                "publicationId": f.publication_id,
                "objectKey": f.object_key,
                "size": f.durable_bytes,
                "startedAt": f.started_at_ms,
                "indexed": f.finished,
            })).collect::<Vec<_>>(),
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
    let running = app
        .live
        .with_existing(&id, |c| {
            c.recording
                .as_ref()
                .map(|r| (r.id.clone(), r.state.as_str()))
        })
        .flatten();
    let (recording_id, state) = match running {
        Some((recording_id, state)) => (Some(recording_id), state.to_owned()),
        None => match app.metadata.recording_ids(&id).await?.pop() {
            None => (None, "IDLE".to_owned()),
            Some(last) => {
                let normal = app
                    .metadata
                    .recording(&last)
                    .await?
                    .is_some_and(|r| r.end_reason.as_deref() == Some("NORMAL"));
                (
                    Some(last),
                    if normal { "STOPPED" } else { "FAILED" }.to_owned(),
                )
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
