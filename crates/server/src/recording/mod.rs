//! Recordings: when one starts and stops, the recorder's entry point, and finishing its files.
//!
//! Step 2's rule (step 3 replaces it with the orchestrator of SPEC §3–4): when a call or layer
//! starts in a conversation whose account has recording enabled and none runs, a recording
//! starts (automatic, raw layout, one attempt); it stops when no call or layer is active any
//! more. A recorder that is not ready within the initialization timeout is stopped and the
//! recording ends with `ABORT_TIMEOUT`; one that fails or vanishes mid-way leaves what was
//! made durable, finished as `ABORT_UNEXPECTED`.

pub mod entry;
pub mod launcher;

use std::time::{Duration, Instant};

use convrec_core::config::RecordingSettings;
use convrec_core::recorder_protocol::FromServer;
use convrec_store::metadata::MetadataError;
use convrec_store::spool::SpoolFile;
use serde_json::json;

use crate::AppState;
use crate::live::{ConversationEvent, RecordingState, RunningRecording};
use crate::storage::{manifest_key, object_key};

/// How long a recorder has to connect and be ready (SPEC §2 `initializationTimeout` default).
pub const INITIALIZATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A call or layer started: start recording if the conversation is recorded and none runs.
pub async fn interaction_started(app: &AppState, conversation_id: &str, account_id: &str) {
    let running = app
        .live
        .with(conversation_id, account_id, |c| c.recording.is_some());
    if running {
        return;
    }
    match settings(app, conversation_id).await {
        Ok(s) if s.enabled => {}
        Ok(_) => return,
        Err(e) => {
            tracing::error!(conversation = conversation_id, error = %e, "cannot read the configuration");
            return;
        }
    }
    if let Err(e) = start(app, conversation_id, account_id).await {
        tracing::error!(conversation = conversation_id, error = %e, "cannot start a recording");
    }
}

/// A conversation's recording settings: its template's scope, then its account's, then the
/// defaults (SPEC §2).
pub async fn settings(
    app: &AppState,
    conversation_id: &str,
) -> Result<RecordingSettings, MetadataError> {
    let conversation =
        app.metadata
            .conversation(conversation_id)
            .await?
            .ok_or(MetadataError::NotFound {
                what: "conversation",
                id: conversation_id.to_owned(),
            })?;
    let template = match &conversation.template_id {
        Some(t) => app.metadata.properties("TEMPLATE", t).await?,
        None => Vec::new(),
    };
    let account = app
        .metadata
        .properties("ACCOUNT", &conversation.account_id)
        .await?;
    Ok(RecordingSettings::resolve(&[&template, &account]))
}

