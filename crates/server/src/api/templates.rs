//! Conversation templates: named defaults, the TEMPLATE configuration scope.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convrec_store::metadata::Template;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ApiPath};
use crate::AppState;
use crate::auth::Caller;

/// `POST /v1/templates` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewTemplate {
    /// The account it belongs to.
    account_id: String,
    /// 1 to 200 characters, not blank.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    name: String,
}

/// A template.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateView {
    /// Its id.
    id: String,
    /// The account it belongs to.
    account_id: String,
    /// Its name.
    name: String,
}

impl From<Template> for TemplateView {
    fn from(t: Template) -> Self {
        Self {
            id: t.id,
            account_id: t.account_id,
            name: t.name,
        }
    }
}

/// Creates a template (the account's admins).
#[utoipa::path(post, operation_id = "createTemplate", path = "/templates", tag = "templates", request_body = NewTemplate,
    responses((status = 201, body = TemplateView)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewTemplate>,
) -> Result<(StatusCode, Json<TemplateView>), ApiError> {
    super::accounts::visible_account(&app, &caller, &body.account_id).await?;
    let name = super::checked_name("name", &body.name)?;
    let id = app
        .metadata
        .create_template(&body.account_id, name, crate::now_ms())
        .await?;
    let template = TemplateView {
        id,
        account_id: body.account_id,
        name: name.to_owned(),
    };
    Ok((StatusCode::CREATED, Json(template)))
}

/// The template `id` if the caller may see it (its account's admins); 404 otherwise.
pub async fn visible_template(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Template, ApiError> {
    let hidden = || ApiError::not_found("template", id);
    let template = app.metadata.template(id).await?.ok_or_else(hidden)?;
    if !caller.sees_account(&template.account_id) {
        return Err(hidden());
    }
    Ok(template)
}

/// Reads a template.
#[utoipa::path(get, operation_id = "getTemplate", path = "/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "The template")),
    responses((status = 200, body = TemplateView)))]
pub async fn read(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TemplateView>, ApiError> {
    Ok(Json(visible_template(&app, &caller, &id).await?.into()))
}
