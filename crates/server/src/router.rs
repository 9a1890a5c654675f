//! The HTTP routes: the API under `/v1` with its OpenAPI document, the recorder entry point,
//! and `/health` (outside the prefix, SPEC §5). Unknown paths and methods answer JSON errors.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::get;

use crate::AppState;

/// All routes of the server.
pub fn build(state: AppState) -> Router {
    let (api, document) = crate::api::routes();
    let document = Arc::new(
        document
            .to_json()
            .expect("bug: the OpenAPI document serializes"),
    );
    Router::new()
        .route("/health", get(health))
        .route(
            "/recording/entry/{token}",
            get(crate::recording::entry::entry),
        )
        .route("/", get(crate::web::index))
        .route("/web/{file}", get(crate::web::file))
        .merge(api)
        .route(
            "/v1/openapi.json",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    document.as_str().to_owned(),
                )
            }),
        )
        .fallback(crate::api::error::no_route)
        .method_not_allowed_fallback(crate::api::error::wrong_method)
        .with_state(state)
}

/// Liveness and readiness: 200 when the metadata store answers, 503 when it does not.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    match state.metadata.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "status": "ok" }))),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the metadata store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    serde_json::json!({ "status": "unavailable", "reason": "the metadata store does not answer" }),
                ),
            )
        }
    }
}
