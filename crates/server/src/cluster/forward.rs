//! Forwarding a request to the node that must serve it, and its answer back: the body both
//! ways, streamed answers (event streams) as they come, and WebSocket upgrades (a recorder's
//! entry point) as a byte pipe between the two connections.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::route::FORWARDED_BY;
use crate::AppState;
use crate::api::error::ApiError;
use crate::limits::{Client, FORWARDED_FOR, FORWARDED_PROOF};

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1); an upgrade
/// keeps `connection` and `upgrade`, which ask for it.
fn hop_by_hop(name: &HeaderName, upgrade: bool) -> bool {
    let always = [
        header::HOST,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::PROXY_AUTHORIZATION,
    ];
    always.contains(name)
        || name.as_str() == "keep-alive"
        || (!upgrade && (name == header::CONNECTION || name == header::UPGRADE))
}

/// Sends `request` to node `node_id` at `url` and answers with what it answers; the error
/// (`NODE_UNREACHABLE`) when that node does not answer.
pub async fn forward(
    app: &AppState,
    node_id: &str,
    url: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let upgrade = parts.headers.contains_key(header::UPGRADE);
    let target = format!(
        "{}{}",
        url.trim_end_matches('/'),
        parts
            .uri
            .path_and_query()
            .map_or(parts.uri.path(), |p| p.as_str())
    );
    let limit = app.limits.max_body_bytes;
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => return Ok(crate::limits::body_too_large(limit).into_response()),
    };
    let mut outgoing = app.http.request(parts.method.clone(), &target);
    for (name, value) in &parts.headers {
        // Whom the request is for is this node's to say, not the client's.
        let ours = [FORWARDED_BY, FORWARDED_FOR, FORWARDED_PROOF].contains(&name.as_str());
        if !hop_by_hop(name, upgrade) && !ours {
            outgoing = outgoing.header(name, value);
        }
    }
    if let Ok(me) = HeaderValue::from_str(&app.grants.sign_forwarded_by(&app.node_id)) {
        outgoing = outgoing.header(FORWARDED_BY, me);
    }
    if let Some(Client(client)) = parts.extensions.get::<Client>().copied() {
        outgoing = outgoing
            .header(FORWARDED_FOR, client.to_string())
            .header(FORWARDED_PROOF, app.grants.sign_forwarded_for(client));
    }
    let answer = match outgoing.body(body).send().await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(node = node_id, url, error = %e, "cannot forward a request to the node that serves it");
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "NODE_UNREACHABLE",
                // What failed, with the node's address, stays in the log.
                format!(
                    "node {node_id}, which holds this conversation's calls and recording, did not answer; try again in a few seconds"
                ),
            ));
        }
    };
    let mut response = Response::builder().status(answer.status());
    let switching = answer.status() == StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in answer.headers() {
        if !hop_by_hop(name, switching) {
            response = response.header(name, value);
        }
    }
    if switching {
        let Some(client) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Ok(ApiError::bad_request("this connection cannot be upgraded").into_response());
        };
        tokio::spawn(pipe(client, answer));
        return Ok(response
            .body(Body::empty())
            .unwrap_or_else(|e| ApiError::internal(e).into_response()));
    }
    Ok(response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|e| ApiError::internal(e).into_response()))
}

/// Joins an upgraded client connection to the upgraded connection to the serving node until
/// either side closes.
async fn pipe(client: hyper::upgrade::OnUpgrade, node: reqwest::Response) {
    let (client, node) = tokio::join!(client, node.upgrade());
    match (client, node) {
        (Ok(client), Ok(mut node)) => {
            let mut client = hyper_util::rt::TokioIo::new(client);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut node).await {
                tracing::debug!(error = %e, "a forwarded connection ended");
            }
        }
        (client, node) => {
            tracing::warn!(client = ?client.err(), node = ?node.err(), "cannot join a forwarded upgrade");
        }
    }
}
