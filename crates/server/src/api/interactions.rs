//! Calls and collaboration layers: started and ended through the API, and ended when their last
//! publication leaves (SPEC §1). Starting one may start a recording; ending the last one stops it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convrec_store::metadata::Metadata;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use super::visible_conversation;
use crate::AppState;
use crate::auth::Caller;
use crate::live::{ConversationEvent, Interaction, Source};

/// `POST …/calls` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCall {
    /// What the call carries.
    #[serde(rename = "type")]
    #[schema(value_type = CallType)]
    kind: String,
}

/// What a call carries.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallType {
    /// Sound only.
    Audio,
    /// Sound and video.
    AudioVideo,
}

/// `POST …/layers` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLayer {
    /// The kind of layer.
    #[serde(rename = "type")]
    #[schema(value_type = LayerType)]
    kind: String,
}

/// A kind of collaboration layer. The co-browsing kinds are refused with 422 `NOT_SUPPORTED`
/// until their rendering is built.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LayerType {
    /// A participant's screen.
    ScreenSharing,
    /// Not supported yet.
    DocumentCobrowsing,
    /// Not supported yet.
    EmbeddedCobrowsing,
    /// Not supported yet.
    UniversalCobrowsing,
}

/// A call or collaboration layer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InteractionView {
    /// Its id.
    pub id: String,
    /// `CALL` or `COLLABORATION_LAYER`.
    pub source: String,
    /// `AUDIO`, `AUDIO_VIDEO` or `SCREEN_SHARING`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it started (Unix ms).
    pub started_at: i64,
}

impl From<&Interaction> for InteractionView {
    fn from(i: &Interaction) -> Self {
        Self {
            id: i.id.clone(),
            source: i.source.as_str().to_owned(),
            kind: i.kind.clone(),
            started_at: i.started_at_ms,
        }
    }
}

/// Starts a call (any caller who sees the conversation). May start a recording (SPEC §3).
#[utoipa::path(post, operation_id = "startCall", path = "/conversations/{id}/calls", tag = "interactions",
    params(("id" = String, Path, description = "The conversation")), request_body = NewCall,
    responses((status = 201, body = InteractionView),
        (status = 409, description = "`INTERACTION_ACTIVE`: a call is already active", body = ErrorBody)))]
pub async fn start_call(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewCall>,
) -> Result<(StatusCode, Json<InteractionView>), ApiError> {
    if !matches!(body.kind.as_str(), "AUDIO" | "AUDIO_VIDEO") {
        return Err(ApiError::bad_request(format!(
            "'type' cannot be '{}' for a call; allowed: AUDIO, AUDIO_VIDEO",
            body.kind
        )));
    }
    start(&app, &caller, &id, Source::Call, body.kind).await
}

/// Starts a collaboration layer (`SCREEN_SHARING`; co-browsing is refused until it is built).
#[utoipa::path(post, operation_id = "startLayer", path = "/conversations/{id}/layers", tag = "interactions",
    params(("id" = String, Path, description = "The conversation")), request_body = NewLayer,
    responses((status = 201, body = InteractionView),
        (status = 409, description = "`INTERACTION_ACTIVE`: a layer of this type is already active", body = ErrorBody),
        (status = 422, description = "`NOT_SUPPORTED`: a co-browsing type", body = ErrorBody)))]
pub async fn start_layer(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewLayer>,
) -> Result<(StatusCode, Json<InteractionView>), ApiError> {
    match body.kind.as_str() {
        "SCREEN_SHARING" => {}
        "DOCUMENT_COBROWSING" | "EMBEDDED_COBROWSING" | "UNIVERSAL_COBROWSING" => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "NOT_SUPPORTED",
                format!(
                    "collaboration layer type {} is not supported yet; supported: SCREEN_SHARING",
                    body.kind
                ),
            ));
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "'type' cannot be '{other}' for a layer; allowed: SCREEN_SHARING"
            )));
        }
    }
    start(&app, &caller, &id, Source::CollaborationLayer, body.kind).await
}

