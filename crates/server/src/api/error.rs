//! API errors: `{code, message, details}` with a stable `code` and the right status (SPEC §5).
//! Internal causes are logged here and never shown to clients.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// What was wrong, for people.
    pub message: String,
    /// Machine-readable particulars.
    pub details: Value,
    /// Seconds after which the same request may succeed, sent as `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error without details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }

    /// Adds details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Tells the client to try again in `seconds` (`Retry-After`).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 503: the metadata database cannot serve just now; logs the cause.
    pub fn database_unavailable(cause: impl std::fmt::Display) -> Self {
        Self::unavailable("DATABASE_UNAVAILABLE", "the metadata database", cause)
    }

    /// 503: the object store cannot serve just now; logs the cause.
    pub fn storage_unavailable(cause: impl std::fmt::Display) -> Self {
        Self::unavailable("STORAGE_UNAVAILABLE", "the recording storage", cause)
    }

    fn unavailable(code: &'static str, what: &str, cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "{what} cannot serve a request just now");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            format!("{what} cannot be reached just now; try again in {RETRY_AFTER_UNAVAILABLE} s"),
        )
        .retry_after(RETRY_AFTER_UNAVAILABLE)
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// 401: no valid credentials.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "send 'Authorization: Bearer <API key or participant token>'",
        )
    }

    /// 403: visible, but not the caller's to do.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// 404: absent, or not the caller's to see (the two are never told apart).
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no {what} with id '{id}'"),
        )
    }

    /// 409: the state does not allow it.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 500: logs the cause, tells the client nothing about it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error; see the server log",
        )
    }
}

/// What a client is told to wait when the database or the object store is away: long enough
/// not to press it, short enough to find it back soon (a request waits up to 5 s for a
/// database connection).
const RETRY_AFTER_UNAVAILABLE: u64 = 5;

/// The body of every error answer (SPEC §5).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable code (`NOT_FOUND`, `RECORDING_RUNNING`, …).
    pub code: String,
    /// What was wrong, for people: which field, what it held, what is allowed.
    pub message: String,
    /// Particulars for programs (e.g. the id of the interaction in the way), or null.
    #[schema(value_type = Object, nullable)]
    pub details: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
            details: self.details,
        };
        // A refused recorder entry point marks itself (`recording::entry`): only an unknown one
        // is a guess.
        let failed_authentication = self.status == StatusCode::UNAUTHORIZED;
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        if failed_authentication {
            response
                .extensions_mut()
                .insert(crate::limits::FailedAuthentication);
        }
        response
    }
}

impl From<convrec_store::metadata::MetadataError> for ApiError {
    /// A missing object (e.g. the account a new conversation names) is the client's 404; a
    /// database that cannot serve just now is a 503 to retry; the rest is the server's trouble.
    fn from(e: convrec_store::metadata::MetadataError) -> Self {
        match e {
            convrec_store::metadata::MetadataError::NotFound { what, id } => {
                ApiError::not_found(what, &id)
            }
            unavailable if unavailable.is_unavailable() => {
                ApiError::database_unavailable(unavailable)
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::storage::StorageError> for ApiError {
    /// The object store failing to answer (`Generic`: connections refused, timeouts, 5xx
    /// after the client's retries) is a 503 to retry; anything else — an object it does not
    /// have that the metadata says it stores, credentials it refuses, a local file that cannot
    /// be used — is the server's trouble, for the operator.
    fn from(e: crate::storage::StorageError) -> Self {
        match e {
            crate::storage::StorageError::Store(object_store::Error::Generic { .. }) => {
                ApiError::storage_unavailable(e)
            }
            other => ApiError::internal(other),
        }
    }
}

/// A JSON body whose rejections are [`ApiError`]s naming what was wrong. Text holding the NUL
/// character is refused: no database stores it (PostgreSQL's text cannot), and no name,
/// topic or message needs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        typed_body(value).map(ApiJson)
    }
}

/// A JSON body's value as a `T`, or the [`ApiError`] naming what is wrong: text holding NUL,
/// then the first field that does not fit.
pub fn typed_body<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if let Some(field) = nul_in(&value, "") {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_BODY",
            format!("{field} must not contain the NUL character (U+0000)"),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let message = if at == "." {
            e.inner().to_string()
        } else {
            format!("{at}: {}", e.inner())
        };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_BODY",
            format!("Failed to deserialize the JSON body into the target type: {message}"),
        )
    })
}

