//! Configuration of the ACCOUNT and TEMPLATE scopes (SPEC §2): a change is validated whole
//! against `convrec_core::config`'s table and applied whole; reading shows what is set in the
//! scope (unset properties take the next scope's value or the default).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use convrec_core::config::{Scope, validate_change};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::accounts::visible_account;
use super::error::{ApiError, ApiJson};
use super::templates::visible_template;
use crate::AppState;
use crate::auth::Caller;

/// `PUT …/configuration` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationChange {
    properties: Map<String, Value>,
}

/// `PUT /v1/accounts/{id}/configuration`.
pub async fn set_account(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConfigurationChange>,
) -> Result<Json<Value>, ApiError> {
    visible_account(&app, &caller, &id).await?;
    set(&app, Scope::Account, &id, &body.properties).await
}

/// `GET /v1/accounts/{id}/configuration`.
pub async fn read_account(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    visible_account(&app, &caller, &id).await?;
    read(&app, Scope::Account, &id).await
}

/// `PUT /v1/templates/{id}/configuration`.
pub async fn set_template(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConfigurationChange>,
) -> Result<Json<Value>, ApiError> {
    visible_template(&app, &caller, &id).await?;
    set(&app, Scope::Template, &id, &body.properties).await
}

/// `GET /v1/templates/{id}/configuration`.
pub async fn read_template(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    visible_template(&app, &caller, &id).await?;
    read(&app, Scope::Template, &id).await
}

async fn set(
    app: &AppState,
    scope: Scope,
    id: &str,
    properties: &Map<String, Value>,
) -> Result<Json<Value>, ApiError> {
    let change = validate_change(scope, properties).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_CONFIGURATION",
            e.to_string(),
        )
    })?;
    app.metadata
        .set_properties(scope.as_str(), id, &change)
        .await?;
    read(app, scope, id).await
}

async fn read(app: &AppState, scope: Scope, id: &str) -> Result<Json<Value>, ApiError> {
    let set = app.metadata.properties(scope.as_str(), id).await?;
    let properties: Map<String, Value> = set
        .into_iter()
        .map(|(name, value)| (name, serde_json::from_str(&value).unwrap_or(Value::Null)))
        .collect();
    Ok(Json(
        json!({ "scope": scope.as_str(), "id": id, "properties": properties }),
    ))
}
