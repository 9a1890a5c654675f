//! Accounts (tenants): created by a global admin, read by their admins; recorded minutes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convrec_store::metadata::Account;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::AppState;
use crate::auth::Caller;

/// `POST /v1/accounts` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// 1 to 200 characters, not blank.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    name: String,
}

/// An account.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    /// Its id.
    id: String,
    /// Its name.
    name: String,
    /// When it was made (Unix ms).
    created_at: i64,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        Self {
            id: a.id,
            name: a.name,
            created_at: a.created_at_ms,
        }
    }
}

/// Creates an account (global admins).
#[utoipa::path(post, operation_id = "createAccount", path = "/accounts", tag = "accounts", request_body = NewAccount,
    responses((status = 201, body = AccountView), (status = 403, body = super::error::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewAccount>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    caller.require_global_admin()?;
    let name = super::checked_name("name", &body.name)?;
    let now = crate::now_ms();
    let id = app.metadata.create_account(name, now).await?;
    let account = Account {
        id,
        name: name.to_owned(),
        created_at_ms: now,
    };
    Ok((StatusCode::CREATED, Json(account.into())))
}

/// Reads an account.
#[utoipa::path(get, operation_id = "getAccount", path = "/accounts/{id}", tag = "accounts",
    params(("id" = String, Path, description = "The account")),
    responses((status = 200, body = AccountView)))]
pub async fn read(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(visible_account(&app, &caller, &id).await?.into()))
}

/// The account `id` if the caller may see it (global admins, and its own admins); 404
/// otherwise.
pub async fn visible_account(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Account, ApiError> {
    let hidden = || ApiError::not_found("account", id);
    if !caller.sees_account(id) {
        return Err(hidden());
    }
    app.metadata.account(id).await?.ok_or_else(hidden)
}

/// `getRecordedMinutes` query: a period in Unix ms, `fromTime` included, `toTime` not.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Period {
    /// Start of the period (Unix ms, included).
    #[param(minimum = 0)]
    from_time: i64,
    /// End of the period (Unix ms, excluded); after `fromTime`.
    #[param(minimum = 1)]
    to_time: i64,
}

/// Recorded time in a period.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedMinutes {
    /// The account.
    account_id: String,
    /// The period's start (Unix ms).
    from_time: i64,
    /// The period's end (Unix ms).
    to_time: i64,
    /// Recorded minutes in the period, rounded up to a whole minute.
    recorded_minutes: i64,
    /// The exact recorded time in milliseconds.
    recorded_milliseconds: i64,
}

/// Minutes recorded in an account's conversations in a period (admins): each recording's span
/// from its first durable fragment to its end (or now, while it runs), clipped to the period.
/// Recordings of deleted conversations are gone and not counted.
#[utoipa::path(get, operation_id = "getRecordedMinutes", path = "/accounts/{id}/getRecordedMinutes", tag = "accounts",
    params(("id" = String, Path, description = "The account"), Period),
    responses((status = 200, body = RecordedMinutes)))]
pub async fn recorded_minutes(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(period): ApiQuery<Period>,
) -> Result<Json<RecordedMinutes>, ApiError> {
    visible_account(&app, &caller, &id).await?;
    if period.from_time < 0 {
        return Err(ApiError::bad_request(format!(
            "'fromTime' ({}) is before 1970; times are Unix milliseconds",
            period.from_time
        )));
    }
    if period.to_time <= period.from_time {
        return Err(ApiError::bad_request(format!(
            "'toTime' ({}) must be after 'fromTime' ({})",
            period.to_time, period.from_time
        )));
    }
    let ms = app
        .metadata
        .recorded_ms(&id, period.from_time, period.to_time, crate::now_ms())
        .await?;
    Ok(Json(RecordedMinutes {
        account_id: id,
        from_time: period.from_time,
        to_time: period.to_time,
        recorded_minutes: (ms + 59_999) / 60_000,
        recorded_milliseconds: ms,
    }))
}
