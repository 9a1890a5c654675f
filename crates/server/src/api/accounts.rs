//! Accounts (global admin).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiJson};
use crate::AppState;
use crate::auth::Caller;

/// `POST /v1/accounts` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    name: String,
}

/// Creates an account.
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewAccount>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require_admin()?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::bad_request("'name' must be 1 to 200 characters"));
    }
    let now = crate::now_ms();
    let id = app.metadata.create_account(name, now).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "name": name, "createdAt": now })),
    ))
}

/// Reads an account.
pub async fn read(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let account = visible_account(&app, &caller, &id).await?;
    Ok(Json(
        json!({ "id": account.id, "name": account.name, "createdAt": account.created_at_ms }),
    ))
}

/// The account `id` if the caller may see it (the global admin; account admins in step 4);
/// 404 otherwise.
pub async fn visible_account(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<convrec_store::metadata::Account, ApiError> {
    let hidden = || ApiError::not_found("account", id);
    caller.require_admin().map_err(|_| hidden())?;
    app.metadata.account(id).await?.ok_or_else(hidden)
}
