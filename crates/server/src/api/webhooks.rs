//! Webhook registrations (admin): register, remove, and read the delivery log.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convrec_store::metadata::{DeliveryAttempt, Webhook};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::AppState;
use crate::auth::Caller;
use crate::webhooks::{EVENTS, secret_key};

/// `POST /v1/webhooks` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewWebhook {
    /// The account whose events it receives.
    account_id: String,
    /// Absolute `http://` or `https://` URL.
    endpoint: String,
    /// Standard Webhooks secret: `whsec_` and base64 of 24 to 64 bytes.
    secret: String,
    /// Event names: `conversation.recording_started`, `conversation.recording_failed`,
    /// `conversation.recording_available`.
    events: Vec<String>,
}

/// A webhook registration (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    /// Its id.
    id: String,
    /// The account whose events it receives.
    account_id: String,
    /// Where events are posted.
    endpoint: String,
    /// The events it receives.
    events: Vec<String>,
}

/// Registers a webhook (the account's admins).
#[utoipa::path(post, operation_id = "registerWebhook", path = "/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = WebhookView),
        (status = 422, description = "`INVALID_WEBHOOK`: endpoint, secret or events", body = ErrorBody)))]
pub async fn register(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    super::accounts::visible_account(&app, &caller, &body.account_id).await?;
    let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_WEBHOOK", m);
    let url_ok = (body.endpoint.starts_with("http://") || body.endpoint.starts_with("https://"))
        && reqwest::Url::parse(&body.endpoint).is_ok_and(|u| u.host().is_some());
    if !url_ok {
        return Err(invalid(format!(
            "'endpoint' must be an absolute http:// or https:// URL, not '{}'",
            body.endpoint
        )));
    }
    crate::destinations::check_url(&app.webhook_destinations, &body.endpoint)
        .map_err(|why| invalid(format!("'endpoint' cannot be reached: {why}")))?;
    secret_key(&body.secret).map_err(invalid)?;
    if body.events.is_empty() {
        return Err(invalid(format!(
            "'events' is empty; allowed: {}",
            EVENTS.join(", ")
        )));
    }
    if let Some(unknown) = body.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(invalid(format!(
            "'events' holds '{unknown}'; allowed: {}",
            EVENTS.join(", ")
        )));
    }
    let id = app
        .metadata
        .create_webhook(
            &body.account_id,
            &body.endpoint,
            &body.secret,
            &body.events,
            crate::now_ms(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookView {
            id,
            account_id: body.account_id,
            endpoint: body.endpoint,
            events: body.events,
        }),
    ))
}

/// Removes a registration (its queued messages go with it).
#[utoipa::path(delete, operation_id = "removeWebhook", path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The registration")),
    responses((status = 204, description = "Removed")))]
pub async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    visible_webhook(&app, &caller, &id).await?;
    app.metadata.delete_webhook(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// The message (`webhook-id`, the same on every attempt).
    webhook_id: String,
    /// The event name.
    event_type: String,
    /// Its number, from 1.
    attempt: u32,
    /// When (Unix ms).
    timestamp: i64,
    /// The HTTP status the endpoint answered, if it answered.
    status: Option<u16>,
    /// What went wrong otherwise.
    error: Option<String>,
    /// The message's state now: `PENDING`, `DELIVERED` or `FAILED`.
    message_state: String,
}

impl From<DeliveryAttempt> for DeliveryView {
    fn from(a: DeliveryAttempt) -> Self {
        Self {
            webhook_id: a.message_id,
            event_type: a.event_type,
            attempt: a.attempt,
            timestamp: a.at_ms,
            status: a.status,
            error: a.error,
            message_state: a.message_state,
        }
    }
}

/// `{items}` of the delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryLog {
    /// Newest first.
    items: Vec<DeliveryView>,
}

/// Every delivery attempt of a registration, newest first.
#[utoipa::path(get, operation_id = "listWebhookDeliveries", path = "/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "The registration")),
    responses((status = 200, body = DeliveryLog)))]
pub async fn deliveries(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeliveryLog>, ApiError> {
    visible_webhook(&app, &caller, &id).await?;
    let attempts = app.metadata.webhook_deliveries(&id).await?;
    Ok(Json(DeliveryLog {
        items: attempts.into_iter().map(Into::into).collect(),
    }))
}

async fn visible_webhook(app: &AppState, caller: &Caller, id: &str) -> Result<Webhook, ApiError> {
    let hidden = || ApiError::not_found("webhook", id);
    let webhook = app.metadata.webhook(id).await?.ok_or_else(hidden)?;
    if !caller.sees_account(&webhook.account_id) {
        return Err(hidden());
    }
    Ok(webhook)
}
