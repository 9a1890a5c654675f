//! `convrec demo`: the main job on embedded defaults. It starts a server on a temporary (or
//! given) data directory, creates an account with recording enabled and a conversation, lets
//! synthetic participants talk over real WebRTC (optionally sharing a screen), ends the call,
//! waits for the recording, and shows its files and their `inspect` summaries.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use convrec_media::inspect::inspect;
use reqwest::Method;
use serde_json::{Value, json};

use super::api_client::ApiClient;
use super::local::{LocalDeployment, text};
use super::participant::{ParticipantArgs, participate, report_json};

/// How long the demo waits for the recorder to be ready, and for the files after the call.
const WAIT: Duration = Duration::from_secs(60);

/// Arguments of `convrec demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Synthetic participants in the call.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    participants: u32,
    /// Seconds they talk.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// The first participant also shares a screen.
    #[arg(long)]
    screen_share: bool,
    /// The video the participants send.
    #[arg(long, value_enum, default_value_t = super::fixtures::Video::Small)]
    video: super::fixtures::Video,
    /// COMPOSED (one file, one picture, one sound: the default) or RAW_TRACKS (a file per
    /// publication).
    #[arg(long, default_value = "COMPOSED", value_parser = ["COMPOSED", "RAW_TRACKS"])]
    layout: String,
    /// Data directory of the demo's server (default: a new directory under the system temp dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(demo(&args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Progress, on standard error so `--json` output stays clean.
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("demo: {}", format!($($arg)*)) };
}

async fn demo(args: &DemoArgs) -> anyhow::Result<Value> {
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!(
            "convrec-demo-{}-{}",
            std::process::id(),
            convrec_server::now_ms()
        )),
    };
    let deployment = LocalDeployment::start(data_dir.clone()).await?;
    let conversation = deployment
        .conversation(true, args.participants, &args.layout)
        .await?;
    let base = deployment.base.clone();
    let conversation_id = conversation.id.clone();
    let tokens = conversation.tokens.clone();
    progress!("server on {base}, data in {}", data_dir.display());

    // The recorder is this process's only child: watch what it uses.
    let (stop_sampling, sampling_stopped) = tokio::sync::oneshot::channel();
    let sampler = super::usage::sample_children(Duration::from_millis(100), sampling_stopped);

    // The agent starts the call; the recording starts with it.
    let started = Instant::now();
    let agent = ApiClient::new(&base, &tokens[0]);
    agent
        .json(
            Method::POST,
            &format!("/v1/conversations/{conversation_id}/calls"),
            Some(json!({ "type": "AUDIO_VIDEO" })),
        )
        .await?;
    wait_for_state(&agent, &conversation_id, &["READY", "STARTED"]).await?;
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    progress!("call started; the recorder was ready after {ready_ms:.0} ms");

    progress!(
        "{} participant(s) talk for {} s{}",
        args.participants,
        args.seconds,
        if args.screen_share {
            ", the first sharing a screen"
        } else {
            ""
        }
    );
    let talks = tokens.iter().enumerate().map(|(n, token)| {
        participate(ParticipantArgs {
            server: base.clone(),
            conversation: conversation_id.clone(),
            token: token.clone(),
            seconds: args.seconds,
            screen_share: args.screen_share && n == 0,
            video: args.video,
            reconnect_after: None,
        })
    });
    let reports = futures_util::future::try_join_all(talks).await?;
    progress!("everyone left; the call ended; waiting for the recording");

    let recordings = wait_for_recordings(&agent, &conversation_id).await?;
    let _ = stop_sampling.send(());
    let recorders: Vec<Value> = sampler
        .await?
        .into_iter()
        .map(|(pid, s)| {
            json!({
                "pid": pid,
                "cpuSeconds": s.usage.cpu_seconds,
                "sampledSeconds": s.last_seen.duration_since(s.first_seen).as_secs_f64(),
                "cpuPercentOfOneCore": s.cpu_share() * 100.0,
                "peakRssMiB": s.usage.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            })
        })
        .collect();
    for r in &recorders {
        progress!(
            "recorder {}: {:.1} % of one core, peak memory {:.1} MiB",
            r["pid"],
            r["cpuPercentOfOneCore"].as_f64().unwrap_or(0.0),
            r["peakRssMiB"].as_f64().unwrap_or(0.0)
        );
    }
    let mut out = Vec::new();
    for recording in &recordings {
        let id = text(recording, "id")?;
        let mut files = Vec::new();
        for file in recording["files"].as_array().into_iter().flatten() {
            let key = text(file, "objectKey")?;
            let path = data_dir.join("objects").join(&key);
            let report = inspect(
                std::fs::File::open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?,
            )
            .with_context(|| format!("{} is not a readable fMP4 file", path.display()))?;
            let duration = report
                .tracks
                .iter()
                .map(|t| t.duration_seconds)
                .fold(0.0, f64::max);
            if !args.json {
                println!("{}", path.display());
                print!("{}", super::inspect::summary(&report));
            }
            files.push(json!({
                "path": path,
                "publicationId": file["publicationId"],
                "durationSeconds": duration,
                "tracks": report.tracks,
            }));
        }
        let manifest = data_dir
            .join("objects")
            .join(convrec_server::storage::manifest_key(&id));
        if !args.json {
            println!("manifest: {}", manifest.display());
        }
        out.push(json!({
            "id": id,
            "status": recording["status"],
            "endReason": recording["endReason"],
            "manifest": manifest,
            "files": files,
        }));
    }
    deployment.shutdown().await?;
    Ok(json!({
        "dataDir": data_dir,
        "conversationId": conversation_id,
        "recorderReadyMs": ready_ms,
        "participants": reports.iter().map(report_json).collect::<Vec<_>>(),
        "recorders": recorders,
        "recordings": out,
    }))
}

async fn wait_for_state(
    api: &ApiClient,
    conversation_id: &str,
    states: &[&str],
) -> anyhow::Result<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let state = api
            .json(
                Method::POST,
                &format!("/v1/conversations/{conversation_id}/getRecordingState"),
                None,
            )
            .await?;
        let current = state["recordingState"].as_str().unwrap_or("");
        if states.contains(&current) {
            return Ok(current.to_owned());
        }
        if current == "FAILED" {
            bail!("the recording failed to start; see the log above");
        }
        if Instant::now() > deadline {
            bail!("the recording is still {current} after {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The recordings of a conversation, once every one is COMPLETE.
pub(super) async fn wait_for_recordings(
    api: &ApiClient,
    conversation_id: &str,
) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = api
            .json(
                Method::GET,
                &format!("/v1/conversationhistory/{conversation_id}/getConversationRecordings"),
                None,
            )
            .await?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() && items.iter().all(|r| r["status"] == "COMPLETE") {
            return Ok(items);
        }
        if Instant::now() > deadline {
            bail!("the recording is not complete after {WAIT:?}: {list}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
