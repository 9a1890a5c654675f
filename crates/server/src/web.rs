//! The web UI (SPEC's browser side, `web/` in the repository, built into the binary): a start
//! page at `/`, the conversation page (chat, call, screen share, recording banner and controls),
//! the history page (conversations, their recordings and timeline, a player), and the minimal
//! participant page. Plain HTML, CSS and ES modules: no build step, nothing from other hosts.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The files, by name: what `/web/{file}` serves.
const FILES: &[(&str, &str, &str)] = &[
    ("index.html", HTML, include_str!("../../../web/index.html")),
    (
        "conversation.html",
        HTML,
        include_str!("../../../web/conversation.html"),
    ),
    (
        "history.html",
        HTML,
        include_str!("../../../web/history.html"),
    ),
    (
        "publish.html",
        HTML,
        include_str!("../../../web/publish.html"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../../web/app.css"),
    ),
    (
        "convrec.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/convrec.js"),
    ),
    (
        "sealed.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/sealed.js"),
    ),
];

const HTML: &str = "text/html; charset=utf-8";

/// `GET /`: the start page.
pub async fn index() -> Response {
    serve("index.html")
}

/// `GET /web/{file}`.
pub async fn file(Path(name): Path<String>) -> Response {
    serve(&name)
}

fn serve(name: &str) -> Response {
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                // Pages hold credentials in their fragment and storage: no framing, no sniffing.
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            *body,
        )
            .into_response(),
        None => crate::api::error::ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "NO_ROUTE",
            format!("no page '{name}'"),
        )
        .into_response(),
    }
}
