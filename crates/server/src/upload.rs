//! Streaming a file into the object store while it is recorded: each time the spool holds a
//! whole part more of durable bytes, that part goes up (a multipart upload, parts of
//! [`UploadSettings::part_size`]); when the file is finished, the rest goes as the last part
//! and the upload is completed. The upload id and the parts the store took are kept in the
//! database as they happen, so after a crash the node resumes the upload where it was and the
//! object ends up holding every acknowledged byte.
//!
//! The store may be away for a while: a part that fails is retried (1 s, 2 s, … up to 30 s)
//! for as long as it takes, while the spool keeps everything. The bytes waiting are the upload
//! backlog (`convrec_upload_backlog_bytes`); past [`UploadSettings::max_backlog`] the server
//! refuses new blocks, which ends the recording as `ABORT_BLOBSTORE_FAILURE` with what it
//! acknowledged still in the spool, stored once the store is back.
//!
//! What to send next is decided by [`PartPlan`], which does no I/O.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use convrec_store::metadata::{FileUpload, UploadedPart};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

use crate::AppState;
use crate::retry::{IsNotFound, retry_until};

/// How parts are cut and how much may wait for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadSettings {
    /// Bytes of every part but a file's last (S3 takes 5 MiB to 5 GiB; 10,000 parts at most,
    /// so 8 MiB parts allow files of 78 GiB).
    pub part_size: u64,
    /// Bytes durable in the spool but not yet in the store, over all files, past which new
    /// blocks are refused.
    pub max_backlog: u64,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            part_size: 8 << 20,
            max_backlog: 4 << 30,
        }
    }
}

/// The smallest part S3 takes (but for the last).
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// How long a spool file is and whether it is finished (nothing more will be appended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Durable bytes.
    pub durable: u64,
    /// No more bytes come.
    pub finished: bool,
}

/// What to do next for a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send a part of the bytes `available`: from their start to the first block boundary at
    /// least a part's size on (see [`part_end`]), or all of them.
    Part {
        /// The part's number.
        number: u32,
        /// The durable bytes not sent yet.
        available: Range<u64>,
    },
    /// Every byte was sent: complete the upload (with no parts: there is nothing to store).
    Complete,
    /// The spool is shorter than what was sent (it was lost or cut): start the upload over.
    StartOver,
    /// Nothing until the file grows or finishes.
    Wait,
}

/// Which parts of a file the store has. Parts are at least `part_size` long (but for the
/// last) and end on block boundaries, so the parts stored so far always make a playable file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartPlan {
    part_size: u64,
    parts: u64,
    sent_end: u64,
}

impl PartPlan {
    /// A plan whose parts sent so far end at `ends` (in order).
    pub fn new(part_size: u64, ends: impl IntoIterator<Item = u64>) -> Self {
        let (mut parts, mut sent_end) = (0, 0);
        for end in ends {
            parts += 1;
            sent_end = end;
        }
        Self {
            part_size: part_size.max(1),
            parts,
            sent_end,
        }
    }

    /// The parts sent.
    pub fn parts(&self) -> u64 {
        self.parts
    }

    /// A part that ends at byte `end` was sent.
    pub fn sent(&mut self, end: u64) {
        self.parts += 1;
        self.sent_end = end;
    }

    /// Bytes of a file of `durable` bytes that the store has.
    pub fn sent_bytes(&self, durable: u64) -> u64 {
        self.sent_end.min(durable)
    }

    /// What to do for a file that is at `progress`.
    pub fn next(&self, progress: Progress) -> Next {
        let Progress { durable, finished } = progress;
        if durable < self.sent_end {
            return Next::StartOver;
        }
        let number = u32::try_from(self.parts).unwrap_or(u32::MAX);
        let available = self.sent_end..durable;
        if durable - self.sent_end >= self.part_size || (finished && durable > self.sent_end) {
            Next::Part { number, available }
        } else if finished {
            Next::Complete
        } else {
            Next::Wait
        }
    }

    /// Where the part of [`Next::Part`] ends, given the boxes of the file from its start on
    /// (see [`part_end`]).
    pub fn part_end(
        &self,
        available: Range<u64>,
        boxes: impl FnMut(u64) -> Option<(u64, [u8; 4])>,
    ) -> u64 {
        part_end(available, self.part_size, boxes)
    }
}

