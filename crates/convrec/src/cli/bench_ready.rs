//! `convrec bench-ready`: how long from the start of what triggers a recording until its
//! recorder is ready (SPEC §4: connected, and subscribed to every publication that exists),
//! measured from the client's side: from sending the request that starts the interaction to
//! receiving the `READY` recording state on the conversation's event stream.
//!
//! Each run uses a new conversation. With `--publishers 0` the run starts a call (nothing is
//! published yet, as when an automatic recording starts with its call). With `--publishers N`
//! N synthetic participants already publish in a call when recording is switched on and a
//! screen share starts: the recorder must then set up N WebRTC sessions before it is ready.
//! Baseline in the same run: starting and ending this binary (`convrec --version`), the floor
//! any launched recorder pays.

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use super::api_client::ApiClient;
use super::local::{LocalConversation, LocalDeployment, text};
use super::participant::{ParticipantArgs, participate};

/// Arguments of `convrec bench-ready`.
#[derive(Debug, clap::Args)]
pub struct BenchReadyArgs {
    /// Recordings to start, one after another.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// Publications that exist when the recording starts.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=16))]
    publishers: u32,
}

/// Runs the benchmark and prints one JSON object.
pub fn run(args: BenchReadyArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(bench(&args))?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(ExitCode::SUCCESS)
}

async fn bench(args: &BenchReadyArgs) -> anyhow::Result<Value> {
    let data_dir = std::env::temp_dir().join(format!(
        "convrec-bench-ready-{}-{}",
        std::process::id(),
        convrec_server::now_ms()
    ));
    let deployment = LocalDeployment::start(data_dir.clone()).await?;
    let mut ready = Vec::new();
    for _ in 0..args.runs {
        ready.push(one_run(&deployment, args.publishers).await?);
    }
    let mut process = Vec::new();
    let program = std::env::current_exe()?;
    for _ in 0..args.runs {
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
        "runs": args.runs,
        "publishers": args.publishers,
        "startToRecorderReadyMs": summary(&mut ready),
        "baselineProcessStartMs": summary(&mut process),
    }))
}

/// One recording start; returns how long until ready.
async fn one_run(deployment: &LocalDeployment, publishers: u32) -> anyhow::Result<Duration> {
    let c = deployment
        .conversation(publishers == 0, publishers.max(1), "COMPOSED")
        .await?;
    let agent = ApiClient::new(&deployment.base, &c.tokens[0]);
    let conversation = &c.id;
    let mut events = event_stream(&deployment.base, &c).await?;
    if publishers == 0 {
        let sent = Instant::now();
        let call = agent
            .json(
                Method::POST,
                &format!("/v1/conversations/{conversation}/calls"),
                Some(json!({ "type": "AUDIO_VIDEO" })),
            )
            .await?;
        wait_for(&mut events, "READY").await?;
        let elapsed = sent.elapsed();
        let call = text(&call, "id")?;
        end(&agent, conversation, "calls", &call).await?;
        wait_for(&mut events, "STOPPED").await?;
        return Ok(elapsed);
    }
    // People publishing in a call that is not recorded yet.
    let talking: Vec<_> = c
        .tokens
        .iter()
        .map(|token| {
            tokio::spawn(participate(ParticipantArgs {
                server: deployment.base.clone(),
                conversation: conversation.clone(),
                token: token.clone(),
                seconds: 600.0,
                screen_share: false,
                video: super::fixtures::Video::Small,
                reconnect_after: None,
            }))
        })
        .collect();
    wait_for_publications(&mut events, publishers).await?;
    deployment
        .set_recording(&c.account_id, true, "COMPOSED")
        .await?;
    let sent = Instant::now();
    let layer = agent
        .json(
            Method::POST,
            &format!("/v1/conversations/{conversation}/layers"),
            Some(json!({ "type": "SCREEN_SHARING" })),
        )
        .await?;
    wait_for(&mut events, "READY").await?;
    let elapsed = sent.elapsed();
    let read = agent
        .json(
            Method::GET,
            &format!("/v1/conversations/{conversation}"),
            None,
        )
        .await?;
    for interaction in read["activeInteractions"].as_array().into_iter().flatten() {
        let collection = if interaction["source"] == "CALL" {
            "calls"
        } else {
            "layers"
        };
        end(&agent, conversation, collection, &text(interaction, "id")?).await?;
    }
    wait_for(&mut events, "STOPPED").await?;
    for task in talking {
        // Their sessions were ended with the call.
        task.abort();
    }
    let _ = layer;
    Ok(elapsed)
}

async fn end(
    api: &ApiClient,
    conversation: &str,
    collection: &str,
    id: &str,
) -> anyhow::Result<()> {
    api.json(
        Method::POST,
        &format!("/v1/conversations/{conversation}/{collection}/{id}/end"),
        None,
    )
    .await?;
    Ok(())
}

type Events = std::pin::Pin<Box<dyn futures_util::Stream<Item = Value> + Send>>;

/// The conversation's events, each `data:` line as JSON.
async fn event_stream(base: &str, c: &LocalConversation) -> anyhow::Result<Events> {
    let response = reqwest::Client::new()
        .get(format!("{base}/v1/conversations/{}/events", c.id))
        .bearer_auth(&c.tokens[0])
        .send()
        .await?;
    let mut buffer = String::new();
    Ok(Box::pin(
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
    ))
}

async fn next_matching(
    events: &mut Events,
    what: &str,
    mut matches: impl FnMut(&Value) -> bool,
) -> anyhow::Result<()> {
    let wait = async {
        while let Some(event) = events.next().await {
            if matches(&event) {
                return Ok(());
            }
        }
        bail!("the event stream ended before {what}")
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .with_context(|| format!("no {what} within 60 s"))?
}

/// Waits for the recording `state`; a failed recording fails the benchmark.
async fn wait_for(events: &mut Events, state: &str) -> anyhow::Result<()> {
    let mut failed = false;
    next_matching(events, state, |e| {
        failed = e["type"] == "recordingState" && e["recordingState"] == "FAILED";
        failed || e["type"] == "recordingState" && e["recordingState"] == state
    })
    .await?;
    if failed {
        bail!("the recording failed (see the log above)");
    }
    Ok(())
}

async fn wait_for_publications(events: &mut Events, n: u32) -> anyhow::Result<()> {
    let mut seen = 0;
    next_matching(events, "the publications", |e| {
        if e["type"] == "publicationStarted" {
            seen += 1;
        }
        seen >= n
    })
    .await
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
