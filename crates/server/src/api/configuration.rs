//! Configuration of the ACCOUNT and TEMPLATE scopes (SPEC §2): a change is validated whole
//! against `convrec_core::config`'s table and applied whole; reading shows what is set in the
//! scope (unset properties take the next scope's value or the default).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convrec_core::config::{PROPERTIES, Scope, ValueKind, validate_change};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, schema::Schema};

use super::accounts::visible_account;
use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use super::templates::visible_template;
use crate::AppState;
use crate::auth::Caller;

/// `PUT /v1/accounts/{id}/configuration` body: the ACCOUNT-scope properties to set, by short
/// name (SPEC §2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfigurationChange {
    pub(crate) properties: Map<String, Value>,
}

/// `PUT /v1/templates/{id}/configuration` body: the TEMPLATE-scope properties to set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfigurationChange {
    pub(crate) properties: Map<String, Value>,
}

impl utoipa::PartialSchema for AccountConfigurationChange {
    fn schema() -> RefOr<Schema> {
        change_schema(Scope::Account)
    }
}

impl ToSchema for AccountConfigurationChange {}

impl utoipa::PartialSchema for TemplateConfigurationChange {
    fn schema() -> RefOr<Schema> {
        change_schema(Scope::Template)
    }
}

impl ToSchema for TemplateConfigurationChange {}

/// The body schema of a change in `scope`, made from the property table itself: each property
/// settable there, with its values, and no other.
fn change_schema(scope: Scope) -> RefOr<Schema> {
    let mut properties = Map::new();
    for p in PROPERTIES.iter().filter(|p| p.scopes.contains(&scope)) {
        let value = match p.kind {
            ValueKind::Bool => json!({"type": "boolean"}),
            ValueKind::OneOf(values) => json!({"type": "string", "enum": values}),
            ValueKind::SubsetOf { values, non_empty } => json!({
                "type": "array",
                "items": {"type": "string", "enum": values},
                "uniqueItems": true,
                "minItems": u8::from(non_empty),
            }),
            ValueKind::Integer { min, max } => {
                json!({"type": "integer", "minimum": min, "maximum": max})
            }
            ValueKind::FilenamePattern | ValueKind::Url | ValueKind::Text => {
                json!({"type": "string", "minLength": 1})
            }
            ValueKind::PublicKey => json!({"type": "string", "minLength": 1}),
        };
        // null unsets the property in this scope.
        let mut value = json!({"anyOf": [value, {"type": "null"}]});
        value["description"] = json!(p.doc);
        properties.insert(p.name.to_owned(), value);
    }
    let schema = json!({
        "type": "object",
        "description": format!("The {} properties to set, by short name (SPEC §2); null unsets one (it falls back to the next scope, then its default). Validated whole, applied whole.", scope.as_str()),
        "required": ["properties"],
        "additionalProperties": false,
        "properties": {
            "properties": {"type": "object", "additionalProperties": false, "properties": properties},
        },
    });
    serde_json::from_value(schema).expect("bug: the configuration schema is a schema")
}

/// What is set in one scope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigurationView {
    /// `ACCOUNT` or `TEMPLATE`.
    scope: String,
    /// The account's or template's id.
    id: String,
    /// `{"<short name>": value}` of the properties set in this scope.
    #[schema(value_type = Object)]
    properties: Map<String, Value>,
}

/// Sets ACCOUNT-scope properties (all or none).
#[utoipa::path(put, operation_id = "setAccountConfiguration", path = "/accounts/{id}/configuration", tag = "configuration",
    params(("id" = String, Path, description = "The account")), request_body = AccountConfigurationChange,
    responses((status = 200, body = ConfigurationView),
        (status = 422, description = "A property, value or scope is not allowed", body = ErrorBody)))]
pub async fn set_account(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AccountConfigurationChange>,
) -> Result<Json<ConfigurationView>, ApiError> {
    visible_account(&app, &caller, &id).await?;
    set(&app, Scope::Account, &id, &body.properties).await
}

/// Reads the ACCOUNT-scope properties.
#[utoipa::path(get, operation_id = "getAccountConfiguration", path = "/accounts/{id}/configuration", tag = "configuration",
    params(("id" = String, Path, description = "The account")),
    responses((status = 200, body = ConfigurationView)))]
pub async fn read_account(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConfigurationView>, ApiError> {
    visible_account(&app, &caller, &id).await?;
    read(&app, Scope::Account, &id).await
}

/// Sets TEMPLATE-scope properties (all or none).
#[utoipa::path(put, operation_id = "setTemplateConfiguration", path = "/templates/{id}/configuration", tag = "configuration",
    params(("id" = String, Path, description = "The template")), request_body = TemplateConfigurationChange,
    responses((status = 200, body = ConfigurationView),
        (status = 422, description = "A property, value or scope is not allowed", body = ErrorBody)))]
pub async fn set_template(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<TemplateConfigurationChange>,
) -> Result<Json<ConfigurationView>, ApiError> {
    visible_template(&app, &caller, &id).await?;
    set(&app, Scope::Template, &id, &body.properties).await
}

/// Reads the TEMPLATE-scope properties.
#[utoipa::path(get, operation_id = "getTemplateConfiguration", path = "/templates/{id}/configuration", tag = "configuration",
    params(("id" = String, Path, description = "The template")),
    responses((status = 200, body = ConfigurationView)))]
pub async fn read_template(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConfigurationView>, ApiError> {
    visible_template(&app, &caller, &id).await?;
    read(&app, Scope::Template, &id).await
}

async fn set(
    app: &AppState,
    scope: Scope,
    id: &str,
    properties: &Map<String, Value>,
) -> Result<Json<ConfigurationView>, ApiError> {
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

async fn read(app: &AppState, scope: Scope, id: &str) -> Result<Json<ConfigurationView>, ApiError> {
    let set = app.metadata.properties(scope.as_str(), id).await?;
    let properties: Map<String, Value> = set
        .into_iter()
        .map(|(name, value)| (name, serde_json::from_str(&value).unwrap_or(Value::Null)))
        .collect();
    Ok(Json(ConfigurationView {
        scope: scope.as_str().to_owned(),
        id: id.to_owned(),
        properties,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scope_s_change_schema_is_made_from_the_property_table() {
        for scope in [Scope::Account, Scope::Template] {
            let schema = serde_json::to_value(change_schema(scope)).unwrap_or_default();
            let listed = &schema["properties"]["properties"]["properties"];
            for p in PROPERTIES {
                assert_eq!(
                    listed.get(p.name).is_some(),
                    p.scopes.contains(&scope),
                    "{} in the {} schema",
                    p.name,
                    scope.as_str()
                );
            }
        }
    }
}
