//! Conversations and their participants.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use convrec_store::metadata::Role;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiJson};
use super::visible_conversation;
use crate::AppState;
use crate::auth::Caller;

/// `POST /v1/conversations` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewConversation {
    account_id: String,
    template_id: Option<String>,
    topic: String,
}

/// Creates a conversation (admin).
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewConversation>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require_admin()?;
    if body.topic.len() > 1000 {
        return Err(ApiError::bad_request(
            "'topic' is longer than 1000 characters",
        ));
    }
    if let Some(template_id) = &body.template_id {
        let template = app.metadata.template(template_id).await?;
        if template.is_none_or(|t| t.account_id != body.account_id) {
            return Err(ApiError::not_found("template", template_id));
        }
    }
    let now = crate::now_ms();
    let id = app
        .metadata
        .create_conversation(
            &body.account_id,
            body.template_id.as_deref(),
            &body.topic,
            now,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "id": id, "accountId": body.account_id, "templateId": body.template_id, "topic": body.topic, "createdAt": now }),
        ),
    ))
}

/// Reads a conversation with its active calls and layers.
pub async fn read(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (conversation, _) = visible_conversation(&app, &caller, &id).await?;
    let interactions = app
        .live
        .with_existing(&id, |c| {
            c.interactions
                .iter()
                .map(|i| {
                    json!({
                        "id": i.id,
                        "source": i.source.as_str(),
                        "type": i.kind,
                        "startedAt": i.started_at_ms,
                    })
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    Ok(Json(json!({
        "id": conversation.id,
        "accountId": conversation.account_id,
        "templateId": conversation.template_id,
        "topic": conversation.topic,
        "createdAt": conversation.created_at_ms,
        "activeInteractions": interactions,
    })))
}

/// `POST /v1/conversations/{id}/participants` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewParticipant {
    name: String,
    role: String,
}

/// Adds a participant (admin); the token is shown once.
pub async fn add_participant(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewParticipant>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    visible_conversation(&app, &caller, &id).await?;
    caller.require_admin()?;
    let role: Role = body
        .role
        .parse()
        .map_err(|e: String| ApiError::bad_request(format!("'role': {e}")))?;
    if body.name.trim().is_empty() || body.name.len() > 200 {
        return Err(ApiError::bad_request("'name' must be 1 to 200 characters"));
    }
    let (participant, token) = app
        .metadata
        .add_participant(&id, &body.name, role, crate::now_ms())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": participant.id,
            "conversationId": id,
            "name": participant.name,
            "role": role.as_str(),
            "token": token.expose(),
        })),
    ))
}

/// `DELETE /v1/conversations/{id}` (admins): the conversation and its recordings, metadata and
/// stored bytes (objects and spool). Refused while a call, layer or recording is active.
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    visible_conversation(&app, &caller, &id).await?;
    caller.require_admin()?;
    let active = app
        .live
        .with_existing(&id, |c| !c.interactions.is_empty() || c.recording.is_some())
        .unwrap_or(false);
    if active {
        return Err(ApiError::conflict(
            "CONVERSATION_ACTIVE",
            "end its calls and layers (and let the recording finish) before deleting it",
        ));
    }
    for recording_id in app.metadata.recording_ids(&id).await? {
        app.storage
            .delete_recording(&recording_id)
            .await
            .map_err(ApiError::internal)?;
    }
    app.metadata.delete_conversation(&id).await?;
    tracing::info!(conversation = %id, "deleted with its recordings");
    Ok(StatusCode::NO_CONTENT)
}
