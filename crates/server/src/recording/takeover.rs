//! Taking over a lost node's recordings (see [`crate::cluster`]): its calls and layers ended
//! with it, and each recording it ran is finished with end reason `ABORT_SYSTEM` from what
//! reached the object store: the parts its uploads had stored, which end on block boundaries
//! and so make a playable file. What the lost node had spooled but not yet uploaded stays in
//! its spool; when that node starts again, [`restore_tails`] stores those files again whole,
//! and adds those of which no part had been stored. A recording of which nothing had reached
//! the store cannot be finished here: that node takes it back when it starts again
//! ([`take_back_abandoned`]) and finishes it from its spool (see docs/operations.md, "Several
//! nodes").

use convrec_store::metadata::{MetadataError, Recording};

use super::{
    FinishingGuard, StoredFile, align_offsets, announce_available, complete, manifest_entry,
};
use crate::AppState;
use crate::upload::{Progress, UploadTarget, Uploader, store_parts};
use convrec_store::spool::SpoolFile;

/// Takes over node `lost`, whose lease ran out (this node won the takeover).
pub async fn take_over(app: &AppState, lost: &str) -> Result<(), MetadataError> {
    let now = crate::now_ms();
    let ended = app.metadata.end_open_interactions(lost, now).await?;
    if ended > 0 {
        tracing::warn!(
            lost,
            interactions = ended,
            "ended the calls and layers of a lost node"
        );
    }
    for recording in app.metadata.unfinished_recordings(lost).await? {
        if !app
            .metadata
            .move_recording(&recording.id, lost, &app.node_id)
            .await?
        {
            continue;
        }
        tracing::warn!(lost, recording = %recording.id, "finishing a lost node's recording from what reached the object store");
        spawn_finish_from_parts(app, recording);
    }
    Ok(())
}

/// Finishes a recording whose spool is on another node from the parts its uploads stored, in a
/// task of its own (counted as finishing, so a stopping server waits for it).
pub fn spawn_finish_from_parts(app: &AppState, recording: Recording) {
    let guard = FinishingGuard::new(app);
    tokio::spawn(async move {
        if let Err(e) = finish_from_parts(&guard.0, &recording).await {
            tracing::error!(recording = %recording.id, error = %e, "cannot finish the recording; the next start of this node tries again");
        }
        drop(guard);
    });
}

async fn finish_from_parts(
    app: &AppState,
    recording: &Recording,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let reason = recording.end_reason.as_deref().unwrap_or("ABORT_SYSTEM");
    let now = crate::now_ms();
    if recording.ended_at_ms.is_none() {
        app.metadata
            .end_recording(&recording.id, "ABORT_SYSTEM", now)
            .await?;
    }
    let mut stored = Vec::new();
    for f in app.metadata.recording_files(&recording.id).await? {
        let upload = app.metadata.file_upload(&recording.id, f.file).await?;
        let Some(upload) = upload.filter(|u| !u.parts.is_empty()) else {
            tracing::error!(recording = %recording.id, file = f.file, "no part of this file reached the object store; what was recorded is only in the lost node's spool");
            continue;
        };
        let target = UploadTarget::of(app, &recording.id, f.file);
        let Some(bytes) = store_parts(app, &target, &upload).await else {
            tracing::error!(recording = %recording.id, file = f.file, "the object store no longer has this file's parts");
            continue;
        };
        app.metadata
            .set_file_durable(&recording.id, f.file, bytes, f.blocks, false)
            .await?;
        stored.push(StoredFile {
            file: f.file,
            publication_id: f.publication_id,
            started_at_ms: f.started_at_ms,
            bytes,
            fragments: None,
            indexed: false,
        });
    }
    if stored.is_empty() {
        tracing::warn!(recording = %recording.id, "a lost node's recording has nothing in the object store: that node finishes it from its spool when it starts again");
        return Ok(());
    }
    app.metadata
        .set_recording_status(&recording.id, "PENDING")
        .await?;
    complete(app, recording, reason, now, stored).await?;
    tracing::info!(recording = %recording.id, reason, "recording complete");
    announce_available(app, &recording.conversation_id, &recording.id).await;
    Ok(())
}

