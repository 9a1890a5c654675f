//! The web API under `/v1` (SPEC §5). Every route is registered through `utoipa-axum`, so the
//! OpenAPI 3.1 document at `/v1/openapi.json` is made from the same code that serves it.

pub mod accounts;
pub mod api_keys;
pub mod configuration;
pub mod conversations;
pub mod download;
pub mod error;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod interactions;
pub mod media;
pub mod openapi;
pub mod recordings;
pub mod templates;
pub mod webhooks;

use axum::Router;
use convrec_store::metadata::{Conversation, Participant};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use error::ApiError;

/// The `/v1` routes, and the OpenAPI document that describes them.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::new()
        .routes(routes!(accounts::create))
        .routes(routes!(accounts::read))
        .routes(routes!(accounts::recorded_minutes))
        .routes(routes!(
            configuration::read_account,
            configuration::set_account
        ))
        .routes(routes!(api_keys::create, api_keys::list))
        .routes(routes!(api_keys::revoke))
        .routes(routes!(templates::create))
        .routes(routes!(templates::read))
        .routes(routes!(
            configuration::read_template,
            configuration::set_template
        ))
        .routes(routes!(conversations::create, conversations::list))
        .routes(routes!(conversations::read, conversations::delete))
        .routes(routes!(conversations::add_participant))
        .routes(routes!(history::post_message))
        .routes(routes!(history::timeline))
        .routes(routes!(events::stream))
        .routes(routes!(interactions::start_call))
        .routes(routes!(interactions::end_call))
        .routes(routes!(interactions::start_layer))
        .routes(routes!(interactions::end_layer))
        .routes(routes!(media::publish_call))
        .routes(routes!(media::publish_layer))
        .routes(routes!(media::unpublish))
        .routes(routes!(media::subscribe))
        .routes(routes!(media::unsubscribe))
        .routes(routes!(media::ice_servers))
        .routes(routes!(recordings::state))
        .routes(routes!(recordings::start))
        .routes(routes!(recordings::stop))
        .routes(routes!(recordings::list))
        .routes(routes!(download::download))
        .routes(routes!(webhooks::register))
        .routes(routes!(webhooks::remove))
        .routes(routes!(webhooks::deliveries));
    let (router, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/v1", v1)
        .split_for_parts();
    (router, openapi::finish(document))
}

/// The conversation `id` if the caller may see it, with the calling participant (none for an
/// admin); 404 otherwise.
pub async fn visible_conversation(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Conversation, Option<Participant>), ApiError> {
    let hidden = || ApiError::not_found("conversation", id);
    let conversation = app.metadata.conversation(id).await?.ok_or_else(hidden)?;
    if !caller.sees_conversation(&conversation.account_id, id) {
        return Err(hidden());
    }
    Ok((conversation, caller.participant().cloned()))
}

/// Whether a caller who sees a conversation also sees its recordings and `RECORDING_AVAILABLE`
/// messages: admins do; participants if their role is in `allowSeeRecordingAvailableMessages`.
pub async fn sees_recordings(
    app: &AppState,
    caller: &Caller,
    conversation_id: &str,
) -> Result<bool, ApiError> {
    match caller.participant() {
        None => Ok(true),
        Some(p) => {
            let settings = crate::recording::settings(app, conversation_id).await?;
            Ok(settings.roles_that_see.iter().any(|r| r == p.role.as_str()))
        }
    }
}

/// A name field: trimmed, 1 to 200 characters.
pub fn checked_name<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    let name = value.trim();
    let length = name.chars().count();
    if length == 0 || length > 200 {
        return Err(ApiError::bad_request(format!(
            "'{field}' must be 1 to 200 characters (not blank); it has {length}"
        )));
    }
    Ok(name)
}
