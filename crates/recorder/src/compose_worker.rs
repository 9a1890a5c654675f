//! Composition on a thread of its own. Decoding every source, drawing the picture and encoding
//! it once costs far more than receiving the media: run beside the network intake, on its
//! thread, a composition that falls behind would stop the recorder reading its sockets, and
//! once their buffers filled the kernel would drop what the participants sent. Here the intake
//! hands each piece of encoded media over and goes back to its sockets; the worker runs a
//! [`ComposedRecording`] through the same calls in the same order, so the file is byte for byte
//! the one the recording would make inline, only later when the machine is loaded.
//!
//! What waits for the worker is bounded ([`MAX_QUEUED_BYTES`]); past it media is dropped and
//! counted, never the memory of the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use convrec_compose::compositor::{SourceId, SourceKind};
use convrec_compose::recording::{ComposeError, ComposedRecording, RecordingConfig};

/// At most this much encoded media waits for the worker (at 8 Mbit/s of sources, over four
/// minutes of falling behind); beyond it incoming media is dropped and counted.
pub const MAX_QUEUED_BYTES: usize = 256 << 20;

/// A call for the worker's [`ComposedRecording`].
enum Command {
    Add {
        id: SourceId,
        kind: SourceKind,
        name: String,
        audio: bool,
        video: bool,
    },
    Remove(SourceId),
    Video(SourceId, u64, Vec<u8>),
    Audio(SourceId, u64, Vec<u8>),
    Advance(u64),
    Finish,
}

/// What the composition lost on its way, counted by the worker (see [`ComposedRecording`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Input packets a decoder refused.
    pub broken_packets: u64,
    /// Decoded pictures dropped unshown.
    pub dropped_pictures: u64,
    /// Sound samples that came for a stretch already mixed.
    pub dropped_late_samples: u64,
}

/// Something the worker produced, in the order it happened.
#[derive(Debug)]
pub enum WorkerOutput {
    /// The next block of the file.
    Block(Vec<u8>),
    /// An encoder, a source's decoder or the writer refused; composition went on without it.
    Error(ComposeError),
    /// The file is complete (every block came before this), or could not be completed.
    Finished(Result<(), ComposeError>, Counters),
}

