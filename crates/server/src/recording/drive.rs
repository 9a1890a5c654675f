//! Drives each conversation's [`Orchestrator`]: feeds it what happens and carries out what it
//! decides, in order, one conversation at a time (a per-conversation lock), and wakes it when its
//! timer is due. Feedback from carrying out an action (a launch that failed, an interaction
//! ended) is fed back in the same turn.

use std::collections::VecDeque;
use std::time::Instant;

use convrec_core::orchestrator::{Action, Failure, Orchestrator, Trigger, Webhook};
use convrec_core::recorder_protocol::FromServer;
use serde_json::json;

use super::launcher::OnExit;
use super::{settings, spawn_finalize, state_event};
use crate::AppState;
use crate::live::{ConversationEvent, RunningRecording};

/// Something to tell the orchestrator.
pub type Feed = Box<dyn FnOnce(&mut Orchestrator, Instant) + Send>;

/// Feeds `feed` to the conversation's orchestrator and carries out what follows.
pub async fn drive(app: &AppState, conversation_id: &str, feed: Feed) {
    // A conversation this node is serving needs no database to be driven: a call that ends
    // while the database is away still stops its recording.
    let live = app
        .live
        .with_existing(conversation_id, |c| c.drive_lock.clone());
    let lock = match live {
        Some(lock) => lock,
        None => match app.metadata.conversation(conversation_id).await {
            Ok(Some(conversation)) => {
                app.live
                    .with(conversation_id, &conversation.account_id, |c| {
                        c.drive_lock.clone()
                    })
            }
            Ok(None) => return,
            Err(e) => {
                tracing::error!(conversation = conversation_id, error = %e, "cannot read the conversation");
                return;
            }
        },
    };
    let _turn = lock.lock().await;
    let mut feeds: VecDeque<Feed> = VecDeque::from([feed]);
    while let Some(feed) = feeds.pop_front() {
        // Between recordings the orchestrator takes the configuration as it is now.
        let between = app
            .live
            .with_existing(conversation_id, |c| {
                c.orchestrator
                    .as_ref()
                    .is_none_or(|o| o.recording().is_none())
            })
            .unwrap_or(true);
        let fresh = if between {
            match settings(app, conversation_id).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(conversation = conversation_id, error = %e, "cannot read the configuration");
                    None
                }
            }
        } else {
            None
        };
        let may_start = app.live.may_start();
        let actions = app
            .live
            .with_existing(conversation_id, |c| {
                if let Some(mut settings) = fresh {
                    settings.enabled &= may_start;
                    match c.orchestrator.as_mut() {
                        Some(o) => {
                            o.set_settings(settings);
                        }
                        None => c.orchestrator = Some(Orchestrator::new(settings)),
                    }
                }
                let o = c.orchestrator.as_mut()?;
                feed(o, Instant::now());
                let mut actions = Vec::new();
                while let Some(a) = o.poll_action() {
                    actions.push(a);
                }
                Some(actions)
            })
            .flatten()
            .unwrap_or_default();
        for action in actions {
            carry_out(app, conversation_id, action, &mut feeds).await;
        }
    }
    set_timer(app, conversation_id);
}

/// Wakes the orchestrator when its timer is due (a newer timer replaces this one).
fn set_timer(app: &AppState, conversation_id: &str) {
    let due = app.live.with_existing(conversation_id, |c| {
        c.timer_generation += 1;
        let at = c.orchestrator.as_ref()?.poll_timeout()?;
        Some((at, c.timer_generation))
    });
    let Some(Some((at, generation))) = due else {
        return;
    };
    let app = app.clone();
    let conversation_id = conversation_id.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep_until(at.into()).await;
        let current = app
            .live
            .with_existing(&conversation_id, |c| c.timer_generation == generation)
            .unwrap_or(false);
        if current {
            drive(
                &app,
                &conversation_id,
                Box::new(|o, now| o.handle_timeout(now)),
            )
            .await;
        }
    });
}

