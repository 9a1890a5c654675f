//! A conversation's history (SPEC §5): chat messages, and the timeline of messages, calls,
//! layers and recording events with a `RECORDING_AVAILABLE` message per completed recording
//! at its end. Participants see recordings and those messages only if their role is in
//! `allowSeeRecordingAvailableMessages`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convrec_store::metadata::{Message, Recording, Sender};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::conversations::ParticipantView;
use super::error::{ApiError, ApiJson, ApiPath};
use super::visible_conversation;
use crate::AppState;
use crate::auth::Caller;
use crate::live::ConversationEvent;

/// `POST /v1/conversations/{id}/messages` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// 1 to 10000 characters, not blank.
    #[schema(min_length = 1, max_length = 10000, pattern = r"\S")]
    text: String,
}

/// Longest chat message, in characters.
const MAX_TEXT: usize = 10_000;

/// One entry of a conversation's timeline, ordered by `timestamp` (Unix ms).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimelineEntry {
    /// A chat message.
    #[serde(rename_all = "camelCase")]
    Text {
        /// The message's id.
        id: String,
        /// When it was sent.
        timestamp: i64,
        /// The participant (or API key) that sent it.
        sender_id: String,
        /// Its name when it sent it.
        sender_name: String,
        /// What it says.
        text: String,
    },
    /// The chat message of a completed recording, at the recording's end.
    #[serde(rename_all = "camelCase")]
    RecordingAvailable {
        /// The message's id.
        id: String,
        /// Where it sits: the recording's end.
        timestamp: i64,
        /// The recording.
        recording_id: String,
        /// The name users see.
        file_name: Option<String>,
        /// Bytes of all its files.
        size: u64,
        /// `video/mp4` or `audio/mp4`.
        mime_type: String,
        /// Its first durable fragment.
        start_timestamp: i64,
        /// Its end.
        end_timestamp: Option<i64>,
        /// Signed, expiring link to its (first) file.
        download_link: Option<String>,
    },
    /// A call started.
    #[serde(rename_all = "camelCase")]
    CallStarted {
        /// When.
        timestamp: i64,
        /// The call.
        call_id: String,
        /// `AUDIO` or `AUDIO_VIDEO`.
        call_type: String,
    },
    /// A call ended.
    #[serde(rename_all = "camelCase")]
    CallEnded {
        /// When.
        timestamp: i64,
        /// The call.
        call_id: String,
    },
    /// A collaboration layer started.
    #[serde(rename_all = "camelCase")]
    LayerStarted {
        /// When.
        timestamp: i64,
        /// The layer.
        layer_id: String,
        /// `SCREEN_SHARING`.
        layer_type: String,
    },
    /// A collaboration layer ended.
    #[serde(rename_all = "camelCase")]
    LayerEnded {
        /// When.
        timestamp: i64,
        /// The layer.
        layer_id: String,
    },
    /// A recording's first fragment became durable.
    #[serde(rename_all = "camelCase")]
    RecordingStarted {
        /// When.
        timestamp: i64,
        /// The recording (absent for a participant who may not see recordings).
        recording_id: Option<String>,
        /// `AUDIO` or `AUDIO_VIDEO`.
        recording_type: String,
    },
    /// A recording ended.
    #[serde(rename_all = "camelCase")]
    RecordingEnded {
        /// When.
        timestamp: i64,
        /// The recording (absent for a participant who may not see recordings).
        recording_id: Option<String>,
        /// `NORMAL` or an `ABORT_*` reason.
        end_reason: String,
    },
    /// A recording was attempted but never produced media.
    #[serde(rename_all = "camelCase")]
    RecordingFailed {
        /// When it was given up.
        timestamp: i64,
        /// The attempt (absent for a participant who may not see recordings).
        recording_id: Option<String>,
        /// The `ABORT_*` reason.
        failure_reason: String,
    },
}

