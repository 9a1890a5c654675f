//! WHIP and WHEP (RFC 9725 and its receiving counterpart): a participant publishes its media
//! into a call or layer with an SDP offer and receives another's publication the same way. The
//! `Location` of a session is what `DELETE` ends.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use convrec_media::timeline::MediaKind;
use convrec_rtc::room::RoomError;
use convrec_store::metadata::Participant;

use super::error::{ApiError, ApiPath, ErrorBody};
use super::visible_conversation;
use crate::AppState;
use crate::auth::Caller;
use crate::live::{Publication, Source};

const SDP: &str = "application/sdp";

/// Publishes a participant's camera and microphone into a call (WHIP, RFC 9725).
#[utoipa::path(post, operation_id = "publishToCall", path = "/conversations/{id}/calls/{callId}/whip", tag = "media",
    params(("id" = String, Path, description = "The conversation"),
        ("callId" = String, Path, description = "The active call")),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer"),
    responses(
        (status = 201, description = "SDP answer; `Location` is the session to `DELETE`",
            content_type = "application/sdp", body = String,
            headers(("Location" = String, description = "The publication"))),
        (status = 403, description = "Not a participant token", body = ErrorBody)))]
pub async fn publish_call(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((id, interaction)): ApiPath<(String, String)>,
    headers: HeaderMap,
    offer: Bytes,
) -> Result<Response, ApiError> {
    publish(app, caller, id, interaction, Source::Call, headers, offer).await
}

/// Publishes a participant's screen into a collaboration layer (WHIP, RFC 9725).
#[utoipa::path(post, operation_id = "publishToLayer", path = "/conversations/{id}/layers/{layerId}/whip", tag = "media",
    params(("id" = String, Path, description = "The conversation"),
        ("layerId" = String, Path, description = "The active layer")),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer"),
    responses(
        (status = 201, description = "SDP answer; `Location` is the session to `DELETE`",
            content_type = "application/sdp", body = String,
            headers(("Location" = String, description = "The publication"))),
        (status = 403, description = "Not a participant token", body = ErrorBody)))]
pub async fn publish_layer(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((id, interaction)): ApiPath<(String, String)>,
    headers: HeaderMap,
    offer: Bytes,
) -> Result<Response, ApiError> {
    let source = Source::CollaborationLayer;
    publish(app, caller, id, interaction, source, headers, offer).await
}

async fn publish(
    app: AppState,
    caller: Caller,
    id: String,
    interaction: String,
    source: Source,
    headers: HeaderMap,
    offer: Bytes,
) -> Result<Response, ApiError> {
    let (participant, offer) = media_participant(&app, &caller, &id, &headers, offer).await?;
    super::interactions::require_active(&app, &id, &interaction, source)?;
    let (peer, answer, kinds) = app
        .room
        .call(move |room, now| {
            room.publish(now, &offer)
                .map(|(peer, answer)| (peer, answer, room.media_kinds(peer)))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(offer_refused)?;
    let now = crate::now_ms();
    let audio = kinds.contains(&MediaKind::Audio);
    let video = kinds.contains(&MediaKind::Video);
    let publication_id = match app
        .metadata
        .create_publication(&interaction, &participant.id, audio, video, now)
        .await
    {
        Ok(id) => id,
        Err(e) => {
            let _ = app.room.call(move |room, now| room.remove(now, peer)).await;
            return Err(e.into());
        }
    };
    let registered = app.live.with_existing(&id, |c| {
        // The call may have ended while the offer was negotiated.
        if !c.interactions.iter().any(|i| i.id == interaction) {
            return None;
        }
        c.publications.push(Publication {
            id: publication_id.clone(),
            interaction_id: interaction.clone(),
            participant_id: participant.id.clone(),
            participant_name: participant.name.clone(),
            peer,
            audio,
            video,
            started_at_ms: now,
            connected: false,
        });
        Some(c.held.contains(&interaction))
    });
    if registered.is_none_or(|held| held.is_none()) {
        let _ = app.room.call(move |room, now| room.remove(now, peer)).await;
        return Err(ApiError::not_found("active call or layer", &interaction));
    }
    // If the interaction waits for its recorder, this publication waits with it. Decided inside
    // the room's own turn, so a release carried out meanwhile cannot be missed.
    let (state, conversation, held_interaction) = (app.clone(), id.clone(), interaction.clone());
    let _ = app
        .room
        .call(move |room, now| {
            let held = state
                .live
                .with_existing(&conversation, |c| c.held.contains(&held_interaction))
                .unwrap_or(false);
            if held {
                let _ = room.set_held(now, peer, true);
            }
        })
        .await;
    tracing::info!(conversation = %id, publication = %publication_id, participant = %participant.id, "publishing");
    let location = format!("/v1/conversations/{id}/publications/{publication_id}");
    Ok(created(location, answer))
}

/// Ends a WHIP session (its publisher, or an admin).
#[utoipa::path(delete, operation_id = "endPublication", path = "/conversations/{id}/publications/{publicationId}", tag = "media",
    params(("id" = String, Path, description = "The conversation"),
        ("publicationId" = String, Path, description = "The publication")),
    responses((status = 200, description = "Ended"),
        (status = 403, description = "Another participant's publication", body = ErrorBody)))]
