//! Webhook registrations (admin): register, remove, and read the delivery log.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use convrec_store::metadata::Webhook;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiJson};
use crate::AppState;
use crate::auth::Caller;
use crate::webhooks::{EVENTS, secret_key};

/// `POST /v1/webhooks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewWebhook {
    account_id: String,
    endpoint: String,
    secret: String,
    events: Vec<String>,
}

/// Registers a webhook.
pub async fn register(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require_admin()?;
    let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_WEBHOOK", m);
    let url_ok = (body.endpoint.starts_with("http://") || body.endpoint.starts_with("https://"))
        && reqwest::Url::parse(&body.endpoint).is_ok_and(|u| u.host().is_some());
    if !url_ok {
        return Err(invalid(format!(
            "'endpoint' must be an absolute http:// or https:// URL, not '{}'",
            body.endpoint
        )));
    }
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
        Json(json!({
            "id": id,
            "accountId": body.account_id,
            "endpoint": body.endpoint,
            "events": body.events,
        })),
    ))
}

/// Removes a registration (its queued messages go with it).
pub async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    visible_webhook(&app, &caller, &id).await?;
    app.metadata.delete_webhook(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every delivery attempt of a registration, newest first.
pub async fn deliveries(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    visible_webhook(&app, &caller, &id).await?;
    let items: Vec<Value> = app
        .metadata
        .webhook_deliveries(&id)
        .await?
        .into_iter()
        .map(|a| {
            json!({
                "webhookId": a.message_id,
                "eventType": a.event_type,
                "attempt": a.attempt,
                "timestamp": a.at_ms,
                "status": a.status,
                "error": a.error,
                "messageState": a.message_state,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn visible_webhook(app: &AppState, caller: &Caller, id: &str) -> Result<Webhook, ApiError> {
    let hidden = || ApiError::not_found("webhook", id);
    caller.require_admin().map_err(|_| hidden())?;
    app.metadata.webhook(id).await?.ok_or_else(hidden)
}
