//! Recordings: the orchestrator of each conversation driven by what happens ([`drive`]), the
//! recorders' [`launcher`] and their [`entry`] point, and finishing a recording's files into
//! the object store ([`finalize`]).

pub mod drive;
pub mod entry;
pub mod launcher;
pub mod takeover;

pub use takeover::take_over;

use std::time::{Duration, Instant};

use convrec_core::config::RecordingSettings;
use convrec_store::metadata::MetadataError;
use convrec_store::spool::SpoolFile;
use serde_json::json;

use crate::AppState;
use crate::live::ConversationEvent;
use crate::storage::{manifest_key, object_key};
use crate::upload::{Progress, UploadTarget, Uploader};

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

/// A file a recorder is writing, spooled.
pub struct SpooledFile {
    /// Its number.
    pub file: u32,
    /// Its publication (raw mode; none for a composed file).
    pub publication_id: Option<String>,
    /// When it started (Unix ms).
    pub started_at_ms: i64,
    /// The spool.
    pub spool: SpoolFile,
    /// Its upload into the object store, streaming while the file grows.
    pub uploader: Uploader,
}

/// The server is stopping: every call and layer ends (their media sessions end with the
/// process, SPEC §4), and every recording is finished from what was made durable, with end
/// reason `ABORT_SYSTEM`. Waits up to `grace` for the recorders to write their indexes.
pub async fn stop_all(app: &AppState, grace: Duration) {
    // Event streams end now: the HTTP server's graceful stop waits for open responses.
    app.shutdown.cancel();
    for (conversation_id, _) in app.live.running_recordings() {
        app.live.with_existing(&conversation_id, |c| {
            if let Some(r) = c.recording.as_mut() {
                r.abort_reason = Some("ABORT_SYSTEM");
            }
        });
    }
    // No new recording may start now.
    app.live.stop_starting();
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

/// After a restart: calls and layers that were running ended with the process that ran them,
/// and every recording that had not ended is finished from what its spool holds (whole,
/// fsynced blocks), with end reason `ABORT_SYSTEM` (SPEC §4). None stays `STARTED` or
/// `INITIALIZING`.
pub async fn recover(app: &AppState) -> Result<(), MetadataError> {
    takeover::take_back_abandoned(app).await?;
    let ended = app
        .metadata
        .end_open_interactions_after_restart(&app.node_id, crate::now_ms())
        .await?;
    if ended > 0 {
        tracing::warn!(
            interactions = ended,
            "ended the calls and layers the last run left open"
        );
    }
    let mut resumed = std::collections::HashSet::new();
    for recording in app.metadata.unfinished_recordings(&app.node_id).await? {
        let (mut files, mut stored_elsewhere) = (Vec::new(), false);
        for f in app.metadata.recording_files(&recording.id).await? {
            let path = app.storage.spool_path(&recording.id, f.file);
            let upload = app.metadata.file_upload(&recording.id, f.file).await?;
            let target = UploadTarget::of(app, &recording.id, f.file);
            match tokio::task::spawn_blocking(move || SpoolFile::recover(&path)).await {
                Ok(Ok((spool, recovery))) => {
                    tracing::info!(
                        recording = %recording.id,
                        file = f.file,
                        bytes = recovery.durable_len,
                        discarded = recovery.discarded_bytes,
                        parts_uploaded = upload.as_ref().map_or(0, |u| u.parts.len()),
                        "recovered a spool file"
                    );
                    resumed.insert((recording.id.clone(), f.file));
                    // Nothing more comes to a file of a recording the last run left open.
                    let progress = Progress {
                        durable: spool.len(),
                        finished: true,
                    };
                    files.push(SpooledFile {
                        file: f.file,
                        publication_id: f.publication_id,
                        started_at_ms: f.started_at_ms,
                        spool,
                        uploader: Uploader::start(app, target, upload, progress),
                    });
                }
                Ok(Err(e)) if upload.as_ref().is_some_and(|u| !u.parts.is_empty()) => {
                    tracing::warn!(recording = %recording.id, file = f.file, error = %e, "no spool here, but parts in the object store");
                    stored_elsewhere = true;
                }
                Ok(Err(e)) => {
                    tracing::error!(recording = %recording.id, file = f.file, error = %e, "a spool file is lost")
                }
                Err(e) => tracing::error!(error = %e, "spool recovery failed"),
            }
        }
        if files.is_empty() && stored_elsewhere {
            // Taken over from a lost node, and this node stopped before it was finished.
            takeover::spawn_finish_from_parts(app, recording);
            continue;
        }
        tracing::warn!(recording = %recording.id, files = files.len(), "finishing a recording the last run left open");
        match recording.end_reason.as_deref() {
            // Ended, but its files were not all stored: store them under the reason it has.
            Some(reason) => {
                let reason = convrec_core::config::END_REASONS
                    .iter()
                    .find(|r| **r == reason)
                    .copied()
                    .unwrap_or("ABORT_SYSTEM");
                spawn_store(
                    FinishingGuard::new(app),
                    &recording.conversation_id,
                    &recording.id,
                    reason,
                    files,
                    None,
                );
            }
            None => {
                spawn_finalize(
                    app,
                    &recording.conversation_id,
                    &recording.id,
                    "ABORT_SYSTEM",
                    files,
                    None,
                )
                .await
            }
        }
    }
    // Uploads of this node that nothing will complete (their recording was finished, deleted
    // or its spool lost) are aborted, so the store does not keep their parts.
    for upload in app.metadata.file_uploads_of_node(&app.node_id).await? {
        if !resumed.contains(&(upload.recording_id.clone(), upload.file)) {
            tracing::warn!(recording = %upload.recording_id, file = upload.file, "aborting an abandoned upload");
            let target = UploadTarget::of(app, &upload.recording_id, upload.file);
            crate::upload::drop_upload(app, &target, &upload).await;
        }
    }
    let running = resumed
        .into_iter()
        .map(|(recording, _)| recording)
        .collect();
    takeover::restore_tails(app, &running).await
}

/// The event for a state change.
pub fn state_event(recording_id: &str, state: &str) -> ConversationEvent {
    ConversationEvent::RecordingState {
        recording_id: Some(recording_id.to_owned()),
        recording_state: state.to_owned(),
    }
}

/// Where the files of recorder connections that outlive their recording's finish arrive (see
/// [`crate::live::RunningRecording::late_files_rx`]).
pub type LateFiles = tokio::sync::mpsc::UnboundedReceiver<Vec<SpooledFile>>;

/// Finishes a recording: ends it in the metadata now (so the next recording of the
/// conversation may start), then stores its files, with those still `late` (once every
/// recorder connection has ended), in a task of its own, which [`stop_all`] waits for.
pub async fn spawn_finalize(
    app: &AppState,
    conversation_id: &str,
    recording_id: &str,
    reason: &'static str,
    files: Vec<SpooledFile>,
    late: Option<LateFiles>,
) {
    // Counted from now: [`stop_all`] must not see a gap between running and storing.
    let guard = FinishingGuard::new(app);
    if let Err(e) = app
        .metadata
        .end_recording(recording_id, reason, crate::now_ms())
        .await
    {
        tracing::error!(recording = recording_id, error = %e, "cannot end the recording");
    }
    spawn_store(guard, conversation_id, recording_id, reason, files, late);
}

/// Stores an ended recording's files, with those still `late`, in a task of its own;
/// [`stop_all`] waits for it.
fn spawn_store(
    guard: FinishingGuard,
    conversation_id: &str,
    recording_id: &str,
    reason: &'static str,
    mut files: Vec<SpooledFile>,
    late: Option<LateFiles>,
) {
    let (conversation_id, recording_id) = (conversation_id.to_owned(), recording_id.to_owned());
    tokio::spawn(async move {
        if let Some(mut late) = late {
            // Ends when the last recorder connection has ended (each holds a sender).
            while let Some(more) = late.recv().await {
                tracing::warn!(recording = %recording_id, files = more.len(), "a recorder connection that outlived the recording's finish handed its files over");
                files.extend(more);
            }
        }
        finalize(&guard.0, &conversation_id, &recording_id, reason, files).await;
        drop(guard);
    });
}

/// Counts a recording as being finished from its making until it drops, however the task ends.
struct FinishingGuard(AppState);

impl FinishingGuard {
    fn new(app: &AppState) -> Self {
        app.live.begin_finishing();
        Self(app.clone())
    }
}

impl Drop for FinishingGuard {
    fn drop(&mut self) {
        self.0.live.end_finishing();
    }
}

/// Ends a recording: ends it in the metadata, copies each spooled
/// file into the object store with the raw layout's manifest, and marks it complete.
pub async fn finalize(
    app: &AppState,
    conversation_id: &str,
    recording_id: &str,
    reason: &str,
    files: Vec<SpooledFile>,
) {
    let now = crate::now_ms();
    let ended = std::time::Instant::now();
    match store_files(app, recording_id, reason, now, files).await {
        Ok(true) => app
            .metrics
            .upload_lag_seconds
            .observe(ended.elapsed().as_secs_f64()),
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
    announce_available(app, conversation_id, recording_id).await;
}

/// `conversation.recording_available` (SPEC §5), with signed download links.
pub(crate) async fn announce_available(app: &AppState, conversation_id: &str, recording_id: &str) {
    let (Ok(Some(conversation)), Ok(Some(recording)), Ok(files)) = (
        app.metadata.conversation(conversation_id).await,
        app.metadata.recording(recording_id).await,
        app.metadata.recording_files(recording_id).await,
    ) else {
        tracing::error!(
            recording = recording_id,
            "cannot read the recording to announce it"
        );
        return;
    };
    let total: u64 = files.iter().map(|f| f.durable_bytes).sum();
    let fields = json!({
        "conversationId": conversation_id,
        "recordingId": recording_id,
        "mimeType": crate::api::download::recording_mime_type(&recording, &files),
        "encryptionKeyId": files.iter().find_map(|f| f.encryption_key_id.clone()),
        "totalSize": total,
        "downloadLinks": files
            .iter()
            .map(|f| crate::api::download::link(app, recording_id, f.file))
            .collect::<Vec<_>>(),
        "recordingStartTimestamp": recording.started_at_ms,
        "recordingEndTimestamp": recording.ended_at_ms,
        "endReason": recording.end_reason,
    });
    crate::webhooks::emit(
        app,
        &conversation.account_id,
        "conversation.recording_available",
        fields,
    )
    .await;
}

async fn store_files(
    app: &AppState,
    recording_id: &str,
    reason: &str,
    now: i64,
    files: Vec<SpooledFile>,
) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let recording = persist(app, "read a recording", || {
        app.metadata.recording(recording_id)
    })
    .await?
    .ok_or("the recording vanished")?;
    if recording.ended_at_ms.is_none() {
        // Ending it failed when it finished (see [`spawn_finalize`]).
        persist(app, "end a recording", || {
            app.metadata.end_recording(recording_id, reason, now)
        })
        .await?;
    }
    if files.iter().all(|f| f.spool.is_empty()) {
        // Nothing was recorded: no files, and no listing (SPEC §5).
        return Ok(false);
    }
    persist(app, "mark a recording pending", || {
        app.metadata.set_recording_status(recording_id, "PENDING")
    })
    .await?;
    let mut stored = Vec::new();
    for mut f in files {
        if f.spool.is_empty() {
            f.uploader.abandon();
            continue;
        }
        // A sealed file without its index gets its end mark before it is stored.
        let (f, closed) = tokio::task::spawn_blocking(move || {
            let closed = f.spool.close();
            (f, closed)
        })
        .await?;
        let len = closed?;
        let bytes = f.uploader.finish(len).await?;
        persist(app, "record a file's stored length", || {
            app.metadata.set_file_durable(
                recording_id,
                f.file,
                len,
                f.spool.next_seq(),
                f.spool.is_finished(),
            )
        })
        .await?;
        stored.push(StoredFile {
            file: f.file,
            publication_id: f.publication_id,
            started_at_ms: f.started_at_ms,
            bytes,
            fragments: Some(
                f.spool
                    .next_seq()
                    .saturating_sub(1 + u64::from(f.spool.is_finished())),
            ),
            indexed: f.spool.is_finished(),
        });
    }
    complete(app, &recording, reason, now, stored).await?;
    let spool = app.storage.spool_dir_of(recording_id);
    if let Err(e) = tokio::fs::remove_dir_all(&spool).await {
        tracing::warn!(path = %spool.display(), error = %e, "cannot remove the spool");
    }
    Ok(true)
}

/// A file of a recording, in the object store.
pub struct StoredFile {
    /// Its number.
    pub file: u32,
    /// Its publication (raw mode; none for a composed file).
    pub publication_id: Option<String>,
    /// When it started (Unix ms).
    pub started_at_ms: i64,
    /// The object's size.
    pub bytes: u64,
    /// Its fragments, when known (not for a file finished from its uploaded parts).
    pub fragments: Option<u64>,
    /// It ends with its index.
    pub indexed: bool,
}

/// A stored file's entry in its recording's manifest; `sealed_for` is the key it is sealed
/// for, if any. Its `offsetMs` is set by [`align_offsets`] once all entries are known.
pub fn manifest_entry(
    recording_id: &str,
    f: &StoredFile,
    sealed_for: Option<&String>,
) -> serde_json::Value {
    json!({
        "file": f.file,
        "objectKey": object_key(recording_id, f.file),
        "publicationId": f.publication_id,
        "startedAt": f.started_at_ms,
        "offsetMs": 0,
        "bytes": f.bytes,
        "fragments": f.fragments,
        "indexed": f.indexed,
        "encryptionKeyId": sealed_for,
    })
}

/// Sets each manifest entry's `offsetMs` from the earliest `startedAt` among them (offsets
/// count from there: where a player lines the tracks up) and returns that start, or
/// `otherwise` when no entry has one.
pub fn align_offsets(entries: &mut [serde_json::Value], otherwise: i64) -> i64 {
    let earliest = entries
        .iter()
        .filter_map(|e| e["startedAt"].as_i64())
        .min()
        .unwrap_or(otherwise);
    for e in entries.iter_mut() {
        e["offsetMs"] = (e["startedAt"].as_i64().unwrap_or(earliest) - earliest).into();
    }
    earliest
}

/// Writes the manifest of a recording whose files are stored and marks it complete.
pub async fn complete(
    app: &AppState,
    recording: &convrec_store::metadata::Recording,
    reason: &str,
    now: i64,
    files: Vec<StoredFile>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sealed_for: std::collections::HashMap<u32, String> =
        persist(app, "read a recording's files", || {
            app.metadata.recording_files(&recording.id)
        })
        .await?
        .into_iter()
        .filter_map(|f| Some((f.file, f.encryption_key_id?)))
        .collect();
    let mut entries: Vec<_> = files
        .iter()
        .map(|f| manifest_entry(&recording.id, f, sealed_for.get(&f.file)))
        .collect();
    let started = align_offsets(&mut entries, recording.started_at_ms.unwrap_or(now));
    let manifest = json!({
        "recordingId": recording.id,
        "conversationId": recording.conversation_id,
        "layout": "RAW_TRACKS",
        "recordingType": recording.recording_type,
        "startedAt": started,
        "endedAt": now,
        "endReason": reason,
        "files": entries,
    });
    let manifest = serde_json::to_vec_pretty(&manifest)?;
    let key = manifest_key(&recording.id);
    persist(app, "store a recording's manifest", || {
        app.storage.put(&key, manifest.clone())
    })
    .await?;
    // COMPLETE and its RECORDING_AVAILABLE history message land together (SPEC §5).
    persist(app, "mark a recording complete", || {
        app.metadata.complete_recording(&recording.id)
    })
    .await?;
    Ok(())
}

/// Runs a step of finishing a recording until it succeeds: a database or object store away
/// for a while delays the recording's completion instead of leaving it unfinished until the
/// next start. It gives up when the server stops (its next start finishes the recording from
/// the spool) or when the thing is gone.
async fn persist<T, E, F, Fut>(app: &AppState, what: &str, step: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display + crate::retry::IsNotFound,
{
    crate::retry::retry_until(what, Some(&app.shutdown), || {}, step).await
}
