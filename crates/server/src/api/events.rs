//! `GET /v1/conversations/{id}/events`: server-sent events. A new listener first gets what is
//! active (calls, layers, publications, the recording's state), then every change.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
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
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (conversation, _) = visible_conversation(&app, &caller, &id).await?;
    let sees_recordings = Arc::new(AtomicBool::new(
        super::sees_recordings(&app, &caller, &id).await?,
    ));
    let (snapshot, receiver) = app
        .live
        .with(&id, &conversation.account_id, |c| c.subscribe());
    let sees = sees_recordings.clone();
    let first = stream::iter(
        snapshot
            .into_iter()
            .filter_map(move |e| as_seen(e, sees.load(Ordering::Relaxed)))
            .map(|e| Ok(sse(&e))),
    );
    let sees = sees_recordings.clone();
    let rest = stream::unfold(receiver, move |mut receiver| {
        let sees = sees.clone();
        async move {
            let event = loop {
                match receiver.recv().await {
                    Ok(event) => match as_seen(event, sees.load(Ordering::Relaxed)) {
                        Some(event) => break Ok(event),
                        None => continue,
                    },
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
        }
    });
    let until_shutdown = app.shutdown.clone().cancelled_owned();
    let recheck = recheck(app, headers, id, sees_recordings);
    let ends = async move {
        tokio::select! {
            () = until_shutdown => {}
            () = recheck => {}
        }
    };
    let events =
        futures_util::StreamExt::take_until(futures_util::StreamExt::chain(first, rest), ends);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// How often an open stream's credentials and rights are checked again.
const RECHECK_EVERY: Duration = Duration::from_secs(10);

/// Checks the stream's credentials again every [`RECHECK_EVERY`], and whether they may still
/// see recordings (the property can change); returns once they are refused (a key revoked, a
/// participant removed): the stream then ends. A database that cannot answer ends nothing.
async fn recheck(app: AppState, headers: HeaderMap, id: String, sees: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(RECHECK_EVERY).await;
        match crate::auth::caller(&app, &headers).await {
            Ok(caller) => {
                if let Ok(now) = super::sees_recordings(&app, &caller, &id).await {
                    sees.store(now, Ordering::Relaxed);
                }
            }
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                tracing::info!(conversation = %id, "an event stream's credentials are no longer valid; ending it");
                return;
            }
            Err(_) => {}
        }
    }
}

/// An event as a caller sees it: one who may not see recordings is not told one is available,
/// nor which recording runs.
fn as_seen(event: ConversationEvent, sees_recordings: bool) -> Option<ConversationEvent> {
    match event {
        ConversationEvent::RecordingAvailable { .. } if !sees_recordings => None,
        ConversationEvent::RecordingState {
            recording_state, ..
        } if !sees_recordings => Some(ConversationEvent::RecordingState {
            recording_id: None,
            recording_state,
        }),
        event => Some(event),
    }
}

fn sse(event: &ConversationEvent) -> Event {
    let data = serde_json::to_string(event).expect("bug: events serialize");
    let name = serde_json::to_value(event)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_default();
    Event::default().event(name).data(data)
}
