//! Calls and collaboration layers: started and ended through the API, and ended when their last
//! publication leaves (SPEC §1). Starting one may start a recording; ending the last one stops it.

use axum::Json;
use axum::extract::{MatchedPath, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiJson};
use super::visible_conversation;
use crate::AppState;
use crate::auth::Caller;
use crate::live::{ConversationEvent, Interaction, Source};

/// `POST …/calls` and `POST …/layers` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInteraction {
    #[serde(rename = "type")]
    kind: String,
}

/// Starts a call (`AUDIO` or `AUDIO_VIDEO`).
pub async fn start_call(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewInteraction>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !matches!(body.kind.as_str(), "AUDIO" | "AUDIO_VIDEO") {
        return Err(ApiError::bad_request(format!(
            "'type' cannot be '{}' for a call; allowed: AUDIO, AUDIO_VIDEO",
            body.kind
        )));
    }
    start(&app, &caller, &id, Source::Call, body.kind).await
}

/// Starts a collaboration layer (`SCREEN_SHARING`; co-browsing is refused until it is built).
pub async fn start_layer(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewInteraction>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (conversation, _) = visible_conversation(app, caller, conversation_id).await?;
    // One call, and one layer of each type, at a time.
    let active = app
        .live
        .with(conversation_id, &conversation.account_id, |c| {
            c.interactions
                .iter()
                .find(|i| i.source == source && (source == Source::Call || i.kind == kind))
                .map(|i| i.id.clone())
        });
    if let Some(active) = active {
        return Err(ApiError::conflict(
            "INTERACTION_ACTIVE",
            format!(
                "{} {active} is already active in this conversation",
                source.as_str()
            ),
        )
        .with_details(json!({ "interactionId": active })));
    }
    let now = crate::now_ms();
    let id = app
        .metadata
        .create_interaction(conversation_id, source.as_str(), &kind, now)
        .await?;
    app.live
        .with(conversation_id, &conversation.account_id, |c| {
            c.interactions.push(Interaction {
                id: id.clone(),
                source,
                kind: kind.clone(),
                started_at_ms: now,
            });
            c.publish(ConversationEvent::InteractionStarted {
                interaction_id: id.clone(),
                source: source.as_str().to_owned(),
                interaction_type: kind.clone(),
            });
        });
    tracing::info!(conversation = conversation_id, interaction = %id, "{} started", source.as_str());
    let (started, orchestrator_source) = (
        id.clone(),
        match source {
            Source::Call => convrec_core::orchestrator::Source::Call,
            Source::CollaborationLayer => convrec_core::orchestrator::Source::CollaborationLayer,
        },
    );
    crate::recording::drive::drive(
        app,
        conversation_id,
        Box::new(move |o, now| o.handle_interaction_started(now, &started, orchestrator_source)),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "source": source.as_str(), "type": kind, "startedAt": now })),
    ))
}

/// Ends a call or layer.
pub async fn end(
    State(app): State<AppState>,
    caller: Caller,
    route: MatchedPath,
    Path((id, interaction)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    visible_conversation(&app, &caller, &id).await?;
    require_active(&app, &id, &interaction, &route)?;
    end_interaction(&app, &id, &interaction).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks that `interaction` is active in the conversation and is of the kind the route names
/// (`…/calls/{id}/…` or `…/layers/{id}/…`); 404 otherwise.
pub fn require_active(
    app: &AppState,
    conversation_id: &str,
    interaction_id: &str,
    route: &MatchedPath,
) -> Result<(), ApiError> {
    let source = if route.as_str().contains("/calls/") {
        Source::Call
    } else {
        Source::CollaborationLayer
    };
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
    if let Err(e) = app
        .metadata
        .end_interaction(interaction_id, crate::now_ms())
        .await
    {
        tracing::error!(error = %e, "cannot end an interaction");
    }
    for peer in peers {
        // Their PeerClosed events close the publications.
        let _ = app.room.call(move |room, now| room.remove(now, peer)).await;
    }
    true
}