async fn carry_out(
    app: &AppState,
    conversation_id: &str,
    action: Action,
    feeds: &mut VecDeque<Feed>,
) {
    match action {
        Action::NewRecording { recording, trigger } => {
            let settings = app
                .live
                .with_existing(conversation_id, |c| {
                    c.orchestrator.as_ref().map(|o| o.settings().clone())
                })
                .flatten();
            let Some(settings) = settings else { return };
            let trigger_name = match trigger {
                Trigger::Automatic => "AUTOMATIC",
                Trigger::Manual => "MANUAL",
            };
            let created = app
                .metadata
                .create_recording(
                    conversation_id,
                    &settings.recording_type,
                    &settings.layout,
                    trigger_name,
                    &app.node_id,
                    crate::now_ms(),
                )
                .await;
            match created {
                Ok(id) => {
                    tracing::info!(conversation = conversation_id, recording = %id, trigger = trigger_name, "recording starts");
                    let (late_files, late_files_rx) = tokio::sync::mpsc::unbounded_channel();
                    app.live.with_existing(conversation_id, |c| {
                        c.recording_ids.insert(recording, id.clone());
                        c.recording = Some(RunningRecording {
                            no: recording,
                            id,
                            attempt: 0,
                            link: None,
                            connected: false,
                            process: None,
                            launched: Instant::now(),
                            files: Vec::new(),
                            late_files,
                            late_files_rx,
                            abort_reason: None,
                        });
                    });
                }
                Err(e) => {
                    // Its launch finds no recording and reports a storage failure.
                    tracing::error!(conversation = conversation_id, error = %e, "cannot create a recording");
                }
            }
        }
        Action::Launch { recording, attempt } => {
            if let Err((failure, reason)) = launch(app, conversation_id, recording, attempt).await {
                app.metrics.recorder_failed(reason);
                feeds.push_back(Box::new(move |o, now| {
                    o.handle_recorder_failed(now, recording, attempt, failure)
                }));
            }
        }
        Action::Kill { recording, attempt } => {
            app.live.with_existing(conversation_id, |c| {
                if let Some(r) = c
                    .recording
                    .as_mut()
                    .filter(|r| r.no == recording && r.attempt == attempt)
                {
                    tracing::warn!(recording = %r.id, attempt, "stopping a recorder that is not wanted or not ready in time");
                    app.metrics.recorder_failed("killed");
                    if let Some(p) = r.process.as_mut() {
                        p.kill();
                    }
                }
            });
        }
        Action::Stop { recording } => {
            app.live.with_existing(conversation_id, |c| {
                if let Some(r) = c.recording.as_ref().filter(|r| r.no == recording) {
                    tracing::info!(recording = %r.id, "stopping the recording");
                    if let Some(link) = &r.link {
                        let _ = link.send(FromServer::Stop {
                            reason: "NORMAL".into(),
                        });
                    }
                }
            });
        }
        Action::Finish {
            recording,
            end_reason,
        } => {
            let run = app
                .live
                .with_existing(conversation_id, |c| {
                    c.recording.take_if(|r| r.no == recording)
                })
                .flatten();
            if let Some(mut run) = run {
                let reason = run.abort_reason.unwrap_or(end_reason);
                if end_reason != "NORMAL"
                    && let Some(p) = run.process.as_mut()
                {
                    p.kill();
                }
                // A recorder still connected is let go (its connection ends when its link
                // does) and hands its files to the task that stores the recording.
                run.link = None;
                drop(run.late_files);
                spawn_finalize(
                    app,
                    conversation_id,
                    &run.id,
                    reason,
                    run.files,
                    Some(run.late_files_rx),
                )
                .await;
            }
        }
        Action::Hold(interaction) => set_held(app, conversation_id, &interaction, true).await,
        Action::Release(interaction) => set_held(app, conversation_id, &interaction, false).await,
        Action::EndInteractions(ids) => {
            for id in ids {
                tracing::warn!(conversation = conversation_id, interaction = %id, "ending: the recording was denied");
                crate::api::interactions::close_interaction(
                    app,
                    conversation_id,
                    &id,
                    Some("RECORDING_DENIED"),
                )
                .await;
                feeds.push_back(Box::new(move |o, now| o.handle_interaction_ended(now, &id)));
            }
        }
        Action::Webhook(event) => webhook(app, conversation_id, event).await,
        Action::State(state) => {
            app.live.with_existing(conversation_id, |c| {
                let id = c
                    .recording
                    .as_ref()
                    .map(|r| r.id.clone())
                    .unwrap_or_default();
                c.publish(state_event(&id, state.as_str()));
            });
        }
    }
}

