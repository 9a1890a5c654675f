//! `GET /v1/conversations/{id}/events`: server-sent events. A new listener first gets what is
//! active (calls, layers, publications, the recording's state), then every change.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::stream;
use tokio::sync::broadcast;

use super::error::{ApiError, ApiPath};
use super::visible_conversation;
use crate::AppState;
use crate::auth::Caller;
use crate::live::ConversationEvent;

/// The event stream of a conversation: participants, publications appearing and leaving,
/// recording state. A participant whose role may not see recordings is not told when one
/// becomes available.
#[utoipa::path(get, operation_id = "streamConversationEvents", path = "/conversations/{id}/events", tag = "conversations",
    params(("id" = String, Path, description = "The conversation")),
    responses((status = 200, description = "Server-sent events, one JSON object per event",
        content_type = "text/event-stream", body = String)))]
pub async fn stream(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (conversation, _) = visible_conversation(&app, &caller, &id).await?;
    let hide_available = !super::sees_recordings(&app, &caller, &id).await?;
    let shown = move |e: &ConversationEvent| {
        !(hide_available && matches!(e, ConversationEvent::RecordingAvailable { .. }))
    };
    let (snapshot, receiver) = app
        .live
        .with(&id, &conversation.account_id, |c| c.subscribe());
    let first = stream::iter(snapshot.into_iter().filter(shown).map(|e| Ok(sse(&e))));
    let rest = stream::unfold(receiver, move |mut receiver| async move {
        let event = loop {
            match receiver.recv().await {
                Ok(event) if shown(&event) => break Ok(event),
                Ok(_) => continue,
                Err(e) => break Err(e),
            }
        };
        let event = match event {
            Ok(event) => sse(&event),
            // A slow listener missed some: tell it to reload rather than hide the gap.
            Err(broadcast::error::RecvError::Lagged(missed)) => Event::default()
                .event("lagged")
                .data(format!("{{\"type\":\"lagged\",\"missed\":{missed}}}")),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    let until_shutdown = app.shutdown.clone().cancelled_owned();
    let events = futures_util::StreamExt::take_until(
        futures_util::StreamExt::chain(first, rest),
        until_shutdown,
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn sse(event: &ConversationEvent) -> Event {
    let data = serde_json::to_string(event).expect("bug: events serialize");
    let name = serde_json::to_value(event)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_default();
    Event::default().event(name).data(data)
}
