//! `convrec recorder`: the recorder process a server launches for one recording. Its one-time
//! entry point comes from `CONVREC_ENTRY_POINT`, never from the command line (where any user
//! of the machine could read it).

use std::process::ExitCode;

use anyhow::Context;

/// The environment variable with the entry point.
const ENTRY_POINT_ENV: &str = "CONVREC_ENTRY_POINT";

/// The environment variable with the server's `RECORDER` API key, when it requires one
/// (`conversation.recording.recordingApiKeyId`), e.g. from a cluster secret.
const RECORDER_KEY_ENV: &str = "CONVREC_RECORDER_API_KEY";

/// Arguments of `convrec recorder`: none; see the module docs.
#[derive(Debug, clap::Args)]
pub struct RecorderArgs {}

/// Runs the recorder until its recording is done.
pub fn run(_args: RecorderArgs) -> anyhow::Result<ExitCode> {
    let entry_point = std::env::var(ENTRY_POINT_ENV)
        .with_context(|| format!("{ENTRY_POINT_ENV} must hold the entry point the server gave"))?;
    // One thread is plenty for a passthrough recording, and keeps its footprint small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let recorder_key = std::env::var(RECORDER_KEY_ENV)
        .ok()
        .filter(|k| !k.is_empty());
    runtime.block_on(convrec_recorder::process::run(
        &entry_point,
        recorder_key.as_deref(),
    ))?;
    Ok(ExitCode::SUCCESS)
}
