//! The HTTP routes: the API under `/v1` with its OpenAPI document, the recorder entry point,
//! `/health` (readiness; outside the prefix, SPEC §5), `/health/live` and `/metrics`. Unknown paths and methods answer JSON errors.

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
        .route("/health/live", get(live))
        .route("/metrics", get(metrics))
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::cluster::route::route,
        ))
        // Outermost: a client refused for its failed authentications reaches nothing.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.limits.max_body_bytes,
        ))
        .with_state(state)
}

/// Readiness: 200 when the metadata store and the object store answer, 503 naming the one
/// that does not.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let database = state.metadata.ping().await.map_err(|e| e.to_string());
    // A store that does not answer makes its client retry for minutes: the probe waits 3 s.
    let objects = match tokio::time::timeout(
        std::time::Duration::from_secs(3),
        state.storage.objects_reachable(),
    )
    .await
    {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("no answer within 3 s".to_owned()),
    };
    let check = |result: &Result<(), String>, what: &str| match result {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: {what} does not answer");
            "unavailable".to_owned()
        }
    };
    let checks = serde_json::json!({
        "database": check(&database, "the metadata store"),
        "objectStore": check(&objects, "the object store"),
    });
    if database.is_ok() && objects.is_ok() {
        (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ok", "checks": checks })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "checks": checks })),
        )
    }
}

/// Liveness: the process serves HTTP (a restart would not help a store outage, so this does
/// not look at the stores).
async fn live() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Prometheus metrics (text exposition format, no authentication: expose the port to the
/// scraper only, see docs/operations.md).
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut levels = crate::metrics::Levels {
        spool_bytes: state.storage.spool_bytes().await,
        finishing: state.live.finishing(),
        ..Default::default()
    };
    match state.metadata.recordings_by_status().await {
        Ok(counts) => levels.recordings = counts,
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count recordings"),
    }
    match state.metadata.webhook_queue_depth().await {
        Ok(depth) => levels.webhook_queue = depth,
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the webhook queue"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(&levels),
    )
}
