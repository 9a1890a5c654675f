//! Taking over a lost node's recordings (see [`crate::cluster`]): its calls and layers ended
//! with it, and each recording it ran is finished with end reason `ABORT_SYSTEM` from what
//! reached the object store: the parts its uploads had stored, which end on block boundaries
//! and so make a playable file. What the lost node had spooled but not yet uploaded stays in
//! its spool (see docs/operations.md, "Several nodes").

use convrec_store::metadata::{MetadataError, Recording};

use super::{FinishingGuard, StoredFile, announce_available, complete};
use crate::AppState;
use crate::upload::{UploadTarget, store_parts};

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
        tracing::warn!(recording = %recording.id, "a lost node's recording has nothing in the object store");
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
