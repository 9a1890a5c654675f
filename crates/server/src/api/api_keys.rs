//! API keys (SPEC §1): made by admins, shown once, stored hashed, revocable. An account's
//! admins manage its `ADMIN` keys; global admins manage every key, `GLOBAL_ADMIN` ones
//! included. The bootstrap key (SPEC §7) is configuration, not one of these.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convrec_store::metadata::{ApiKey, KeyRole};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::AppState;
use crate::auth::Caller;

/// `POST /v1/apikeys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewApiKey {
    /// The account an `ADMIN` key administers; absent for `GLOBAL_ADMIN` and `RECORDER` keys.
    account_id: Option<String>,
    /// What it may do.
    #[schema(value_type = KeyRoleName)]
    role: String,
    /// What it is for, 1 to 200 characters, not blank.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    name: String,
}

/// What an API key may do.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyRoleName {
    /// Administers one account (`accountId`).
    Admin,
    /// Administers every account (no `accountId`).
    GlobalAdmin,
    /// Opens no part of the web API: the key recorders present at their entry point when the
    /// server requires one (`conversation.recording.recordingApiKeyId`; no `accountId`; made by
    /// a global admin).
    Recorder,
}

/// An API key (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    /// Its id.
    id: String,
    /// The account it administers (absent for a global admin key).
    account_id: Option<String>,
    /// What it may do.
    #[schema(value_type = KeyRoleName)]
    role: String,
    /// Its name.
    name: String,
    /// When it was made (Unix ms).
    created_at: i64,
    /// When it was revoked (Unix ms); a revoked key authenticates nothing.
    revoked_at: Option<i64>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            account_id: k.account_id,
            role: k.role.as_str().to_owned(),
            name: k.name,
            created_at: k.created_at_ms,
            revoked_at: k.revoked_at_ms,
        }
    }
}

/// A new key with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyCreated {
    /// The key.
    #[serde(flatten)]
    key: ApiKeyView,
    /// The secret to send as `Authorization: Bearer …`. Only its hash is kept.
    api_key: String,
}

/// Makes an API key.
#[utoipa::path(post, operation_id = "createApiKey", path = "/apikeys", tag = "apikeys", request_body = NewApiKey,
    responses((status = 201, body = ApiKeyCreated),
        (status = 403, description = "Only a global admin makes `GLOBAL_ADMIN` keys", body = ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewApiKey>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    let role: KeyRole = body
        .role
        .parse()
        .map_err(|e: String| ApiError::bad_request(format!("'role': {e}")))?;
    match (role, &body.account_id) {
        (KeyRole::Admin, Some(account_id)) => {
            super::accounts::visible_account(&app, &caller, account_id).await?;
        }
        (KeyRole::Admin, None) => {
            return Err(ApiError::bad_request("an ADMIN key needs 'accountId'"));
        }
        (KeyRole::GlobalAdmin, None) => caller.require_global_admin()?,
        (KeyRole::GlobalAdmin, Some(_)) => {
            return Err(ApiError::bad_request(
                "a GLOBAL_ADMIN key administers every account: leave 'accountId' out",
            ));
        }
        (KeyRole::Recorder, None) => caller.require_global_admin()?,
        (KeyRole::Recorder, Some(_)) => {
            return Err(ApiError::bad_request(
                "a RECORDER key serves the recorders of every account: leave 'accountId' out",
            ));
        }
    }
    let name = super::checked_name("name", &body.name)?;
    let (key, secret) = app
        .metadata
        .create_api_key(body.account_id.as_deref(), role, name, crate::now_ms())
        .await?;
    tracing::info!(key = %key.id, role = role.as_str(), account = ?key.account_id, "API key made");
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            key: key.into(),
            api_key: secret.expose().to_owned(),
        }),
    ))
}

/// `GET /v1/apikeys` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct KeyListQuery {
    /// The account whose keys to list; absent: the global admin keys (global admins only).
    account_id: Option<String>,
}

/// `{items}` of the key list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Oldest first, revoked ones included.
    items: Vec<ApiKeyView>,
}

/// Lists an account's keys, or the global admin keys (without secrets).
#[utoipa::path(get, operation_id = "listApiKeys", path = "/apikeys", tag = "apikeys", params(KeyListQuery),
    responses((status = 200, body = ApiKeyList),
        (status = 403, description = "Only a global admin lists global keys", body = ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<KeyListQuery>,
) -> Result<Json<ApiKeyList>, ApiError> {
    match &query.account_id {
        Some(account_id) => {
            super::accounts::visible_account(&app, &caller, account_id).await?;
        }
        None => caller.require_global_admin()?,
    }
    let keys = app.metadata.api_keys(query.account_id.as_deref()).await?;
    Ok(Json(ApiKeyList {
        items: keys.into_iter().map(Into::into).collect(),
    }))
}

/// Revokes a key at once: it authenticates nothing from then on.
#[utoipa::path(delete, operation_id = "revokeApiKey", path = "/apikeys/{id}", tag = "apikeys",
    params(("id" = String, Path, description = "The key")),
    responses((status = 204, description = "Revoked")))]
pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let hidden = || ApiError::not_found("API key", &id);
    let key = app.metadata.api_key(&id).await?.ok_or_else(hidden)?;
    let visible = match &key.account_id {
        Some(account_id) => caller.sees_account(account_id),
        None => matches!(caller, Caller::GlobalAdmin { .. }),
    };
    if !visible {
        return Err(hidden());
    }
    app.metadata.revoke_api_key(&id, crate::now_ms()).await?;
    tracing::info!(key = %id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