/// Where a part of the bytes `available` ends: at the first block boundary (the start of a
/// `moof` or `mfra` box, or of a sealed file's `cvrc` chunk) at least `part_size` bytes on, or at `available.end` (the spool's
/// durable end is always a block boundary). `box_at(offset)` tells the length and type of the
/// box at an offset; a box that cannot be read cuts the part at `part_size` (a file the plan
/// cannot walk is still uploaded whole, just not at block boundaries).
pub fn part_end(
    available: Range<u64>,
    part_size: u64,
    mut box_at: impl FnMut(u64) -> Option<(u64, [u8; 4])>,
) -> u64 {
    let wanted = available.start.saturating_add(part_size);
    if wanted >= available.end {
        return available.end;
    }
    let mut at = available.start;
    while at < available.end {
        let Some((length, kind)) = box_at(at) else {
            return wanted;
        };
        if at >= wanted && (&kind == b"moof" || &kind == b"mfra" || kind == convrec_seal::CHUNK_BOX)
        {
            return at;
        }
        if length < 8 {
            return wanted;
        }
        at = at.saturating_add(length);
    }
    available.end
}

/// Why a file's upload stopped without completing.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The recording's connection went away before the file was finished (a server stopping):
    /// the upload stays open, to be resumed by the next start.
    #[error("the upload was interrupted before the file was finished")]
    Interrupted,
    /// The spool file could not be read.
    #[error("cannot read the spool: {0}")]
    Spool(std::io::Error),
    /// The store never ended up with the whole file, upload after upload.
    #[error("the object store did not keep the file whole after {0} uploads")]
    NotKept(u32),
}

/// Uploads of a file started over before its upload fails.
const MAX_START_OVERS: u32 = 3;

/// The upload of one file, running as a task of its own while the file is written.
pub struct Uploader {
    progress: watch::Sender<Progress>,
    task: tokio::task::JoinHandle<Result<u64, UploadError>>,
    abandon: tokio_util::sync::CancellationToken,
    waiting: Arc<Waiting>,
}

/// What an upload is of.
#[derive(Debug, Clone)]
pub struct UploadTarget {
    /// The recording.
    pub recording_id: String,
    /// The file's number.
    pub file: u32,
    /// The object it becomes.
    pub object_key: String,
    /// The spool file.
    pub spool: PathBuf,
}

impl UploadTarget {
    /// File `file` of recording `recording_id`: its object key and spool path.
    pub fn of(app: &AppState, recording_id: &str, file: u32) -> Self {
        Self {
            recording_id: recording_id.to_owned(),
            file,
            object_key: crate::storage::object_key(recording_id, file),
            spool: app.storage.spool_path(recording_id, file),
        }
    }
}

impl Uploader {
    /// Starts uploading `target` (resuming `resume`, an upload the database kept for it), which
    /// holds `progress` now.
    pub fn start(
        app: &AppState,
        target: UploadTarget,
        resume: Option<FileUpload>,
        progress: Progress,
    ) -> Self {
        let plan = match &resume {
            Some(u) => PartPlan::new(u.part_size, u.parts.iter().map(|p| p.end)),
            None => PartPlan::new(app.upload_settings.part_size, []),
        };
        let waiting = Arc::new(Waiting {
            gauge: app.metrics.upload_backlog_bytes.clone(),
            bytes: Mutex::new(Some(0)),
        });
        waiting.add(progress.durable - plan.sent_bytes(progress.durable));
        let (sender, receiver) = watch::channel(progress);
        let abandon = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(run(
            app.clone(),
            target,
            resume.map(|u| (u, plan)),
            receiver,
            abandon.clone(),
            waiting.clone(),
        ));
        Self {
            progress: sender,
            task,
            abandon,
            waiting,
        }
    }

    /// The spool file has `durable` bytes now.
    pub fn grew(&self, durable: u64) {
        self.progress.send_modify(|p| {
            self.waiting.add(durable.saturating_sub(p.durable));
            p.durable = durable;
        });
    }