async fn start(
    app: &AppState,
    caller: &Caller,
    conversation_id: &str,
    source: Source,
    kind: String,
) -> Result<(StatusCode, Json<InteractionView>), ApiError> {
    let (conversation, _) = visible_conversation(app, caller, conversation_id).await?;
    // Stored first, so anything that learns the id (a racing request's 409) finds it.
    let now = crate::now_ms();
    let id = Metadata::new_interaction_id(source.as_str());
    app.metadata
        .create_interaction(&id, conversation_id, source.as_str(), &kind, now)
        .await?;
    let interaction = Interaction {
        id: id.clone(),
        source,
        kind: kind.clone(),
        started_at_ms: now,
    };
    let view = InteractionView::from(&interaction);
    // One call, and one layer of each type, at a time: checked and claimed in one step, so two
    // requests at once cannot both start one.
    let active = app
        .live
        .with(conversation_id, &conversation.account_id, |c| {
            let active = c
                .interactions
                .iter()
                .find(|i| i.source == source && (source == Source::Call || i.kind == kind))
                .map(|i| i.id.clone());
            if active.is_none() {
                c.interactions.push(interaction);
            }
            active
        });
    if let Some(active) = active {
        // It never started: no trace of it stays in the history.
        app.metadata.delete_interaction(&id).await?;
        return Err(ApiError::conflict(
            "INTERACTION_ACTIVE",
            format!(
                "{} {active} is already active in this conversation",
                source.as_str()
            ),
        )
        .with_details(json!({ "interactionId": active })));
    }
    app.live
        .with(conversation_id, &conversation.account_id, |c| {
            c.publish(ConversationEvent::InteractionStarted {
                interaction_id: id.clone(),
                source: source.as_str().to_owned(),
                interaction_type: kind.clone(),
            });
        });
    tracing::info!(conversation = conversation_id, interaction = %id, "{} started", source.as_str());
    let orchestrator_source = match source {
        Source::Call => convrec_core::orchestrator::Source::Call,
        Source::CollaborationLayer => convrec_core::orchestrator::Source::CollaborationLayer,
    };
    crate::recording::drive::drive(
        app,
        conversation_id,
        Box::new(move |o, now| o.handle_interaction_started(now, &id, orchestrator_source)),
    )
    .await;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Ends a call (any caller who sees the conversation). May end the recording (SPEC §3).
#[utoipa::path(post, operation_id = "endCall", path = "/conversations/{id}/calls/{callId}/end", tag = "interactions",
    params(("id" = String, Path, description = "The conversation"),
        ("callId" = String, Path, description = "The active call")),
    responses((status = 204, description = "Ended")))]
pub async fn end_call(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((id, interaction)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    end(&app, &caller, &id, &interaction, Source::Call).await
}

/// Ends a collaboration layer. May end the recording (SPEC §3).
#[utoipa::path(post, operation_id = "endLayer", path = "/conversations/{id}/layers/{layerId}/end", tag = "interactions",
    params(("id" = String, Path, description = "The conversation"),
        ("layerId" = String, Path, description = "The active layer")),
    responses((status = 204, description = "Ended")))]
pub async fn end_layer(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((id, interaction)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    end(&app, &caller, &id, &interaction, Source::CollaborationLayer).await
}

async fn end(
    app: &AppState,
    caller: &Caller,
    conversation_id: &str,
    interaction_id: &str,
    source: Source,
) -> Result<StatusCode, ApiError> {
    visible_conversation(app, caller, conversation_id).await?;
    require_active(app, conversation_id, interaction_id, source)?;
    end_interaction(app, conversation_id, interaction_id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks that `interaction` is an active call or layer (as `source` says) of the
/// conversation; 404 otherwise.
pub fn require_active(
    app: &AppState,
    conversation_id: &str,
    interaction_id: &str,
    source: Source,
) -> Result<(), ApiError> {
    let active = app
        .live
        .with_existing(conversation_id, |c| {
            c.interactions
                .iter()
                .any(|i| i.id == interaction_id && i.source == source)
        })
        .unwrap_or(false);
    let what = match source {
        Source::Call => "active call",
        Source::CollaborationLayer => "active collaboration layer",
    };
    if active {
        Ok(())
    } else {
        Err(ApiError::not_found(what, interaction_id))
    }
}

/// Ends an interaction and tells the orchestrator (which stops the recording if nothing is left
/// to record).
pub async fn end_interaction(app: &AppState, conversation_id: &str, interaction_id: &str) {
    if close_interaction(app, conversation_id, interaction_id, None).await {
        let id = interaction_id.to_owned();
        crate::recording::drive::drive(
            app,
            conversation_id,
            Box::new(move |o, now| o.handle_interaction_ended(now, &id)),
        )
        .await;
    }
}

/// Ends an interaction without telling the orchestrator: its publications' sessions close.
/// `reason` is said to clients when it was not its participants' doing. Returns whether it
/// was active.
pub async fn close_interaction(
    app: &AppState,
    conversation_id: &str,
    interaction_id: &str,
    reason: Option<&str>,
) -> bool {
    let peers = app.live.with_existing(conversation_id, |c| {
        let before = c.interactions.len();
        c.interactions.retain(|i| i.id != interaction_id);
        if c.interactions.len() == before {
            return None;
        }
        c.held.retain(|h| h != interaction_id);
        c.publish(ConversationEvent::InteractionEnded {
            interaction_id: interaction_id.to_owned(),
            reason: reason.map(str::to_owned),
        });
        Some(
            c.publications
                .iter()
                .filter(|p| p.interaction_id == interaction_id)
                .map(|p| p.peer)
                .collect::<Vec<_>>(),
        )
    });
    let Some(Some(peers)) = peers else {
        return false;
    };
    tracing::info!(
        conversation = conversation_id,
        interaction = interaction_id,
        reason,
        "ended"
    );
    let now = crate::now_ms();
    crate::retry::write_eventually(
        app,
        "end an interaction",
        interaction_id,
        move |metadata, id| async move { metadata.end_interaction(&id, now).await },
    )
    .await;
    for peer in peers {
        // Their PeerClosed events close the publications.
        let _ = app.room.call(move |room, now| room.remove(now, peer)).await;
    }
    true
}