impl TimelineEntry {
    /// Where it sits, and its rank among entries of the same millisecond: what begins comes
    /// before what happens during it, which comes before what ends.
    fn position(&self) -> (i64, u8) {
        use TimelineEntry::*;
        match self {
            CallStarted { timestamp, .. } | LayerStarted { timestamp, .. } => (*timestamp, 0),
            RecordingStarted { timestamp, .. } => (*timestamp, 1),
            Text { timestamp, .. } => (*timestamp, 2),
            RecordingEnded { timestamp, .. } | RecordingFailed { timestamp, .. } => (*timestamp, 3),
            RecordingAvailable { timestamp, .. } => (*timestamp, 4),
            CallEnded { timestamp, .. } | LayerEnded { timestamp, .. } => (*timestamp, 5),
        }
    }
}

/// A conversation's history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// The conversation.
    conversation_id: String,
    /// Its account.
    account_id: String,
    /// Its topic.
    topic: String,
    /// When it was made (Unix ms).
    created_at: i64,
    /// Its participants (the recorder is not one).
    participants: Vec<ParticipantView>,
    /// Messages, calls, layers and recording events, oldest first.
    timeline: Vec<TimelineEntry>,
}

/// Posts a chat message (participants as themselves; admins as their key).
#[utoipa::path(post, operation_id = "postMessage", path = "/conversations/{id}/messages", tag = "history",
    params(("id" = String, Path, description = "The conversation")), request_body = NewMessage,
    responses((status = 201, body = TimelineEntry)))]
pub async fn post_message(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewMessage>,
) -> Result<(StatusCode, Json<TimelineEntry>), ApiError> {
    let (conversation, _) = visible_conversation(&app, &caller, &id).await?;
    let length = body.text.chars().count();
    if body.text.trim().is_empty() || length > MAX_TEXT {
        return Err(ApiError::bad_request(format!(
            "'text' must be 1 to {MAX_TEXT} characters (not blank); it has {length}"
        )));
    }
    let sender = sender(&app, &caller).await?;
    let message = app
        .metadata
        .add_text_message(&id, sender, &body.text, crate::now_ms())
        .await?;
    if let Message::Text {
        id: message_id,
        sender,
        text,
        at_ms,
    } = &message
    {
        let event = ConversationEvent::MessagePosted {
            message_id: message_id.clone(),
            sender_id: sender.id.clone(),
            sender_name: sender.name.clone(),
            text: text.clone(),
            timestamp: *at_ms,
        };
        app.live
            .with(&id, &conversation.account_id, |c| c.publish(event));
    }
    let entry = message_entry(&app, message, true)
        .await?
        .ok_or_else(|| ApiError::internal("a text message has no entry"))?;
    Ok((StatusCode::CREATED, Json(entry)))
}

async fn sender(app: &AppState, caller: &Caller) -> Result<Sender, ApiError> {
    let key = match caller {
        Caller::Participant(p) => {
            return Ok(Sender {
                id: p.id.clone(),
                name: p.name.clone(),
            });
        }
        Caller::GlobalAdmin { key_id: None } => None,
        Caller::GlobalAdmin { key_id: Some(id) } | Caller::AccountAdmin { key_id: id, .. } => {
            app.metadata.api_key(id).await?
        }
    };
    Ok(match key {
        Some(key) => Sender {
            id: key.id,
            name: key.name,
        },
        None => Sender {
            id: "bootstrap-admin".to_owned(),
            name: "Administrator".to_owned(),
        },
    })
}

/// The timeline of a conversation.
#[utoipa::path(get, operation_id = "getConversationHistory", path = "/conversationhistory/{id}", tag = "history",
    params(("id" = String, Path, description = "The conversation")),
    responses((status = 200, body = History)))]
