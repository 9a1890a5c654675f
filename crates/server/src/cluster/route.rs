//! Which node serves a request: requests for a conversation go to the node hosting it, a
//! recorder's entry point to the node running its recording; everything else is served by
//! the node it reached. A forwarded request is never forwarded again (no loops while nodes
//! disagree for a moment).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use convrec_store::metadata::Route;

use crate::AppState;
use crate::api::error::ApiError;

/// The header a forwarding node adds, naming itself with a proof signed by the deployment's key
/// ([`crate::grants::Grants::sign_forwarded_by`]).
pub const FORWARDED_BY: &str = "x-convrec-forwarded-by";

/// What a request is for, as far as routing goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource<'a> {
    /// `/v1/conversations/{id}` and everything under it.
    Conversation(&'a str),
    /// `/recording/entry/{token}`.
    EntryPoint(&'a str),
}

/// The resource a request path names, if it is routed.
pub fn resource(path: &str) -> Option<Resource<'_>> {
    if let Some(rest) = path.strip_prefix("/v1/conversations/") {
        return first_segment(rest).map(Resource::Conversation);
    }
    if let Some(rest) = path.strip_prefix("/recording/entry/") {
        return first_segment(rest).map(Resource::EntryPoint);
    }
    None
}

/// Middleware: serves a request here, or forwards it to the node that must serve it.
pub async fn route(State(app): State<AppState>, request: Request, next: Next) -> Response {
    // Only another node's request is served wherever it lands; a client's made-up header is
    // routed like any request (else it could run a second call on a node that does not host
    // the conversation, next to the recorded one).
    let forwarded_by_a_node = request
        .headers()
        .get(FORWARDED_BY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| app.grants.check_forwarded_by(v))
        .is_some();
    if forwarded_by_a_node {
        return next.run(request).await;
    }
    let now = crate::now_ms();
    let path = request.uri().path().to_owned();
    let Some(resource) = resource(&path) else {
        return next.run(request).await;
    };
    let route = match resource {
        Resource::Conversation(id) => app.metadata.conversation_route(id, &app.node_id, now).await,
        Resource::EntryPoint(token) => {
            app.metadata
                .entry_point_route(token, &app.node_id, now)
                .await
        }
    };
    let (unavailable, headers) = match route {
        Ok(Route::Here) => return next.run(request).await,
        Ok(Route::Node { node_id, url }) => {
            // Kept for the answer if that node does not; forwarding consumes the request.
            let headers = request.headers().clone();
            match super::forward::forward(&app, &node_id, &url, request).await {
                Ok(answer) => return answer,
                Err(unreachable) => (unreachable.into_response(), headers),
            }
        }
        Ok(Route::Lost { node_id }) => (node_lost(&node_id), request.into_parts().0.headers),
        Err(e) => return ApiError::from(e).into_response(),
    };
    // Only a caller who may see the conversation learns that its node is away; anyone else
    // gets what the API answers for a conversation that is not there or not theirs, so these
    // answers tell no one which conversations exist. (An entry point's token is its secret.)
    if let Resource::Conversation(id) = resource
        && let Err(hidden) = visible_to(&app, &headers, id).await
    {
        return hidden.into_response();
    }
    unavailable
}

/// The answer for a conversation whose node stopped renewing its lease.
fn node_lost(node_id: &str) -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "NODE_LOST",
        format!(
            "node {node_id}, which holds this conversation's calls and recording, stopped renewing its lease; another node is taking it over: try again in a few seconds"
        ),
    )
    .retry_after(5)
    .into_response()
}

/// Whether the credentials in `headers` see conversation `id`: 401 or 404 as the API answers.
async fn visible_to(app: &AppState, headers: &HeaderMap, id: &str) -> Result<(), ApiError> {
    let caller = crate::auth::caller(app, headers).await?;
    crate::api::visible_conversation(app, &caller, id).await?;
    Ok(())
}

fn first_segment(rest: &str) -> Option<&str> {
    let id = rest.split('/').next()?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_paths_and_entry_points_are_routed_and_nothing_else() {
        assert_eq!(
            resource("/v1/conversations/conv_1"),
            Some(Resource::Conversation("conv_1"))
        );
        assert_eq!(
            resource("/v1/conversations/conv_1/calls/call_2/whip"),
            Some(Resource::Conversation("conv_1"))
        );
        assert_eq!(
            resource("/recording/entry/abc"),
            Some(Resource::EntryPoint("abc"))
        );
        for local in [
            "/v1/conversations",
            "/v1/conversations/",
            "/v1/conversationhistory/conv_1",
            "/v1/recordings/rec_1/download",
            "/recording/entry/",
            "/health",
        ] {
            assert_eq!(resource(local), None, "{local}");
        }
    }
}
