//! How a recorder is started: a [`Launcher`] turns an entry point into a running recorder.
//! [`ProcessLauncher`] runs a child process with the entry point in its environment
//! (`CONVREC_ENTRY_POINT`, never on its command line, where `ps` would show it); of the
//! server's environment only `PATH`, `HOME`, locale and log settings pass, no secrets. By
//! default the child is `convrec recorder` itself; with a command template it is whatever the
//! operator's scheduler needs (`kubectl`, `docker run`, `systemd-run`, `ssh`…), and the child's
//! exit stands for the recorder's.

use std::path::PathBuf;
use std::process::Stdio;

/// The environment variable that carries the entry point.
pub const ENTRY_POINT_ENV: &str = "CONVREC_ENTRY_POINT";
/// The environment variable that carries the recording's id (for naming jobs).
pub const RECORDING_ID_ENV: &str = "CONVREC_RECORDING_ID";
/// For command templates: the `convrec` binary of the server, to run a recorder locally.
pub const PROGRAM_ENV: &str = "CONVREC_PROGRAM";

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
    // Where a command template's cluster client finds its cluster (addresses, no secrets).
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "KUBECONFIG",
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

/// Starts each recorder as a child process: `convrec recorder` itself, or a command template.
#[derive(Debug, Clone)]
pub struct ProcessLauncher {
    program: PathBuf,
    args: Vec<String>,
    /// The `convrec` binary, given to command templates as [`PROGRAM_ENV`].
    convrec: PathBuf,
}

impl ProcessLauncher {
    /// Runs `program recorder` (`program` is the `convrec` binary).
    pub fn local(program: PathBuf) -> Self {
        Self {
            program: program.clone(),
            args: vec!["recorder".to_owned()],
            convrec: program,
        }
    }

    /// Runs `/bin/sh -c template` with [`ENTRY_POINT_ENV`], [`RECORDING_ID_ENV`] and
    /// [`PROGRAM_ENV`] (`convrec`) in its environment. The command must last as long as the
    /// recorder (a scheduler's "run and wait" form: `kubectl run --attach --rm`,
    /// `systemd-run --wait`, `docker run`): its exit is taken for the recorder's, and stopping
    /// a recorder kills it.
    pub fn command(template: &str, convrec: PathBuf) -> Self {
        Self {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".to_owned(), template.to_owned()],
            convrec,
        }
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

impl Launcher for ProcessLauncher {
    fn launch(
        &self,
        recording_id: &str,
        entry_point: &str,
        on_exit: OnExit,
    ) -> std::io::Result<Box<dyn RecorderProcess>> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command.env_clear();
        for name in PASSED_ENV {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .env(ENTRY_POINT_ENV, entry_point)
            .env(RECORDING_ID_ENV, recording_id)
            .env(PROGRAM_ENV, &self.convrec);
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
