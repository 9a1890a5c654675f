//! How a recorder is started: a [`Launcher`] turns an entry point into a running recorder. The
//! default, [`LocalProcess`], runs `convrec recorder` as a child process with the entry point in
//! its environment (`CONVREC_ENTRY_POINT`, never on its command line, where `ps` would show it);
//! of the server's environment only `PATH`, `HOME`, locale and log settings pass, no secrets.
//! A cluster launcher (step 8) implements the same trait.

use std::path::PathBuf;
use std::process::Stdio;

/// The environment variable that carries the entry point.
pub const ENTRY_POINT_ENV: &str = "CONVREC_ENTRY_POINT";

/// The only environment variables a recorder inherits: it holds no credentials (no storage
/// keys, no admin key) but its entry point and, when configured, its recorder key.
const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "TZ",
    "LANG",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "CONVREC_RECORDER_API_KEY",
];

/// A started recorder.
pub trait RecorderProcess: Send {
    /// Stops it at once (a recorder that did not get ready in time, or a stuck one).
    fn kill(&mut self);
    /// Its operating-system process id, where there is one.
    fn pid(&self) -> Option<u32>;
}

/// Called once when a launched recorder exits (with a description of how).
pub type OnExit = Box<dyn FnOnce(String) + Send>;

/// Starts recorders.
pub trait Launcher: Send + Sync {
    /// Starts a recorder for `recording_id` that will join through `entry_point`; `on_exit`
    /// runs when it exits, so a recorder that dies before it connects is noticed at once.
    fn launch(
        &self,
        recording_id: &str,
        entry_point: &str,
        on_exit: OnExit,
    ) -> std::io::Result<Box<dyn RecorderProcess>>;
}

/// Runs `PROGRAM recorder` as a local child process.
#[derive(Debug, Clone)]
pub struct LocalProcess {
    program: PathBuf,
}

impl LocalProcess {
    /// Launches `program` (the `convrec` binary).
    pub fn new(program: PathBuf) -> Self {
        Self { program }
    }
}

/// A child process, watched by a task that reaps it and kills it when asked.
struct Child {
    pid: Option<u32>,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RecorderProcess for Child {
    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
    fn pid(&self) -> Option<u32> {
        self.pid
    }
}

impl Launcher for LocalProcess {
    fn launch(
        &self,
        recording_id: &str,
        entry_point: &str,
        on_exit: OnExit,
    ) -> std::io::Result<Box<dyn RecorderProcess>> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg("recorder")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command.env_clear();
        for name in PASSED_ENV {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command.env(ENTRY_POINT_ENV, entry_point);
        let mut child = command.spawn()?;
        let pid = child.id();
        tracing::info!(recording = recording_id, pid, "recorder launched");
        let (kill, mut killed) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                Ok(()) = &mut killed => {
                    if let Err(e) = child.start_kill() {
                        tracing::debug!(error = %e, "the recorder had exited already");
                    }
                    child.wait().await
                }
            };
            let how = match status {
                Ok(status) => status.to_string(),
                Err(e) => format!("unknown ({e})"),
            };
            on_exit(how);
        });
        Ok(Box::new(Child {
            pid,
            kill: Some(kill),
        }))
    }
}
