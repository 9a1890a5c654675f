//! Conversation templates: named defaults, the TEMPLATE configuration scope.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use convrec_store::metadata::Template;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiJson};
use crate::AppState;
use crate::auth::Caller;

/// `POST /v1/templates` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewTemplate {
    account_id: String,
    name: String,
}

/// Creates a template (admin).
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewTemplate>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require_admin()?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::bad_request("'name' must be 1 to 200 characters"));
    }
    let id = app
        .metadata
        .create_template(&body.account_id, name, crate::now_ms())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "accountId": body.account_id, "name": name })),
    ))
}

/// The template `id` if the caller may see it; 404 otherwise.
pub async fn visible_template(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Template, ApiError> {
    let hidden = || ApiError::not_found("template", id);
    caller.require_admin().map_err(|_| hidden())?;
    app.metadata.template(id).await?.ok_or_else(hidden)
}

/// Reads a template.
pub async fn read(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = visible_template(&app, &caller, &id).await?;
    Ok(Json(
        json!({ "id": t.id, "accountId": t.account_id, "name": t.name }),
    ))
}
