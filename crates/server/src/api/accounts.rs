//! Accounts and their configuration (global admin).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use convrec_core::config::{Scope, validate_change};
use serde::Deserialize;
use serde_json::{Map, Value, json};

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

/// `PUT /v1/accounts/{id}/configuration` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationChange {
    properties: Map<String, Value>,
}

/// Sets ACCOUNT-scope properties, all or none (SPEC §2).
pub async fn set_configuration(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConfigurationChange>,
) -> Result<Json<Value>, ApiError> {
    visible_account(&app, &caller, &id).await?;
    let change = validate_change(Scope::Account, &body.properties).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_CONFIGURATION",
            e.to_string(),
        )
    })?;
    app.metadata.set_account_properties(&id, &change).await?;
    configuration(&app, &id).await
}

/// Reads the properties set in an account's scope.
pub async fn read_configuration(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    visible_account(&app, &caller, &id).await?;
    configuration(&app, &id).await
}

async fn configuration(app: &AppState, id: &str) -> Result<Json<Value>, ApiError> {
    let set = app.metadata.account_properties(id).await?;
    let properties: Map<String, Value> = set
        .into_iter()
        .map(|(name, value)| (name, serde_json::from_str(&value).unwrap_or(Value::Null)))
        .collect();
    Ok(Json(json!({ "accountId": id, "properties": properties })))
}

/// The account `id` if the caller may see it (the global admin; account admins in step 4);
/// 404 otherwise.
async fn visible_account(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<convrec_store::metadata::Account, ApiError> {
    let hidden = || ApiError::not_found("account", id);
    caller.require_admin().map_err(|_| hidden())?;
    app.metadata.account(id).await?.ok_or_else(hidden)
}
