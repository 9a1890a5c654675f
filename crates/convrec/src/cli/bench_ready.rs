//! `convrec bench-ready`: how long from a call's start until its recorder is ready (SPEC §4:
//! connected and subscribed to every publication), measured from the client's side: the time
//! between sending `POST …/calls` and receiving the `READY` recording state on the
//! conversation's event stream. Baseline in the same run: starting and ending this binary
//! (`convrec --version`), the floor any launched recorder pays.

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use super::api_client::ApiClient;
use super::local::{LocalDeployment, text};

/// Arguments of `convrec bench-ready`.
#[derive(Debug, clap::Args)]
pub struct BenchReadyArgs {
    /// Calls to start, one after another.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
}

/// Runs the benchmark and prints one JSON object.
pub fn run(args: BenchReadyArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(bench(args.runs))?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(ExitCode::SUCCESS)
}

async fn bench(runs: u32) -> anyhow::Result<Value> {
    let data_dir = tempfile_dir()?;
    let deployment = LocalDeployment::start(data_dir.clone(), 1).await?;
    let agent = ApiClient::new(&deployment.base, &deployment.tokens[0]);
    let conversation = deployment.conversation_id.clone();
    let http = reqwest::Client::new();
    let mut ready = Vec::new();
    for _ in 0..runs {
        let events = http
            .get(format!(
                "{}/v1/conversations/{conversation}/events",
                deployment.base
            ))
            .bearer_auth(&deployment.tokens[0])
            .send()
            .await?;
        let mut lines = sse_data(events);
        let sent = Instant::now();
        let call = agent
            .json(
                Method::POST,
                &format!("/v1/conversations/{conversation}/calls"),
                Some(json!({ "type": "AUDIO_VIDEO" })),
            )
            .await?;
        let call = text(&call, "id")?;
        wait_for(&mut lines, "READY").await?;
        ready.push(sent.elapsed());
        agent
            .json(
                Method::POST,
                &format!("/v1/conversations/{conversation}/calls/{call}/end"),
                None,
            )
            .await?;
        wait_for(&mut lines, "STOPPED").await?;
    }
    let mut process = Vec::new();
    let program = std::env::current_exe()?;
    for _ in 0..runs {
        let started = Instant::now();
        let status = std::process::Command::new(&program)
            .arg("--version")
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("{} --version failed", program.display());
        }
        process.push(started.elapsed());
    }
    deployment.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(json!({
        "runs": runs,
        "callStartToRecorderReadyMs": summary(&mut ready),
        "baselineProcessStartMs": summary(&mut process),
    }))
}

/// The `data:` lines of an event stream, as JSON.
fn sse_data(response: reqwest::Response) -> impl futures_util::Stream<Item = Value> + Unpin {
    let mut buffer = String::new();
    Box::pin(
        response
            .bytes_stream()
            .map(move |chunk| {
                let Ok(chunk) = chunk else {
                    return Vec::new();
                };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                let mut out = Vec::new();
                while let Some(end) = buffer.find('\n') {
                    let line: String = buffer.drain(..=end).collect();
                    if let Some(data) = line.trim_end().strip_prefix("data:")
                        && let Ok(value) = serde_json::from_str(data.trim())
                    {
                        out.push(value);
                    }
                }
                out
            })
            .flat_map(futures_util::stream::iter),
    )
}

async fn wait_for(
    events: &mut (impl futures_util::Stream<Item = Value> + Unpin),
    state: &str,
) -> anyhow::Result<()> {
    let wait = async {
        while let Some(event) = events.next().await {
            if event["type"] == "recordingState" && event["recordingState"] == state {
                return Ok(());
            }
        }
        bail!("the event stream ended before {state}")
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .with_context(|| format!("no {state} within 60 s"))?
}

fn summary(samples: &mut [Duration]) -> Value {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    json!({
        "median": at(0.5),
        "p90": at(0.9),
        "min": at(0.0),
        "max": at(1.0),
    })
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "convrec-bench-ready-{}-{}",
        std::process::id(),
        convrec_server::now_ms()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
