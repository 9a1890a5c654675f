//! The server's SFU: one [`Room`] on one UDP port serves every peer of every conversation (a
//! peer is found by its ICE session, so conversations need no port of their own); access is
//! checked when a session is made. This task turns the room's events into the conversations'
//! live state: publications whose media flows are announced to clients and to the recorder,
//! ended ones are closed, and a call or layer whose last publication left ends.

use convrec_rtc::room::{Role, RoomEvent};
use tokio::sync::mpsc;

use crate::AppState;
use crate::live::{ConversationEvent, PeerOf, publication_started};

/// Runs until the room's driver stops.
pub async fn run_events(app: AppState, mut events: mpsc::UnboundedReceiver<RoomEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            RoomEvent::PublicationStarted { publisher, .. } => {
                let Some((conversation_id, PeerOf::Publication(publication_id))) =
                    app.live.find_peer(publisher)
                else {
                    continue;
                };
                app.live.with_existing(&conversation_id, |c| {
                    let Some(p) = c.publications.iter_mut().find(|p| p.id == publication_id) else {
                        return;
                    };
                    p.connected = true;
                    let p = p.clone();
                    c.publish(publication_started(&p));
                    let info = c.publication_info(&p);
                    c.tell_recorder(
                        convrec_core::recorder_protocol::FromServer::PublicationAdded {
                            publication: info,
                        },
                    );
                });
            }
            RoomEvent::PeerClosed { peer, role } => {
                let Some((conversation_id, of)) = app.live.find_peer(peer) else {
                    continue;
                };
                match (of, role) {
                    (PeerOf::Publication(publication_id), Role::Publisher) => {
                        publication_closed(&app, &conversation_id, &publication_id).await
                    }
                    (PeerOf::Subscription(subscription), _) => {
                        app.live.with_existing(&conversation_id, |c| {
                            c.subscriptions.retain(|(id, _, _)| *id != subscription)
                        });
                    }
                    _ => {}
                }
            }
            RoomEvent::SubscriberConnected { .. } => {}
        }
    }
}

/// A publication's session ended: it is closed, and its call or layer ends with its last one.
async fn publication_closed(app: &AppState, conversation_id: &str, publication_id: &str) {
    let now = crate::now_ms();
    let emptied = app.live.with_existing(conversation_id, |c| {
        let index = c.publications.iter().position(|p| p.id == publication_id)?;
        let p = c.publications.remove(index);
        c.publish(ConversationEvent::PublicationEnded {
            publication_id: p.id.clone(),
        });
        c.tell_recorder(
            convrec_core::recorder_protocol::FromServer::PublicationEnded {
                publication_id: p.id.clone(),
            },
        );
        let others = c
            .publications
            .iter()
            .any(|o| o.interaction_id == p.interaction_id);
        (!others).then_some(p.interaction_id)
    });
    crate::retry::write_eventually(
        app,
        "end a publication",
        publication_id,
        move |metadata, id| async move { metadata.end_publication(&id, now).await },
    )
    .await;
    if let Some(Some(interaction_id)) = emptied {
        // Its last participant left (SPEC §1).
        crate::api::interactions::end_interaction(app, conversation_id, &interaction_id).await;
    }
}