/// Launches attempt `attempt`: checks the account's limit and the storage, makes the entry
/// point, starts a recorder. A failure comes with its reason for the metrics.
async fn launch(
    app: &AppState,
    conversation_id: &str,
    recording: u64,
    attempt: u32,
) -> Result<(), (Failure, &'static str)> {
    let storage = (Failure::Storage, "storage");
    let found = app
        .live
        .with_existing(conversation_id, |c| {
            let timeout = c.orchestrator.as_ref()?.settings().initialization_timeout_s;
            let r = c.recording.as_ref().filter(|r| r.no == recording)?;
            Some((r.id.clone(), timeout))
        })
        .flatten();
    let Some((recording_id, timeout_s)) = found else {
        return Err(storage);
    };
    // Over the account's limit the attempt fails like a recorder that could not start: the
    // next attempts (and failover) follow the recording's retry settings.
    let limit = app.limits.recordings_per_account;
    match app
        .metadata
        .running_recordings_ahead_of(&recording_id)
        .await
    {
        Ok(ahead) if ahead >= u64::from(limit) => {
            tracing::warn!(recording = %recording_id, ahead, limit, "the account has as many recordings running as it may (limits.recordings_per_account); this attempt fails");
            return Err((Failure::Crashed, "account_limit"));
        }
        Ok(_) => {}
        // Not knowing the count is no reason to lose a compliance recording: it goes ahead.
        Err(e) => {
            tracing::warn!(recording = %recording_id, error = %e, "cannot count the account's running recordings; starting this one anyway");
        }
    }
    // The store check: the recording's spool directory can be made.
    let spool = app.storage.spool_dir_of(&recording_id);
    if let Err(e) = crate::storage::create_dir_durable(&spool).await {
        tracing::error!(recording = %recording_id, path = %spool.display(), error = %e, "the storage is not usable");
        return Err(storage);
    }
    let ttl_ms = i64::from(timeout_s) * 1000;
    let token = app
        .metadata
        .create_entry_point(&recording_id, attempt, ttl_ms, crate::now_ms())
        .await
        .map_err(|e| {
            tracing::error!(recording = %recording_id, error = %e, "cannot make an entry point");
            storage
        })?;
    let entry_point = format!("{}/recording/entry/{}", app.base_url, token.expose());
    let on_exit = exit_watch(app, conversation_id, recording, attempt);
    let process = app
        .launcher
        .launch(&recording_id, &entry_point, on_exit)
        .map_err(|e| {
            tracing::error!(recording = %recording_id, error = %e, "cannot launch a recorder");
            (Failure::Crashed, "launch")
        })?;
    app.metrics.recorder_launches.inc();
    app.live.with_existing(conversation_id, |c| {
        if let Some(r) = c.recording.as_mut().filter(|r| r.no == recording) {
            r.attempt = attempt;
            r.link = None;
            r.connected = false;
            r.process = Some(process);
            r.launched = Instant::now();
        }
    });
    Ok(())
}

/// A recorder that exits before it connected failed its attempt; one that connected is
/// reported by its connection.
fn exit_watch(app: &AppState, conversation_id: &str, recording: u64, attempt: u32) -> OnExit {
    let app = app.clone();
    let conversation_id = conversation_id.to_owned();
    Box::new(move |how| {
        let unconnected = app
            .live
            .with_existing(&conversation_id, |c| {
                c.recording
                    .as_ref()
                    .is_some_and(|r| r.no == recording && r.attempt == attempt && !r.connected)
            })
            .unwrap_or(false);
        if unconnected {
            tracing::warn!(conversation = %conversation_id, attempt, %how, "the recorder exited before it connected");
            app.metrics.recorder_failed("exited");
            tokio::spawn(async move {
                drive(
                    &app,
                    &conversation_id,
                    Box::new(move |o, now| {
                        o.handle_recorder_failed(now, recording, attempt, Failure::Crashed)
                    }),
                )
                .await
            });
        }
    })
}

/// Holds or releases an interaction's media in the SFU, and tells the clients.
async fn set_held(app: &AppState, conversation_id: &str, interaction: &str, held: bool) {
    let peers = app
        .live
        .with_existing(conversation_id, |c| {
            if held {
                if !c.held.iter().any(|h| h == interaction) {
                    c.held.push(interaction.to_owned());
                }
            } else {
                c.held.retain(|h| h != interaction);
            }
            c.publish(ConversationEvent::MediaHeld {
                interaction_id: interaction.to_owned(),
                held,
            });
            c.publications
                .iter()
                .filter(|p| p.interaction_id == interaction)
                .map(|p| p.peer)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for peer in peers {
        let _ = app
            .room
            .call(move |room, now| room.set_held(now, peer, held))
            .await;
    }
}

/// Queues the webhook the orchestrator decided on (SPEC §5's payloads).
async fn webhook(app: &AppState, conversation_id: &str, event: Webhook) {
    let recording = match event {
        Webhook::Started { recording } | Webhook::Failed { recording, .. } => recording,
    };
    let known = app
        .live
        .with_existing(conversation_id, |c| {
            c.recording_ids
                .get(&recording)
                .map(|id| (c.account_id.clone(), id.clone()))
        })
        .flatten();
    let Some((account_id, recording_id)) = known else {
        return;
    };
    let stored = app.metadata.recording(&recording_id).await.ok().flatten();
    let recording_type = stored.as_ref().map(|r| r.recording_type.clone());
    let started = stored.and_then(|r| r.started_at_ms);
    let (name, mut fields) = match event {
        Webhook::Started { .. } => ("conversation.recording_started", json!({})),
        Webhook::Failed { reason, .. } => (
            "conversation.recording_failed",
            json!({ "failureReason": reason }),
        ),
    };
    fields["conversationId"] = json!(conversation_id);
    fields["recordingId"] = json!(recording_id);
    fields["recordingType"] = json!(recording_type);
    fields["recordingStartTimestamp"] = json!(started);
    crate::webhooks::emit(app, &account_id, name, fields).await;
}