/// Where in `value` a string (or key) holds U+0000, said as `field 'a.b'` or `the body`.
fn nul_in(value: &serde_json::Value, at: &str) -> Option<String> {
    let here = || {
        if at.is_empty() {
            "the body".to_owned()
        } else {
            format!("field '{at}'")
        }
    };
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        serde_json::Value::String(s) => s.contains('\0').then(here),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(n, item)| nul_in(item, &join(&n.to_string()))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                Some(here())
            } else {
                nul_in(item, &join(key))
            }
        }),
        _ => None,
    }
}

/// Refuses a request whose path or query holds an encoded NUL (`%00`): see [`ApiJson`].
fn refuse_nul(parts: &Parts) -> Result<(), ApiError> {
    let has_nul = |text: &str| text.to_ascii_lowercase().contains("%00");
    if has_nul(parts.uri.path()) || parts.uri.query().is_some_and(has_nul) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "the path and the query must not contain the NUL character (%00)".to_owned(),
        ));
    }
    Ok(())
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match rejection {
        JsonRejection::MissingJsonContentType(_) => "UNSUPPORTED_MEDIA_TYPE",
        JsonRejection::JsonSyntaxError(_) => "MALFORMED_JSON",
        JsonRejection::JsonDataError(_) => "INVALID_BODY",
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        _ => "BAD_REQUEST",
    };
    ApiError::new(status, code, rejection.body_text())
}

/// Path parameters whose rejections (e.g. an id that is not valid UTF-8 once decoded) are
/// [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        refuse_nul(parts)?;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_PATH",
        rejection.body_text(),
    )
}

/// A query string whose rejections (unknown or malformed parameters) are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        refuse_nul(parts)?;
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_QUERY",
        rejection.body_text(),
    )
}

/// The answer for a path no route matches.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NO_ROUTE",
        format!("no endpoint at '{}'; see /v1/openapi.json", uri.path()),
    )
}

/// The answer for a method a route does not take.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!(
            "'{}' does not take {method}; see /v1/openapi.json",
            uri.path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageError;
    use convrec_store::metadata::MetadataError;

    fn answered(error: ApiError) -> (u16, &'static str, Option<String>) {
        let code = error.code;
        let response = error.into_response();
        let retry_after = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        (response.status().as_u16(), code, retry_after)
    }

    #[test]
    fn a_store_or_database_away_is_a_503_to_retry_and_a_lost_object_is_not() {
        let away = MetadataError::Database(sqlx::Error::PoolTimedOut);
        let expected = (503, "DATABASE_UNAVAILABLE", Some("5".to_owned()));
        assert_eq!(answered(away.into()), expected);
        let broken = MetadataError::Database(sqlx::Error::RowNotFound);
        assert_eq!(answered(broken.into()), (500, "INTERNAL", None));
        let store_away = StorageError::Store(object_store::Error::Generic {
            store: "S3",
            source: "connection refused".into(),
        });
        let expected = (503, "STORAGE_UNAVAILABLE", Some("5".to_owned()));
        assert_eq!(answered(store_away.into()), expected);
        let lost = StorageError::Store(object_store::Error::NotFound {
            path: "recordings/r/1.mp4".into(),
            source: "gone".into(),
        });
        assert_eq!(answered(lost.into()), (500, "INTERNAL", None));
        let refused = StorageError::Store(object_store::Error::PermissionDenied {
            path: "recordings/r/1.mp4".into(),
            source: "wrong key".into(),
        });
        assert_eq!(answered(refused.into()), (500, "INTERNAL", None));
    }
}
