//! The HTTP routes: the API under `/v1`, the recorder entry point, and `/health` (outside the
//! prefix, SPEC §5).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;

use crate::AppState;

/// All routes of the server.
pub fn build(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route(
            "/recording/entry/{token}",
            get(crate::recording::entry::entry),
        )
        .route("/web/publish.html", get(crate::web::publish_page))
        .nest("/v1", crate::api::routes())
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
