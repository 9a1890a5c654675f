//! Conversations and their participants: create, list (paged), read, delete (admins).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convrec_core::orchestrator::admitted;
use convrec_store::metadata::{Conversation, Participant, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use super::interactions::InteractionView;
use super::visible_conversation;
use crate::AppState;
use crate::auth::Caller;

/// `POST /v1/conversations` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewConversation {
    /// The account it belongs to.
    account_id: String,
    /// Its template (of the same account), whose configuration applies.
    template_id: Option<String>,
    /// Up to 1000 characters.
    #[schema(max_length = 1000)]
    topic: String,
}

/// A conversation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    /// Its id.
    id: String,
    /// The account it belongs to.
    account_id: String,
    /// Its template.
    template_id: Option<String>,
    /// Its topic.
    topic: String,
    /// When it was made (Unix ms).
    created_at: i64,
}

impl From<Conversation> for ConversationView {
    fn from(c: Conversation) -> Self {
        Self {
            id: c.id,
            account_id: c.account_id,
            template_id: c.template_id,
            topic: c.topic,
            created_at: c.created_at_ms,
        }
    }
}

/// A conversation with what is active in it now.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationDetails {
    /// The conversation.
    #[serde(flatten)]
    conversation: ConversationView,
    /// Its active calls and layers.
    active_interactions: Vec<InteractionView>,
    /// What the caller is here and may do: what a client needs to show the conversation.
    viewer: Viewer,
}

/// The caller in a conversation (SPEC §3, §5), for clients to show what applies to it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Viewer {
    /// The calling participant (absent for an admin).
    participant_id: Option<String>,
    /// Its name.
    name: Option<String>,
    /// Its role (absent for an admin).
    #[schema(value_type = Option<ParticipantRole>)]
    role: Option<String>,
    /// Recording is on for this conversation (both switches).
    recording_enabled: bool,
    /// `AUTOMATIC` or `MANUAL`.
    recording_triggering_mode: String,
    /// The caller may start a recording by hand (MANUAL mode and admitted by
    /// `allowManualRecording`, or an admin).
    may_start_recording: bool,
    /// The caller may stop a recording by hand (admins always; admitted participants a manual
    /// one).
    may_stop_recording: bool,
    /// The caller sees recordings (`allowSeeRecordingAvailableMessages`, or an admin).
    sees_recordings: bool,
    /// Clients show a banner while recording (`showRecordingBanner`).
    show_recording_banner: bool,
}

/// Creates a conversation (the account's admins).
#[utoipa::path(post, operation_id = "createConversation", path = "/conversations", tag = "conversations", request_body = NewConversation,
    responses((status = 201, body = ConversationView)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewConversation>,
) -> Result<(StatusCode, Json<ConversationView>), ApiError> {
    super::accounts::visible_account(&app, &caller, &body.account_id).await?;
    if body.topic.chars().count() > 1000 {
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
    let conversation = Conversation {
        id,
        account_id: body.account_id,
        template_id: body.template_id,
        topic: body.topic,
        created_at_ms: now,
    };
    Ok((StatusCode::CREATED, Json(conversation.into())))
}

/// `GET /v1/conversations` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The account (by default: an account admin's own; every account for a global admin).
    account_id: Option<String>,
    /// Page size, 1 to 200 (50 by default).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}\.conv_[0-9a-f]{1,64}$")]
    cursor: Option<String>,
}

/// One page of conversations, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationPage {
    /// The conversations.
    items: Vec<ConversationView>,
    /// Where the next page starts; absent on the last page.
    next_cursor: Option<String>,
}

/// Lists an account's conversations (its admins; a global admin without `accountId`: every
/// account's), paged oldest first.
#[utoipa::path(get, operation_id = "listConversations", path = "/conversations", tag = "conversations", params(ListQuery),
    responses((status = 200, body = ConversationPage),
        (status = 403, description = "A participant lists nothing", body = ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ConversationPage>, ApiError> {
    let account_id = match (query.account_id, &caller) {
        (Some(id), _) => Some(id),
        (None, Caller::AccountAdmin { account_id, .. }) => Some(account_id.clone()),
        (None, Caller::GlobalAdmin { .. }) => None,
        (None, Caller::Participant(_)) => {
            return Err(ApiError::forbidden("participants list no conversations"));
        }
    };
    if let Some(account_id) = &account_id {
        super::accounts::visible_account(&app, &caller, account_id).await?;
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "'limit' is {limit}; allowed: 1 to 200"
        )));
    }
    let cursor = query.cursor.as_deref().map(parse_cursor).transpose()?;
    let mut items = app
        .metadata
        .conversations_page(account_id.as_deref(), cursor.as_ref(), limit + 1)
        .await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            items
                .last()
                .map(|c| format!("{}.{}", c.created_at_ms, c.id))
        })
        .flatten();
    Ok(Json(ConversationPage {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

fn parse_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let hex = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    cursor
        .split_once('.')
        .filter(|(ms, id)| {
            (1..=18).contains(&ms.len())
                && ms.bytes().all(|b| b.is_ascii_digit())
                && id.strip_prefix("conv_").is_some_and(hex)
        })
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_owned())))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "'cursor' '{cursor}' is not a cursor this server gave out (use 'nextCursor')"
            ))
        })
}

