//! How a recorder is started: a [`Launcher`] turns an entry point into a running recorder. The
//! default, [`LocalProcess`], runs `convrec recorder` as a child process with the entry point in
//! its environment (`CONVREC_ENTRY_POINT`, never on its command line, where `ps` would show it).
//! A cluster launcher (step 8) implements the same trait.

use std::path::PathBuf;
use std::process::Stdio;

/// The environment variable that carries the entry point.
pub const ENTRY_POINT_ENV: &str = "CONVREC_ENTRY_POINT";

/// Environment variables a recorder must never inherit: it holds no credentials but its entry
/// point.
const WITHHELD_ENV: &[&str] = &["CONVREC_BOOTSTRAP_ADMIN_KEY", "CONVREC_CONFIG"];

/// A started recorder.
pub trait RecorderProcess: Send {
    /// Stops it at once (a recorder that did not get ready in time, or a stuck one).
    fn kill(&mut self);
    /// Its operating-system process id, where there is one.
    fn pid(&self) -> Option<u32>;
}

/// Starts recorders.
pub trait Launcher: Send + Sync {
    /// Starts a recorder for `recording_id` that will join through `entry_point`.
    fn launch(
        &self,
        recording_id: &str,
        entry_point: &str,
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

struct Child(tokio::process::Child);

impl RecorderProcess for Child {
    fn kill(&mut self) {
        if let Err(e) = self.0.start_kill() {
            tracing::debug!(error = %e, "the recorder had exited already");
        }
    }
    fn pid(&self) -> Option<u32> {
        self.0.id()
    }
}

impl Launcher for LocalProcess {
    fn launch(
        &self,
        recording_id: &str,
        entry_point: &str,
    ) -> std::io::Result<Box<dyn RecorderProcess>> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg("recorder")
            .env(ENTRY_POINT_ENV, entry_point)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for name in WITHHELD_ENV {
            command.env_remove(name);
        }
        let child = command.spawn()?;
        tracing::info!(
            recording = recording_id,
            pid = child.id(),
            "recorder launched"
        );
        Ok(Box::new(Child(child)))
    }
}