pub async fn timeline(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<History>, ApiError> {
    let (conversation, _) = visible_conversation(&app, &caller, &id).await?;
    let sees_recordings = super::sees_recordings(&app, &caller, &id).await?;
    let mut timeline = Vec::new();
    for message in app.metadata.messages(&id).await? {
        timeline.extend(message_entry(&app, message, sees_recordings).await?);
    }
    for i in app.metadata.interactions(&id).await? {
        let call = i.source == "CALL";
        timeline.push(if call {
            TimelineEntry::CallStarted {
                timestamp: i.started_at_ms,
                call_id: i.id.clone(),
                call_type: i.kind,
            }
        } else {
            TimelineEntry::LayerStarted {
                timestamp: i.started_at_ms,
                layer_id: i.id.clone(),
                layer_type: i.kind,
            }
        });
        if let Some(timestamp) = i.ended_at_ms {
            timeline.push(if call {
                TimelineEntry::CallEnded {
                    timestamp,
                    call_id: i.id,
                }
            } else {
                TimelineEntry::LayerEnded {
                    timestamp,
                    layer_id: i.id,
                }
            });
        }
    }
    for recording_id in app.metadata.recording_ids(&id).await? {
        if let Some(r) = app.metadata.recording(&recording_id).await? {
            timeline.extend(recording_entries(r, sees_recordings));
        }
    }
    // Stable: entries of the same position keep the order they were gathered in.
    timeline.sort_by_key(TimelineEntry::position);
    let participants = app.metadata.participants(&id).await?;
    Ok(Json(History {
        conversation_id: conversation.id,
        account_id: conversation.account_id,
        topic: conversation.topic,
        created_at: conversation.created_at_ms,
        participants: participants.into_iter().map(Into::into).collect(),
        timeline,
    }))
}

/// A message as the timeline shows it; none for a `RECORDING_AVAILABLE` message the caller may
/// not see, or whose recording is gone.
async fn message_entry(
    app: &AppState,
    message: Message,
    sees_recordings: bool,
) -> Result<Option<TimelineEntry>, ApiError> {
    Ok(match message {
        Message::Text {
            id,
            sender,
            text,
            at_ms,
        } => Some(TimelineEntry::Text {
            id,
            timestamp: at_ms,
            sender_id: sender.id,
            sender_name: sender.name,
            text,
        }),
        Message::RecordingAvailable { .. } if !sees_recordings => None,
        Message::RecordingAvailable {
            id,
            recording_id,
            at_ms,
        } => {
            let Some(recording) = app.metadata.recording(&recording_id).await? else {
                return Ok(None);
            };
            super::recordings::view(app, recording).await?.map(|r| {
                TimelineEntry::RecordingAvailable {
                    id,
                    timestamp: at_ms,
                    recording_id: r.id,
                    file_name: r.file_name,
                    size: r.total_size,
                    mime_type: r.mime_type,
                    start_timestamp: r.recording_start_timestamp,
                    end_timestamp: r.recording_end_timestamp,
                    download_link: r.download_links.into_iter().next(),
                }
            })
        }
    })
}

/// A recording's start and end (or failure) in the timeline.
fn recording_entries(r: Recording, sees_recordings: bool) -> Vec<TimelineEntry> {
    let recording_id = sees_recordings.then(|| r.id.clone());
    let mut entries = Vec::new();
    match (r.started_at_ms, r.ended_at_ms, r.end_reason) {
        (Some(started), ended, reason) => {
            entries.push(TimelineEntry::RecordingStarted {
                timestamp: started,
                recording_id: recording_id.clone(),
                recording_type: r.recording_type,
            });
            if let (Some(timestamp), Some(end_reason)) = (ended, reason) {
                entries.push(TimelineEntry::RecordingEnded {
                    timestamp,
                    recording_id,
                    end_reason,
                });
            }
        }
        (None, Some(timestamp), Some(failure_reason)) => {
            entries.push(TimelineEntry::RecordingFailed {
                timestamp,
                recording_id,
                failure_reason,
            });
        }
        // Still starting: nothing to show yet.
        (None, _, _) => {}
    }
    entries
}