/// Reads a conversation with its active calls and layers.
#[utoipa::path(get, operation_id = "getConversation", path = "/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "The conversation")),
    responses((status = 200, body = ConversationDetails)))]
pub async fn read(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConversationDetails>, ApiError> {
    let (conversation, participant) = visible_conversation(&app, &caller, &id).await?;
    let active_interactions = app
        .live
        .with_existing(&id, |c| c.interactions.iter().map(Into::into).collect())
        .unwrap_or_default();
    let settings = crate::recording::settings(&app, &id).await?;
    let admitted = admitted(&settings, super::recordings::requester(&caller));
    let admin = participant.is_none();
    let viewer = Viewer {
        participant_id: participant.as_ref().map(|p| p.id.clone()),
        name: participant.as_ref().map(|p| p.name.clone()),
        role: participant.as_ref().map(|p| p.role.as_str().to_owned()),
        recording_enabled: settings.enabled,
        recording_triggering_mode: if settings.automatic {
            "AUTOMATIC"
        } else {
            "MANUAL"
        }
        .to_owned(),
        may_start_recording: settings.enabled && !settings.automatic && admitted,
        may_stop_recording: settings.enabled && (admin || (!settings.automatic && admitted)),
        sees_recordings: super::sees_recordings(&app, &caller, &id).await?,
        show_recording_banner: settings.show_banner,
    };
    Ok(Json(ConversationDetails {
        conversation: conversation.into(),
        active_interactions,
        viewer,
    }))
}

/// `POST /v1/conversations/{id}/participants` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewParticipant {
    /// 1 to 200 characters, not blank.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    name: String,
    /// Its role.
    #[schema(value_type = ParticipantRole)]
    role: String,
}

/// A participant's role (SPEC §1).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParticipantRole {
    /// The agent the conversation is assigned to.
    AssignedAgent,
    /// Another agent.
    SecondaryAgent,
    /// A visitor (customer).
    Visitor,
}

/// A participant.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantView {
    /// Its id.
    pub id: String,
    /// Its conversation.
    pub conversation_id: String,
    /// Its name.
    pub name: String,
    /// Its role.
    #[schema(value_type = ParticipantRole)]
    pub role: String,
}

impl From<Participant> for ParticipantView {
    fn from(p: Participant) -> Self {
        Self {
            id: p.id,
            conversation_id: p.conversation_id,
            name: p.name,
            role: p.role.as_str().to_owned(),
        }
    }
}

/// A new participant and its token (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantCreated {
    /// The participant.
    #[serde(flatten)]
    participant: ParticipantView,
    /// Its bearer token: what the person acts with in this conversation. Not shown again.
    token: String,
}

/// Adds a participant (admins); the token is shown once.
#[utoipa::path(post, operation_id = "addParticipant", path = "/conversations/{id}/participants", tag = "conversations",
    params(("id" = String, Path, description = "The conversation")), request_body = NewParticipant,
    responses((status = 201, body = ParticipantCreated),
        (status = 403, description = "A participant may not add participants", body = ErrorBody)))]
pub async fn add_participant(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewParticipant>,
) -> Result<(StatusCode, Json<ParticipantCreated>), ApiError> {
    visible_conversation(&app, &caller, &id).await?;
    caller.require_admin()?;
    let role: Role = body
        .role
        .parse()
        .map_err(|e: String| ApiError::bad_request(format!("'role': {e}")))?;
    let name = super::checked_name("name", &body.name)?;
    let (participant, token) = app
        .metadata
        .add_participant(&id, name, role, crate::now_ms())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ParticipantCreated {
            participant: participant.into(),
            token: token.expose().to_owned(),
        }),
    ))
}

/// Deletes a conversation with its recordings: metadata, objects and spool files (admins).
/// Refused while a call, layer or recording is active. Nothing else deletes a recording.
#[utoipa::path(delete, operation_id = "deleteConversation", path = "/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "The conversation")),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "A participant may not delete", body = ErrorBody),
        (status = 409, description = "`CONVERSATION_ACTIVE`", body = ErrorBody)))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
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
    let recording_ids = app.metadata.recording_ids(&id).await?;
    for recording_id in &recording_ids {
        // Bytes still on their way to the object store would outlive the deletion.
        let storing = app
            .metadata
            .recording(recording_id)
            .await?
            .is_some_and(|r| r.status == "PENDING");
        if storing {
            return Err(ApiError::conflict(
                "CONVERSATION_ACTIVE",
                format!("recording {recording_id} is still being stored; try again shortly"),
            ));
        }
    }
    for recording_id in recording_ids {
        app.storage.delete_recording(&recording_id).await?;
    }
    app.metadata.delete_conversation(&id).await?;
    tracing::info!(conversation = %id, "deleted with its recordings");
    Ok(StatusCode::NO_CONTENT)
}