    /// The file is finished at `durable` bytes: sends the rest, completes the upload and
    /// returns the object's size (0: the file was empty and nothing was stored).
    pub async fn finish(self, durable: u64) -> Result<u64, UploadError> {
        self.grew(durable);
        self.progress.send_modify(|p| p.finished = true);
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(UploadError::Spool(std::io::Error::other(e.to_string()))),
        }
    }

    /// The file will never be stored: its upload is aborted.
    pub fn abandon(self) {
        self.abandon.cancel();
    }
}

/// A file's bytes that wait for the store, counted in the backlog gauge as the file grows
/// and as parts go up; closing takes the rest out (the upload ended either way).
struct Waiting {
    gauge: prometheus_client::metrics::gauge::Gauge,
    /// `None` once closed.
    bytes: Mutex<Option<u64>>,
}

impl Waiting {
    fn add(&self, n: u64) {
        let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = bytes.as_mut() {
            *b += n;
            self.gauge.inc_by(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    fn sub(&self, n: u64) {
        let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = bytes.as_mut() {
            let n = n.min(*b);
            *b -= n;
            self.gauge.dec_by(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    fn close(&self) {
        let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = bytes.take() {
            self.gauge.dec_by(i64::try_from(b).unwrap_or(i64::MAX));
        }
    }
}

/// Closes a file's count however its task ends.
struct CloseOnDrop(Arc<Waiting>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

async fn run(
    app: AppState,
    target: UploadTarget,
    resume: Option<(FileUpload, PartPlan)>,
    mut progress: watch::Receiver<Progress>,
    abandon: tokio_util::sync::CancellationToken,
    waiting: Arc<Waiting>,
) -> Result<u64, UploadError> {
    let _close = CloseOnDrop(waiting.clone());
    let (mut upload, mut plan) = match resume {
        Some((u, plan)) => (Some(u), plan),
        None => (None, PartPlan::new(app.upload_settings.part_size, [])),
    };
    let mut start_overs = 0;
    // Uploading the file again from its first byte: the old upload goes, and what it had
    // sent waits again.
    let start_over = async |start_overs: &mut u32,
                            old: Option<FileUpload>,
                            plan: &PartPlan,
                            durable: u64|
           -> Result<PartPlan, UploadError> {
        if let Some(u) = old {
            drop_upload(&app, &target, &u).await;
        }
        *start_overs += 1;
        if *start_overs > MAX_START_OVERS {
            return Err(UploadError::NotKept(*start_overs));
        }
        waiting.add(plan.sent_bytes(durable));
        Ok(PartPlan::new(app.upload_settings.part_size, []))
    };
    loop {
        let now = *progress.borrow_and_update();
        if abandon.is_cancelled() {
            if let Some(u) = upload.take() {
                drop_upload(&app, &target, &u).await;
            }
            return Err(UploadError::Interrupted);
        }
        match plan.next(now) {
            Next::Wait => {
                tokio::select! {
                    changed = progress.changed() => if changed.is_err() {
                        // The connection and the recording let go of the file unfinished
                        // (a server stopping): the next start resumes it.
                        return Err(UploadError::Interrupted);
                    },
                    () = abandon.cancelled() => {}
                }
            }
            Next::StartOver => {
                tracing::warn!(recording = %target.recording_id, file = target.file, "the spool is shorter than what was uploaded; uploading the file again");
                plan = start_over(&mut start_overs, upload.take(), &plan, now.durable).await?;
            }
            Next::Part { number, available } => {
                // A spool that cannot be read for a while (EIO, EMFILE) delays the file; its
                // upload ends only when the server stops (the next start resumes it).
                let reading = retry_until(
                    "read the spool",
                    Some(&app.shutdown),
                    || {},
                    || read_part(&plan, &target.spool, available.clone()),
                );
                let (range, bytes) = tokio::select! {
                    read = reading => read.map_err(UploadError::Spool)?,
                    () = abandon.cancelled() => continue,
                };
                let opened = match upload.take() {
                    Some(u) => u,
                    None => open(&app, &target, plan.part_size).await,
                };
                let storing = retrying(&app, "store a part", || {
                    app.storage.put_part(
                        &target.object_key,
                        &opened.upload_id,
                        number,
                        bytes.clone(),
                    )
                });
                // A file given up on stops waiting for a store that does not answer.
                let sent = tokio::select! {
                    sent = storing => sent,
                    () = abandon.cancelled() => {
                        drop_upload(&app, &target, &opened).await;
                        return Err(UploadError::Interrupted);
                    }
                };
                match sent {
                    Ok(content_id) => {
                        let taken = UploadedPart {
                            content_id,
                            end: range.end,
                        };
                        retrying(&app, "record a part", || {
                            app.metadata.add_file_upload_part(
                                &target.recording_id,
                                target.file,
                                &opened.upload_id,
                                number,
                                &taken,
                            )
                        })
                        .await
                        .ok();
                        let mut opened = opened;
                        opened.parts.push(taken);
                        upload = Some(opened);
                        plan.sent(range.end);
                        waiting.sub(range.end - range.start);
                        app.metrics.upload_parts.inc();
                    }
                    // The store lost the upload (it expired, or was aborted): start over.
                    Err(Gone) => {
                        tracing::warn!(recording = %target.recording_id, file = target.file, "the store no longer knows the upload; starting it over");
                        plan =
                            start_over(&mut start_overs, Some(opened), &plan, now.durable).await?;
                    }
                }
            }
            Next::Complete => {
                let Some(done) = upload.take() else {
                    return Ok(0);
                };
                // A failure here may mean it was completed already (the answer, or the
                // database's note of it, was lost in a crash): either way the object must now
                // hold the whole file, or the upload starts over.
                let _ = retrying(&app, "complete an upload", || {
                    app.storage
                        .complete_upload(&target.object_key, &done.upload_id, &done.parts)
                })
                .await;
                let size = retrying(&app, "read an object's size", || {
                    app.storage.object_size(&target.object_key)
                })
                .await
                .ok()
                .flatten();
                if size != Some(now.durable) {
                    tracing::warn!(recording = %target.recording_id, file = target.file, stored = ?size, durable = now.durable, "the stored object does not hold the file; uploading it again");
                    plan = start_over(&mut start_overs, Some(done), &plan, now.durable).await?;
                    continue;
                }
                retrying(&app, "forget a completed upload", || {
                    app.metadata
                        .close_file_upload(&target.recording_id, target.file)
                })
                .await
                .ok();
                return Ok(now.durable);
            }
        }
    }
}

/// Opens a new upload for the file and records it (retrying until both are done).
async fn open(app: &AppState, target: &UploadTarget, part_size: u64) -> FileUpload {
    loop {
        let id = retrying(app, "start an upload", || {
            app.storage.create_upload(&target.object_key)
        })
        .await;
        let Ok(upload_id) = id else {
            continue;
        };
        let upload = FileUpload {
            recording_id: target.recording_id.clone(),
            file: target.file,
            node_id: app.node_id.clone(),
            object_key: target.object_key.clone(),
            upload_id,
            part_size,
            parts: Vec::new(),
        };
        let recorded = retrying(app, "record an upload", || {
            app.metadata.open_file_upload(&upload, crate::now_ms())
        })
        .await;
        if recorded.is_ok() {
            return upload;
        }
    }
}

/// Makes the object of a file from the parts its upload stored so far, without its spool (which
/// is on a lost node): the object then ends where the last part ends, on a block boundary.
/// Returns its size; `None` if the store no longer has the upload or made a different object.
pub async fn store_parts(
    app: &AppState,
    target: &UploadTarget,
    upload: &FileUpload,
) -> Option<u64> {
    let end = upload.parts.last()?.end;
    // As in [`run`]: a failure may mean it was completed already; the size tells.
    let _ = retrying(app, "complete an upload", || {
        app.storage
            .complete_upload(&upload.object_key, &upload.upload_id, &upload.parts)
    })
    .await;
    let size = retrying(app, "read an object's size", || {
        app.storage.object_size(&upload.object_key)
    })
    .await
    .ok()
    .flatten();
    retrying(app, "forget a completed upload", || {
        app.metadata
            .close_file_upload(&target.recording_id, target.file)
    })
    .await
    .ok();
    (size == Some(end)).then_some(end)
}

/// Aborts an upload in the store and forgets it (a failure to abort is logged: the store's
/// lifecycle rule for incomplete uploads is the backstop, see docs/operations.md).
pub async fn drop_upload(app: &AppState, target: &UploadTarget, upload: &FileUpload) {
    if let Err(e) = app
        .storage
        .abort_upload(&upload.object_key, &upload.upload_id)
        .await
    {
        tracing::warn!(recording = %target.recording_id, file = target.file, error = %e, "cannot abort an upload");
    }
    if let Err(e) = app
        .metadata
        .close_file_upload(&target.recording_id, target.file)
        .await
    {
        tracing::warn!(recording = %target.recording_id, file = target.file, error = %e, "cannot forget an upload");
    }
}

/// The store said the upload is not there.
struct Gone;

/// Runs `step` until it succeeds, waiting 1 s, 2 s, … up to 30 s between tries; a "not found"
/// from the store ends the tries (the caller decides).
async fn retrying<T, E, F, Fut>(app: &AppState, what: &str, step: F) -> Result<T, Gone>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display + IsNotFound,
{
    let failed = || {
        app.metrics.upload_failures.inc();
    };
    retry_until(what, None, failed, step)
        .await
        .map_err(|_| Gone)
}

/// The bytes of the part that starts `available`, cut on a block boundary.
async fn cut_part(
    plan: &PartPlan,
    spool: &std::path::Path,
    available: Range<u64>,
) -> std::io::Result<Range<u64>> {
    let spool = spool.to_owned();
    let plan = plan.clone();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(&spool)?;
        let start = available.start;
        let end = plan.part_end(available, |at| {
            let mut header = [0u8; 16];
            file.read_exact_at(&mut header[..8], at).ok()?;
            let kind: [u8; 4] = header[4..8].try_into().ok()?;
            let length = match u32::from_be_bytes(header[..4].try_into().ok()?) {
                1 => {
                    file.read_exact_at(&mut header[8..], at + 8).ok()?;
                    u64::from_be_bytes(header[8..].try_into().ok()?)
                }
                n => u64::from(n),
            };
            Some((length, kind))
        });
        Ok(start..end)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The next part's range (cut by [`cut_part`]) and its bytes.
async fn read_part(
    plan: &PartPlan,
    spool: &std::path::Path,
    available: Range<u64>,
) -> std::io::Result<(Range<u64>, Bytes)> {
    let range = cut_part(plan, spool, available).await?;
    let bytes = read_range(spool, range.clone()).await?;
    Ok((range, bytes))
}

async fn read_range(path: &std::path::Path, range: Range<u64>) -> std::io::Result<Bytes> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(range.start)).await?;
    let length = usize::try_from(range.end - range.start).map_err(std::io::Error::other)?;
    let mut buffer = vec![0u8; length];
    file.read_exact(&mut buffer).await?;
    Ok(Bytes::from(buffer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(durable: u64, finished: bool) -> Progress {
        Progress { durable, finished }
    }

    /// A part of `available` cut where the plan says, with every offset a box boundary of
    /// `box_length` bytes (each box a `moof` when `moof`).
    fn cut(plan: &PartPlan, available: Range<u64>, box_length: u64) -> u64 {
        plan.part_end(available, |_| Some((box_length, *b"moof")))
    }

    #[test]
    fn parts_go_while_recording_and_the_rest_when_finished() {
        let mut plan = PartPlan::new(10, []);
        assert_eq!(plan.next(at(9, false)), Next::Wait);
        assert_eq!(
            plan.next(at(25, false)),
            Next::Part {
                number: 0,
                available: 0..25
            }
        );
        // Blocks of 8 bytes: the first boundary at least 10 bytes on is 16.
        assert_eq!(cut(&plan, 0..25, 8), 16);
        plan.sent(16);
        assert_eq!(plan.next(at(25, false)), Next::Wait);
        assert_eq!(plan.sent_bytes(25), 16);
        assert_eq!(
            plan.next(at(40, false)),
            Next::Part {
                number: 1,
                available: 16..40
            }
        );
        assert_eq!(cut(&plan, 16..40, 8), 32);
        plan.sent(32);
        assert_eq!(
            plan.next(at(35, true)),
            Next::Part {
                number: 2,
                available: 32..35
            }
        );
        // The last part is all that is left.
        assert_eq!(cut(&plan, 32..35, 8), 35);
        plan.sent(35);
        assert_eq!(plan.next(at(35, true)), Next::Complete);
    }

    #[test]
    fn parts_end_before_a_fragment_or_the_index_never_inside_a_block() {
        // ftyp 8, moov 12, moof 10, mdat 30, moof 10, mdat 30, mfra 8 (offsets 0, 8, 20, 30,
        // 60, 70, 100; the file ends at 108).
        let boxes: [(u64, &[u8; 4]); 7] = [
            (8, b"ftyp"),
            (12, b"moov"),
            (10, b"moof"),
            (30, b"mdat"),
            (10, b"moof"),
            (30, b"mdat"),
            (8, b"mfra"),
        ];
        let box_at = |at: u64| {
            let mut offset = 0;
            boxes.iter().find_map(|(length, kind)| {
                let here = offset;
                offset += length;
                (here == at).then_some((*length, **kind))
            })
        };
        assert_eq!(part_end(0..108, 5, box_at), 20);
        assert_eq!(part_end(0..108, 21, box_at), 60);
        assert_eq!(part_end(20..108, 41, box_at), 100);
        assert_eq!(part_end(60..108, 41, box_at), 108);
        // Unreadable boxes: cut at the part size.
        assert_eq!(part_end(0..108, 10, |_| None), 10);
        assert_eq!(part_end(0..108, 10, |_| Some((3, *b"junk"))), 10);
    }

    #[test]
    fn a_file_of_whole_parts_completes_without_an_empty_part() {
        let mut plan = PartPlan::new(10, []);
        plan.sent(10);
        plan.sent(20);
        assert_eq!(plan.next(at(20, true)), Next::Complete);
        assert_eq!(PartPlan::new(10, []).next(at(0, true)), Next::Complete);
    }

    #[test]
    fn a_resumed_plan_goes_on_from_its_parts_and_a_short_spool_starts_over() {
        // Two parts (to byte 23) were sent before a crash; the recovered spool holds 35 bytes.
        let plan = PartPlan::new(10, [11, 23]);
        assert_eq!(plan.parts(), 2);
        assert_eq!(
            plan.next(at(35, true)),
            Next::Part {
                number: 2,
                available: 23..35
            }
        );
        // The last part was sent before the crash, the completion was not.
        assert_eq!(
            PartPlan::new(10, [11, 23, 35]).next(at(35, true)),
            Next::Complete
        );
        // The spool holds less than the parts: it was cut, so the parts cannot be trusted.
        assert_eq!(plan.next(at(9, true)), Next::StartOver);
        assert_eq!(plan.next(at(19, false)), Next::StartOver);
    }

    #[test]
    fn parts_cover_every_byte_once_for_any_growth() {
        // Property: however a file grows and wherever its blocks end, the parts are
        // contiguous, all but the last at least a part long, and end at its length.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..500 {
            let part_size = 1 + convrec_testkit::xorshift64(&mut seed) % 16;
            let box_length = 1 + convrec_testkit::xorshift64(&mut seed) % 9;
            let mut plan = PartPlan::new(part_size, []);
            let (mut durable, mut covered) = (0u64, Vec::new());
            for step in 0..40 {
                durable += convrec_testkit::xorshift64(&mut seed) % 20;
                let finished = step == 39;
                loop {
                    match plan.next(at(durable, finished)) {
                        Next::Part { available, .. } => {
                            let end = cut(&plan, available.clone(), box_length);
                            assert!(end > available.start && end <= available.end);
                            covered.push(available.start..end);
                            plan.sent(end);
                        }
                        Next::Complete => {
                            assert!(finished);
                            break;
                        }
                        Next::Wait => {
                            assert!(!finished);
                            break;
                        }
                        Next::StartOver => panic!("never while growing"),
                    }
                }
            }
            let mut end = 0;
            for (i, range) in covered.iter().enumerate() {
                assert_eq!(range.start, end);
                if i + 1 < covered.len() {
                    assert!(range.end - range.start >= part_size);
                }
                end = range.end;
            }
            assert_eq!(end, durable);
        }
    }
}