async fn start(
    app: &AppState,
    conversation_id: &str,
    account_id: &str,
) -> Result<(), MetadataError> {
    let now = crate::now_ms();
    let id = match app
        .metadata
        .create_recording(
            conversation_id,
            "AUDIO_VIDEO",
            "RAW_TRACKS",
            "AUTOMATIC",
            now,
        )
        .await
    {
        Ok(id) => id,
        // Another start won the race.
        Err(MetadataError::Conflict(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let registered = app.live.with(conversation_id, account_id, |c| {
        if c.recording.is_some() {
            return false;
        }
        c.recording = Some(RunningRecording {
            id: id.clone(),
            state: RecordingState::WaitingReady,
            link: None,
            process: None,
            launched: Instant::now(),
            abort_reason: None,
        });
        c.publish(state_event(&id, "WAITING_READY"));
        true
    });
    if !registered {
        app.metadata
            .end_recording(&id, "ABORT_UNEXPECTED", now)
            .await?;
        return Ok(());
    }
    let ttl = i64::try_from(INITIALIZATION_TIMEOUT.as_millis()).unwrap_or(i64::MAX);
    let token = app.metadata.create_entry_point(&id, 1, ttl, now).await?;
    let entry_point = format!("{}/recording/entry/{}", app.base_url, token.expose());
    tracing::info!(conversation = conversation_id, recording = %id, "recording starts");
    match app.launcher.launch(&id, &entry_point) {
        Ok(process) => {
            app.live.with_existing(conversation_id, |c| {
                if let Some(r) = c.recording.as_mut().filter(|r| r.id == id) {
                    r.process = Some(process);
                }
            });
        }
        Err(e) => {
            tracing::error!(recording = %id, error = %e, "cannot launch a recorder");
            abandon(app, conversation_id, &id, "ABORT_UNEXPECTED").await;
            return Ok(());
        }
    }
    let app = app.clone();
    let conversation_id = conversation_id.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(INITIALIZATION_TIMEOUT).await;
        let late = app.live.with_existing(&conversation_id, |c| {
            c.recording
                .as_ref()
                .is_some_and(|r| r.id == id && r.state == RecordingState::WaitingReady)
        });
        if late == Some(true) {
            tracing::warn!(recording = %id, "the recorder was not ready in time");
            abandon(&app, &conversation_id, &id, "ABORT_TIMEOUT").await;
        }
    });
    Ok(())
}

/// Gives up on a recording: stops its recorder. If the recorder is connected, its entry-point
/// task finishes the files with `reason`; otherwise the recording ends here.
async fn abandon(app: &AppState, conversation_id: &str, recording_id: &str, reason: &'static str) {
    let connected = app.live.with_existing(conversation_id, |c| {
        let r = c.recording.as_mut().filter(|r| r.id == recording_id)?;
        r.abort_reason = Some(reason);
        if let Some(p) = r.process.as_mut() {
            p.kill();
        }
        if r.link.is_some() {
            return Some(true);
        }
        c.recording = None;
        c.publish(state_event(recording_id, ended_state(reason)));
        Some(false)
    });
    if connected == Some(Some(false))
        && let Err(e) = app
            .metadata
            .end_recording(recording_id, reason, crate::now_ms())
            .await
    {
        tracing::error!(recording = recording_id, error = %e, "cannot end the recording");
    }
}

/// Calls or layers ended: stop the recording when none is active any more.
pub async fn interactions_changed(app: &AppState, conversation_id: &str) {
    let unconnected = app.live.with_existing(conversation_id, |c| {
        if !c.interactions.is_empty() {
            return None;
        }
        let r = c.recording.as_mut()?;
        if r.state == RecordingState::Stopping {
            return None;
        }
        r.state = RecordingState::Stopping;
        tracing::info!(recording = %r.id, "nothing left to record: stopping");
        match &r.link {
            Some(link) => {
                let _ = link.send(FromServer::Stop {
                    reason: "NORMAL".into(),
                });
                None
            }
            None => Some((r.id.clone(), r.abort_reason.unwrap_or("NORMAL"))),
        }
    });
    // Its recorder never connected: nothing was recorded, and nothing will be.
    if let Some(Some((recording_id, reason))) = unconnected {
        abandon(app, conversation_id, &recording_id, reason).await;
    }
}

/// The server is stopping: every call and layer ends (their media sessions end with the
/// process, SPEC §4), and every recording is finished from what was made durable, with end
/// reason `ABORT_SYSTEM`. Waits up to `grace` for the recorders to write their indexes.
pub async fn stop_all(app: &AppState, grace: Duration) {
    for (conversation_id, _) in app.live.running_recordings() {
        app.live.with_existing(&conversation_id, |c| {
            if let Some(r) = c.recording.as_mut() {
                r.abort_reason = Some("ABORT_SYSTEM");
            }
        });
    }
    for (conversation_id, interactions) in app.live.active_interactions() {
        for interaction_id in interactions {
            crate::api::interactions::end_interaction(app, &conversation_id, &interaction_id).await;
        }
    }
    let deadline = Instant::now() + grace;
    while app.live.recording_work_left() {
        if Instant::now() > deadline {
            tracing::warn!(
                recordings = ?app.live.running_recordings(),
                "stopping with recordings unfinished; their spools are kept"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The state a recording ends in (SPEC §4): `STOPPED` after a normal end, else `FAILED`.
fn ended_state(reason: &str) -> &'static str {
    if reason == "NORMAL" {
        "STOPPED"
    } else {
        "FAILED"
    }
}

/// The event for a state change.
pub fn state_event(recording_id: &str, state: &str) -> ConversationEvent {
    ConversationEvent::RecordingState {
        recording_id: recording_id.to_owned(),
        recording_state: state.to_owned(),
    }
}

/// A file a recorder is writing, spooled.
pub struct SpooledFile {
    /// Its number.
    pub file: u32,
    /// Its publication.
    pub publication_id: String,
    /// When it started (Unix ms).
    pub started_at_ms: i64,
    /// The spool.
    pub spool: SpoolFile,
}

/// Ends a recording whose recorder was connected: ends it in the metadata, copies each spooled
/// file into the object store with the raw layout's manifest, and marks it complete.
pub async fn finalize(
    app: &AppState,
    conversation_id: &str,
    recording_id: &str,
    reason: &str,
    files: Vec<SpooledFile>,
) {
    let _finishing = app.live.finishing();
    let now = crate::now_ms();
    // Ended in the metadata first: a recording that starts next must not find it running.
    if let Err(e) = app.metadata.end_recording(recording_id, reason, now).await {
        tracing::error!(recording = recording_id, error = %e, "cannot end the recording");
    }
    app.live.with_existing(conversation_id, |c| {
        if let Some(r) = c.recording.take_if(|r| r.id == recording_id)
            && let Some(mut p) = r.process
            && reason != "NORMAL"
        {
            p.kill();
        }
        c.publish(state_event(recording_id, ended_state(reason)));
    });
    match store_files(app, recording_id, reason, now, files).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(
                recording = recording_id,
                reason,
                "recording ended with no media"
            );
            return;
        }
        Err(e) => {
            // The spool keeps the bytes; step 3 retries the hand-off after a restart.
            tracing::error!(recording = recording_id, error = %e, "cannot finish the recording");
            return;
        }
    }
    app.live.with_existing(conversation_id, |c| {
        c.publish(ConversationEvent::RecordingAvailable {
            recording_id: recording_id.to_owned(),
        })
    });
    tracing::info!(recording = recording_id, reason, "recording complete");
}

async fn store_files(
    app: &AppState,
    recording_id: &str,
    reason: &str,
    now: i64,
    files: Vec<SpooledFile>,
) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let recording = app
        .metadata
        .recording(recording_id)
        .await?
        .ok_or("the recording vanished")?;
    if files.iter().all(|f| f.spool.is_empty()) {
        // Nothing was recorded: no files, and no listing (SPEC §5).
        return Ok(false);
    }
    app.metadata
        .set_recording_status(recording_id, "PENDING")
        .await?;
    // Offsets count from the earliest file: where a player lines the tracks up.
    let started = files
        .iter()
        .filter(|f| !f.spool.is_empty())
        .map(|f| f.started_at_ms)
        .min()
        .or(recording.started_at_ms)
        .unwrap_or(now);
    let mut entries = Vec::new();
    for f in &files {
        if f.spool.is_empty() {
            continue;
        }
        let key = object_key(recording_id, f.file);
        let bytes = app.storage.upload(&key, f.spool.path()).await?;
        app.metadata
            .set_file_durable(
                recording_id,
                f.file,
                f.spool.len(),
                f.spool.next_seq(),
                f.spool.is_finished(),
            )
            .await?;
        entries.push(json!({
            "file": f.file,
            "objectKey": key,
            "publicationId": f.publication_id,
            "startedAt": f.started_at_ms,
            "offsetMs": f.started_at_ms - started,
            "bytes": bytes,
            "fragments": f.spool.next_seq().saturating_sub(1 + u64::from(f.spool.is_finished())),
            "indexed": f.spool.is_finished(),
        }));
    }
    let manifest = json!({
        "recordingId": recording_id,
        "conversationId": recording.conversation_id,
        "layout": "RAW_TRACKS",
        "recordingType": recording.recording_type,
        "startedAt": started,
        "endedAt": now,
        "endReason": reason,
        "files": entries,
    });
    let manifest = serde_json::to_vec_pretty(&manifest)?;
    app.storage
        .put(&manifest_key(recording_id), manifest)
        .await?;
    app.metadata
        .set_recording_status(recording_id, "COMPLETE")
        .await?;
    drop(files);
    let spool = app.storage.spool_dir_of(recording_id);
    if let Err(e) = tokio::fs::remove_dir_all(&spool).await {
        tracing::warn!(path = %spool.display(), error = %e, "cannot remove the spool");
    }
    Ok(true)
}
