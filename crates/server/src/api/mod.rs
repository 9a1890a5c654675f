//! The web API under `/v1` (SPEC §5): what step 2 needs of it — accounts and their
//! configuration, conversations and participants, calls and layers, WHIP/WHEP sessions, the
//! event stream, and the list of a conversation's recordings. Step 4 completes it.

pub mod accounts;
pub mod configuration;
pub mod conversations;
pub mod download;
pub mod error;
pub mod events;
pub mod interactions;
pub mod media;
pub mod recordings;
pub mod templates;
pub mod webhooks;

use axum::Router;
use axum::routing::{delete, get, post};
use convrec_store::metadata::{Conversation, Participant};

use crate::AppState;
use crate::auth::Caller;
use error::ApiError;

/// The `/v1` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/accounts", post(accounts::create))
        .route("/accounts/{id}", get(accounts::read))
        .route(
            "/accounts/{id}/configuration",
            get(configuration::read_account).put(configuration::set_account),
        )
        .route("/templates", post(templates::create))
        .route("/templates/{id}", get(templates::read))
        .route(
            "/templates/{id}/configuration",
            get(configuration::read_template).put(configuration::set_template),
        )
        .route("/conversations", post(conversations::create))
        .route(
            "/conversations/{id}",
            get(conversations::read).delete(conversations::delete),
        )
        .route(
            "/conversations/{id}/participants",
            post(conversations::add_participant),
        )
        .route("/conversations/{id}/calls", post(interactions::start_call))
        .route(
            "/conversations/{id}/calls/{interaction}/end",
            post(interactions::end),
        )
        .route(
            "/conversations/{id}/layers",
            post(interactions::start_layer),
        )
        .route(
            "/conversations/{id}/layers/{interaction}/end",
            post(interactions::end),
        )
        .route(
            "/conversations/{id}/calls/{interaction}/whip",
            post(media::publish),
        )
        .route(
            "/conversations/{id}/layers/{interaction}/whip",
            post(media::publish),
        )
        .route(
            "/conversations/{id}/publications/{publication}",
            delete(media::unpublish),
        )
        .route(
            "/conversations/{id}/publications/{publication}/whep",
            post(media::subscribe),
        )
        .route(
            "/conversations/{id}/subscriptions/{subscription}",
            delete(media::unsubscribe),
        )
        .route("/conversations/{id}/events", get(events::stream))
        .route("/recordings/{id}/download", get(download::download))
        .route("/webhooks", post(webhooks::register))
        .route("/webhooks/{id}", delete(webhooks::remove))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/conversations/{id}/getRecordingState",
            post(recordings::state),
        )
        .route(
            "/conversations/{id}/startRecording",
            post(recordings::start),
        )
        .route("/conversations/{id}/stopRecording", post(recordings::stop))
        .route(
            "/conversationhistory/{id}/getConversationRecordings",
            get(recordings::list),
        )
}

/// The conversation `id` if the caller may see it, with the calling participant (none for an
/// admin); 404 otherwise.
pub async fn visible_conversation(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Conversation, Option<Participant>), ApiError> {
    let participant = caller.participant_in(id)?.cloned();
    let conversation = app
        .metadata
        .conversation(id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation", id))?;
    Ok((conversation, participant))
}