/// Before a restart's recovery: recordings another node took over from this one but could not
/// finish (no part of their files had reached the object store) come back to this node, whose
/// spool holds them, to be finished like its own by [`super::recover`].
pub async fn take_back_abandoned(app: &AppState) -> Result<(), MetadataError> {
    let Ok(entries) = std::fs::read_dir(app.storage.spool_dir_of("")) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && app.metadata.take_back_recording(&id, &app.node_id).await? {
            tracing::warn!(recording = %id, "taking back a recording another node took over but could not finish (none of it had reached the object store)");
        }
    }
    Ok(())
}

/// After a restart: a spool directory left here for a recording that is complete (another
/// node finished it from its stored parts while this node was away) holds files longer than
/// their objects, or files of which no part had been stored. Each such file is stored whole,
/// in a task of its own, and the recording's manifest and sizes are updated; then the
/// directory goes (only once every file in it is stored). `running` lists the
/// recordings this node resumed itself (their spools are in use).
pub async fn restore_tails(
    app: &AppState,
    running: &std::collections::HashSet<String>,
) -> Result<(), MetadataError> {
    let Ok(entries) = std::fs::read_dir(app.storage.spool_dir_of("")) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        if running.contains(&id) || !entry.path().is_dir() {
            continue;
        }
        match app.metadata.recording(&id).await? {
            Some(recording) if recording.status == "COMPLETE" => {
                let guard = FinishingGuard::new(app);
                tokio::spawn(async move {
                    if let Err(e) = restore_tail(&guard.0, &recording).await {
                        tracing::error!(recording = %recording.id, error = %e, "cannot store the rest of a recording; its spool is kept for the next start");
                    }
                    drop(guard);
                });
            }
            // Still being finished by another node: the next start looks again.
            Some(_) => {}
            None => {
                tracing::info!(recording = %id, "removing the spool of a deleted recording");
                let _ = tokio::fs::remove_dir_all(entry.path()).await;
            }
        }
    }
    Ok(())
}

async fn restore_tail(
    app: &AppState,
    recording: &Recording,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let manifest_key = crate::storage::manifest_key(&recording.id);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&app.storage.get(&manifest_key).await?)?;
    let mut restored = 0;
    for f in app.metadata.recording_files(&recording.id).await? {
        let path = app.storage.spool_path(&recording.id, f.file);
        if !path.exists() {
            continue;
        }
        let (spool, _) = tokio::task::spawn_blocking(move || SpoolFile::recover(&path)).await??;
        let files = manifest["files"]
            .as_array_mut()
            .ok_or("the manifest lists no files")?;
        let stored_bytes = files
            .iter()
            .find(|e| e["file"] == f.file)
            .map(|e| e["bytes"].as_u64().unwrap_or(u64::MAX));
        if stored_bytes.is_some_and(|stored| spool.len() <= stored) || spool.is_empty() {
            continue;
        }
        // The object, if any, is a prefix of the spool file: the whole file replaces it.
        let target = UploadTarget::of(app, &recording.id, f.file);
        let progress = Progress {
            durable: spool.len(),
            finished: true,
        };
        let bytes = Uploader::start(app, target, None, progress)
            .finish(spool.len())
            .await?;
        app.metadata
            .set_file_durable(
                &recording.id,
                f.file,
                bytes,
                spool.next_seq(),
                spool.is_finished(),
            )
            .await?;
        tracing::warn!(recording = %recording.id, file = f.file, bytes, before = stored_bytes.unwrap_or(0), "stored the rest of a file another node had finished from its parts");
        let stored = StoredFile {
            file: f.file,
            publication_id: f.publication_id,
            started_at_ms: f.started_at_ms,
            bytes,
            fragments: Some(
                spool
                    .next_seq()
                    .saturating_sub(1 + u64::from(spool.is_finished())),
            ),
            indexed: spool.is_finished(),
        };
        let entry = manifest_entry(&recording.id, &stored, f.encryption_key_id.as_ref());
        match files.iter_mut().find(|e| e["file"] == f.file) {
            Some(listed) => *listed = entry,
            None => files.push(entry),
        }
        restored += 1;
    }
    if restored > 0 {
        // An added file may have started before the others.
        let started = manifest["startedAt"]
            .as_i64()
            .or(recording.started_at_ms)
            .unwrap_or_default();
        if let Some(files) = manifest["files"].as_array_mut() {
            manifest["startedAt"] = align_offsets(files, started).into();
        }
        app.storage
            .put(&manifest_key, serde_json::to_vec_pretty(&manifest)?)
            .await?;
    }
    let spool = app.storage.spool_dir_of(&recording.id);
    tokio::fs::remove_dir_all(&spool).await?;
    Ok(())
}