/// Why the worker is gone.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The recording could not be set up.
    #[error(transparent)]
    Compose(#[from] ComposeError),
    /// The thread could not be started.
    #[error("cannot start the composition thread: {0}")]
    Spawn(#[from] std::io::Error),
    /// The thread ended without finishing the file (it panicked).
    #[error("the composition thread stopped before the file was finished")]
    Stopped,
}

/// A [`ComposedRecording`] running on its own thread. See the [module docs](self).
#[derive(Debug)]
pub struct ComposeWorker {
    commands: mpsc::Sender<Command>,
    reports: mpsc::Receiver<WorkerOutput>,
    /// Bytes of media sent and not yet taken by the worker.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    dropped_bytes: u64,
}

impl ComposeWorker {
    /// Starts the thread, which sets up the recording; its error, if it fails, is returned.
    /// At most `max_queued_bytes` of media wait for it (normally [`MAX_QUEUED_BYTES`]).
    pub fn spawn(config: RecordingConfig, max_queued_bytes: usize) -> Result<Self, WorkerError> {
        let (commands, command_rx) = mpsc::channel();
        let (report_tx, reports) = mpsc::channel();
        let (setup_tx, setup_rx) = mpsc::sync_channel(1);
        let queued = Arc::new(AtomicUsize::new(0));
        let taken = Arc::clone(&queued);
        std::thread::Builder::new()
            .name("compose".into())
            .spawn(move || match ComposedRecording::new(config) {
                Ok(recording) => {
                    // The receiver waits for this very message.
                    let _ = setup_tx.send(Ok(()));
                    run(recording, &command_rx, &report_tx, &taken);
                }
                Err(e) => {
                    let _ = setup_tx.send(Err(e));
                }
            })?;
        setup_rx.recv().map_err(|_| WorkerError::Stopped)??;
        Ok(Self {
            commands,
            reports,
            queued,
            max_queued: max_queued_bytes,
            dropped_bytes: 0,
        })
    }

    /// A source joins (see [`ComposedRecording::add_source`]).
    pub fn add_source(
        &mut self,
        id: SourceId,
        kind: SourceKind,
        name: &str,
        audio: bool,
        video: bool,
    ) {
        self.submit(Command::Add {
            id,
            kind,
            name: name.to_owned(),
            audio,
            video,
        });
    }

    /// A source leaves (see [`ComposedRecording::remove_source`]).
    pub fn remove_source(&mut self, id: SourceId) {
        self.submit(Command::Remove(id));
    }

    /// An H.264 access unit (see [`ComposedRecording::handle_video`]).
    pub fn handle_video(&mut self, id: SourceId, at: u64, access_unit: Vec<u8>) {
        self.submit(Command::Video(id, at, access_unit));
    }

    /// An Opus packet (see [`ComposedRecording::handle_audio`]).
    pub fn handle_audio(&mut self, id: SourceId, at: u64, packet: Vec<u8>) {
        self.submit(Command::Audio(id, at, packet));
    }

    /// Composes everything due until `now` (see [`ComposedRecording::advance`]).
    pub fn advance(&mut self, now: u64) {
        self.submit(Command::Advance(now));
    }

    /// Ends the file; [`WorkerOutput::Finished`] follows its last block.
    pub fn finish(&mut self) {
        self.submit(Command::Finish);
    }

    /// What the worker has produced so far, one at a time; `Err` once the thread is gone
    /// without having finished the file.
    pub fn poll(&mut self) -> Result<Option<WorkerOutput>, WorkerError> {
        match self.reports.try_recv() {
            Ok(output) => Ok(Some(output)),
            Err(mpsc::TryRecvError::Empty) => Ok(None),
            Err(mpsc::TryRecvError::Disconnected) => Err(WorkerError::Stopped),
        }
    }

    /// Bytes of media dropped because too much waited for the worker.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    /// Hands a call to the worker, unless it is media and too much already waits.
    fn submit(&mut self, command: Command) {
        let len = command.media_len();
        if len > 0 && self.queued.load(Ordering::Relaxed) + len > self.max_queued {
            if self.dropped_bytes == 0 {
                tracing::warn!(
                    limit = self.max_queued,
                    "composition is so far behind that incoming media is dropped"
                );
            }
            self.dropped_bytes += len as u64;
            return;
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        // A thread that is gone is reported by `poll`.
        let _ = self.commands.send(command);
    }
}

impl Command {
    /// Bytes of encoded media the call carries.
    fn media_len(&self) -> usize {
        match self {
            Command::Video(_, _, data) | Command::Audio(_, _, data) => data.len(),
            _ => 0,
        }
    }
}

/// The worker's loop: every command in order, every output handed back as it comes. It ends
/// when the file is finished, or when nobody listens any more.
fn run(
    mut recording: ComposedRecording,
    commands: &mpsc::Receiver<Command>,
    reports: &mpsc::Sender<WorkerOutput>,
    queued: &AtomicUsize,
) {
    while let Ok(command) = commands.recv() {
        let len = command.media_len();
        let finishing = matches!(command, Command::Finish);
        let result = apply(&mut recording, command);
        queued.fetch_sub(len, Ordering::Relaxed);
        if finishing {
            if hand_back(&mut recording, reports).is_ok() {
                let counters = Counters {
                    broken_packets: recording.broken_packets(),
                    dropped_pictures: recording.dropped_pictures(),
                    dropped_late_samples: recording.dropped_late_samples(),
                };
                let _ = reports.send(WorkerOutput::Finished(result, counters));
            }
            return;
        }
        let reported = match result {
            Ok(()) => Ok(()),
            Err(e) => reports.send(WorkerOutput::Error(e)),
        };
        if reported
            .and_then(|()| hand_back(&mut recording, reports))
            .is_err()
        {
            return;
        }
    }
}

/// Makes one call on the recording; `Err` is a source that could not be added, or a file that
/// could not be finished.
fn apply(recording: &mut ComposedRecording, command: Command) -> Result<(), ComposeError> {
    match command {
        Command::Add {
            id,
            kind,
            name,
            audio,
            video,
        } => return recording.add_source(id, kind, &name, audio, video),
        Command::Remove(id) => recording.remove_source(id),
        Command::Video(id, at, data) => recording.handle_video(id, at, &data),
        Command::Audio(id, at, data) => recording.handle_audio(id, at, &data),
        Command::Advance(now) => recording.advance(now),
        Command::Finish => return recording.finish(),
    }
    Ok(())
}

/// Sends the recording's errors and blocks back; `Err` when nobody listens.
fn hand_back(
    recording: &mut ComposedRecording,
    reports: &mpsc::Sender<WorkerOutput>,
) -> Result<(), mpsc::SendError<WorkerOutput>> {
    while let Some(error) = recording.poll_error() {
        reports.send(WorkerOutput::Error(error))?;
    }
    while let Some(output) = recording.poll_output() {
        reports.send(WorkerOutput::Block(output.bytes().to_vec()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use convrec_compose::codec::{H264Encoder, OPUS_FRAME, OpusEncoder};
    use convrec_compose::layout::Canvas;
    use convrec_compose::picture::{Color, Picture};
    use convrec_compose::recording::VideoConfig;

    use super::*;

    const CONFIG: RecordingConfig = RecordingConfig {
        video: Some(VideoConfig {
            canvas: Canvas {
                width: 320,
                height: 240,
            },
            fps: 15,
            bitrate: 400_000,
            key_interval: Duration::from_secs(1),
        }),
        audio_bitrate: 32_000,
        creation_unix_secs: 0,
    };

    /// What a recorder hands its composition: a camera (a picture that changes colour every
    /// frame, 30 fps) with its sound (a tone in 20 ms packets), and an advance every 100 ms.
    fn commands(seconds: u64) -> Vec<Command> {
        let mut video = H264Encoder::new(160, 120, 30, 300_000).unwrap();
        let mut audio = OpusEncoder::new(32_000).unwrap();
        let mut out = vec![Command::Add {
            id: 1,
            kind: SourceKind::Camera,
            name: "camera".into(),
            audio: true,
            video: true,
        }];
        let mut audio_at = 0;
        for frame in 0..seconds * 30 {
            let at = frame * 1_000_000 / 30;
            let shade = (frame * 8 % 256) as u8;
            let picture = Picture::filled(160, 120, Color::rgb(shade, 255 - shade, 90));
            out.push(Command::Video(
                1,
                at,
                video.encode(&picture, frame == 0).unwrap(),
            ));
            while audio_at <= at {
                let pcm: Vec<f32> = (0..OPUS_FRAME)
                    .map(|i| (i as f32 * 0.0576).sin() * 0.3)
                    .collect();
                out.push(Command::Audio(1, audio_at, audio.encode(&pcm).unwrap()));
                audio_at += 20_000;
            }
            if frame % 3 == 2 {
                out.push(Command::Advance(at.saturating_sub(200_000)));
            }
        }
        out.push(Command::Advance(seconds * 1_000_000));
        out.push(Command::Finish);
        out
    }

    /// The file the recording makes when called inline, as it did before the worker.
    fn inline_file(commands: Vec<Command>) -> Vec<u8> {
        let mut recording = ComposedRecording::new(CONFIG).unwrap();
        let mut file = Vec::new();
        for command in commands {
            apply(&mut recording, command).unwrap();
            while let Some(output) = recording.poll_output() {
                file.extend_from_slice(output.bytes());
            }
        }
        file
    }

    /// Sends `commands` to `worker` without waiting, then collects its file.
    fn worker_file(mut worker: ComposeWorker, commands: Vec<Command>) -> (Vec<u8>, Counters) {
        for command in commands {
            worker.submit(command);
        }
        // Only a hang guard: composing these seconds takes well under one.
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut file = Vec::new();
        while Instant::now() < deadline {
            match worker.poll().unwrap() {
                Some(WorkerOutput::Block(bytes)) => file.extend_from_slice(&bytes),
                Some(WorkerOutput::Error(e)) => panic!("composition failed: {e}"),
                Some(WorkerOutput::Finished(result, counters)) => {
                    result.unwrap();
                    return (file, counters);
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        panic!("the worker did not finish the file");
    }

    #[test]
    fn the_worker_makes_the_very_file_the_recording_makes_inline() {
        let inline = inline_file(commands(3));
        let worker = ComposeWorker::spawn(CONFIG, MAX_QUEUED_BYTES).unwrap();
        // Everything is sent at once, as from a recorder whose composition is far behind.
        let (threaded, counters) = worker_file(worker, commands(3));
        assert!(inline.len() > 10_000, "a real file: {} bytes", inline.len());
        assert!(
            threaded == inline,
            "the worker's file ({} bytes) differs from the inline one ({} bytes)",
            threaded.len(),
            inline.len()
        );
        assert_eq!(counters, Counters::default(), "nothing was lost");
    }

    #[test]
    fn media_past_the_queue_bound_is_dropped_and_counted() {
        let commands = commands(1);
        let media: usize = commands.iter().map(Command::media_len).sum();
        // A bound of one byte: no packet fits, so all are dropped, whatever the thread does.
        let mut worker = ComposeWorker::spawn(CONFIG, 1).unwrap();
        for command in commands {
            worker.submit(command);
        }
        assert_eq!(worker.dropped_bytes(), media as u64);
    }
}