pub async fn unpublish(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((id, publication)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (_, participant) = visible_conversation(&app, &caller, &id).await?;
    let found = app
        .live
        .with_existing(&id, |c| {
            c.publications
                .iter()
                .find(|p| p.id == publication)
                .map(|p| (p.peer, p.participant_id.clone()))
        })
        .flatten();
    let Some((peer, owner)) = found else {
        return Err(ApiError::not_found("publication", &publication));
    };
    if participant.is_some_and(|p| p.id != owner) {
        return Err(ApiError::forbidden(
            "only its publisher may end a publication",
        ));
    }
    end_session(&app, peer).await?;
    Ok(StatusCode::OK)
}

/// Receives one publication (WHEP-style: SDP offer in, answer out).
#[utoipa::path(post, operation_id = "subscribeToPublication", path = "/conversations/{id}/publications/{publicationId}/whep", tag = "media",
    params(("id" = String, Path, description = "The conversation"),
        ("publicationId" = String, Path, description = "The publication")),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer"),
    responses(
        (status = 201, description = "SDP answer; `Location` is the session to `DELETE`",
            content_type = "application/sdp", body = String,
            headers(("Location" = String, description = "The subscription"))),
        (status = 403, description = "Not a participant token", body = ErrorBody)))]
pub async fn subscribe(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((id, publication)): ApiPath<(String, String)>,
    headers: HeaderMap,
    offer: Bytes,
) -> Result<Response, ApiError> {
    let (participant, offer) = media_participant(&app, &caller, &id, &headers, offer).await?;
    let publisher = app
        .live
        .with_existing(&id, |c| {
            c.publications
                .iter()
                .find(|p| p.id == publication)
                .map(|p| p.peer)
        })
        .flatten()
        .ok_or_else(|| ApiError::not_found("publication", &publication))?;
    let (peer, answer) = app
        .room
        .call(move |room, now| room.subscribe(now, publisher, &offer))
        .await
        .map_err(ApiError::internal)?
        .map_err(offer_refused)?;
    let subscription = format!("sub_{}", peer.0);
    let registered = app.live.with_existing(&id, |c| {
        c.subscriptions
            .push((subscription.clone(), peer, participant.id.clone()))
    });
    if registered.is_none() {
        let _ = end_session(&app, peer).await;
        return Err(ApiError::not_found("publication", &publication));
    }
    let location = format!("/v1/conversations/{id}/subscriptions/{subscription}");
    Ok(created(location, answer))
}

/// Ends a WHEP session (its subscriber, or an admin).
#[utoipa::path(delete, operation_id = "endSubscription", path = "/conversations/{id}/subscriptions/{subscriptionId}", tag = "media",
    params(("id" = String, Path, description = "The conversation"),
        ("subscriptionId" = String, Path, description = "The subscription")),
    responses((status = 200, description = "Ended"),
        (status = 403, description = "Another participant's subscription", body = ErrorBody)))]
