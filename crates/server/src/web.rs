//! The browser pages the server ships (`web/` in the repository, built into the binary): for
//! now a minimal participant that publishes camera and microphone into a call.

use axum::http::header;
use axum::response::IntoResponse;

/// `GET /web/publish.html`.
pub async fn publish_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../../../web/publish.html"),
    )
}