pub async fn unsubscribe(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((id, subscription)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (_, participant) = visible_conversation(&app, &caller, &id).await?;
    let found = app
        .live
        .with_existing(&id, |c| {
            c.subscriptions
                .iter()
                .find(|(s, _, _)| *s == subscription)
                .map(|(_, peer, owner)| (*peer, owner.clone()))
        })
        .flatten();
    let Some((peer, owner)) = found else {
        return Err(ApiError::not_found("subscription", &subscription));
    };
    if participant.is_some_and(|p| p.id != owner) {
        return Err(ApiError::forbidden(
            "only its subscriber may end a subscription",
        ));
    }
    end_session(&app, peer).await?;
    Ok(StatusCode::OK)
}

/// The participant making a media session in its conversation, and its SDP offer.
async fn media_participant(
    app: &AppState,
    caller: &Caller,
    conversation_id: &str,
    headers: &HeaderMap,
    offer: Bytes,
) -> Result<(Participant, String), ApiError> {
    let (_, participant) = visible_conversation(app, caller, conversation_id).await?;
    let participant = participant.ok_or_else(|| {
        ApiError::forbidden("media sessions are made with a participant token, not an API key")
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with(SDP) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!(
                "the body must be an SDP offer with 'Content-Type: {SDP}', not '{content_type}'"
            ),
        ));
    }
    let offer = String::from_utf8(offer.to_vec())
        .map_err(|_| ApiError::bad_request("the SDP offer is not UTF-8 text"))?;
    Ok((participant, offer))
}

async fn end_session(app: &AppState, peer: convrec_rtc::room::PeerId) -> Result<(), ApiError> {
    app.room
        .call(move |room, now| room.remove(now, peer))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", e.to_string()))
}

fn offer_refused(e: RoomError) -> ApiError {
    let code = match e {
        RoomError::Offer(_) => "UNSUPPORTED_CODECS",
        RoomError::UnknownPublisher(_) | RoomError::UnknownPeer(_) => "NOT_FOUND",
        _ => "SDP_REFUSED",
    };
    let status = if code == "NOT_FOUND" {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::BAD_REQUEST
    };
    ApiError::new(status, code, e.to_string())
}

fn created(location: String, answer: String) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (header::CONTENT_TYPE, SDP.to_owned()),
        ],
        answer,
    )
        .into_response()
}

/// How a caller's WebRTC sessions reach the SFU (the `RTCConfiguration` a browser takes).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IceConfiguration {
    /// TURN relays, with credentials for this caller valid for a day.
    pub ice_servers: Vec<IceServer>,
    /// `relay`: use nothing but the relays (the deployment forces it); `all`: any path.
    pub ice_transport_policy: &'static str,
}

/// A TURN relay (`RTCIceServer`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct IceServer {
    /// `turn:HOST:PORT?transport=udp`.
    pub urls: Vec<String>,
    /// The user name (time-limited).
    pub username: String,
    /// The password.
    pub credential: String,
}

/// The ICE servers (TURN relays) a participant's sessions in this conversation use, with
/// credentials for the caller; empty when media goes directly.
#[utoipa::path(get, operation_id = "getIceServers", path = "/conversations/{id}/iceServers", tag = "media",
    params(("id" = String, Path, description = "The conversation")),
    responses(
        (status = 200, description = "The relays, and whether only they may be used", body = IceConfiguration),
        (status = 404, description = "No such conversation (or not the caller's)", body = ErrorBody)))]
pub async fn ice_servers(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<IceConfiguration>, ApiError> {
    let (_, participant) = visible_conversation(&app, &caller, &id).await?;
    let who = participant.map_or_else(|| "admin".to_owned(), |p| p.id);
    let configuration = match &app.turn {
        None => IceConfiguration {
            ice_servers: Vec::new(),
            ice_transport_policy: "all",
        },
        Some(turn) => {
            let relay = turn.relay_for(&who, crate::now_ms());
            IceConfiguration {
                ice_servers: vec![IceServer {
                    urls: relay.urls,
                    username: relay.username,
                    credential: relay.credential,
                }],
                ice_transport_policy: if turn.force_relay { "relay" } else { "all" },
            }
        }
    };
    Ok(axum::Json(configuration))
}
