//! `convrec loadtest`: how many recorded calls one machine holds. For each number of calls N
//! it starts a fresh server (in this process, with its recorders as child processes), runs N
//! two-participant calls at once over real WebRTC (the publishers in this process too, on the
//! same cores), records them all, and reports per N: CPU and peak memory per recorder, the CPU
//! of the server and the publishers, fragment acknowledgement latency (p50/p99 from the
//! server's histogram), and the frames and audio packets missing inside the recorded files.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use convrec_media::inspect::inspect;
use convrec_media::timeline::MediaKind;
use serde_json::{Value, json};

use super::api_client::ApiClient;
use super::fixtures::Video;
use super::local::{LocalDeployment, text};
use super::participant::{ParticipantArgs, participate};
use super::usage::{sample_children, usage};

/// Frames per second of the embedded videos.
const FIXTURE_FPS: f64 = 30.0;
/// Opus packets per second (20 ms each).
const OPUS_PACKETS_PER_SECOND: f64 = 50.0;

/// Arguments of `convrec loadtest`.
#[derive(Debug, clap::Args)]
pub struct LoadtestArgs {
    /// Numbers of concurrent calls to run, one round each, comma-separated (1 to 200 each).
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 5, 10, 20],
          value_parser = clap::value_parser!(u32).range(1..=200))]
    calls: Vec<u32>,
    /// Seconds each call lasts (2 to 3600).
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// RAW_TRACKS (a file per publication: missing frames can be counted) or COMPOSED.
    #[arg(long, default_value = "RAW_TRACKS", value_parser = ["COMPOSED", "RAW_TRACKS"])]
    layout: String,
    /// The video the participants send.
    #[arg(long, value_enum, default_value_t = Video::Small)]
    video: Video,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `convrec loadtest`.
pub fn run(args: LoadtestArgs) -> anyhow::Result<ExitCode> {
    if !(args.seconds.is_finite() && (2.0..=3600.0).contains(&args.seconds)) {
        anyhow::bail!("--seconds must be 2 to 3600, not {}", args.seconds);
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut rounds = Vec::new();
    if !args.json {
        println!(
            "calls | CPU per recorder (mean/max, % of a core) | memory per recorder (mean/max MiB) | server + publishers CPU (% of a core) | ack p50 / p99 | missing video frames | missing audio packets | recordings complete"
        );
    }
    for &calls in &args.calls {
        let round = runtime.block_on(round(&args, calls))?;
        if !args.json {
            println!("{}", row(&round));
        }
        rounds.push(round);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "seconds": args.seconds,
                "layout": args.layout,
                "rounds": rounds,
            }))?
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One table row of a round.
fn row(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let ms = |v: &Value| match v.as_f64() {
        Some(s) => format!("≤ {:.1} ms", s * 1000.0),
        None => "–".to_owned(),
    };
    format!(
        "{} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} | {} / {} | {} | {} | {}/{}",
        r["calls"],
        f(&r["recorderCpuPercent"]["mean"]),
        f(&r["recorderCpuPercent"]["max"]),
        f(&r["recorderPeakMiB"]["mean"]),
        f(&r["recorderPeakMiB"]["max"]),
        f(&r["serverAndPublishersCpuPercent"]),
        ms(&r["fragmentAckSeconds"]["p50"]),
        ms(&r["fragmentAckSeconds"]["p99"]),
        r["missingVideoFrames"],
        r["missingAudioPackets"],
        r["recordingsComplete"],
        r["calls"],
    )
}

/// Runs `calls` recorded calls at once on a fresh server and measures them.
async fn round(args: &LoadtestArgs, calls: u32) -> anyhow::Result<Value> {
    let data_dir = std::env::temp_dir().join(format!(
        "convrec-loadtest-{}-{}",
        std::process::id(),
        convrec_server::now_ms()
    ));
    let deployment = LocalDeployment::start(data_dir.clone()).await?;
    let mut conversations = Vec::new();
    for _ in 0..calls {
        conversations.push(deployment.conversation(true, 2, &args.layout).await?);
    }
    eprintln!("loadtest: {calls} call(s) of {} s", args.seconds);
    let (stop_sampling, sampling_stopped) = tokio::sync::oneshot::channel();
    let sampler = sample_children(Duration::from_millis(250), sampling_stopped);
    let own = || usage(std::process::id()).map_or(0.0, |u| u.cpu_seconds);
    let (cpu_before, started) = (own(), Instant::now());
    let talks = conversations.iter().flat_map(|c| {
        c.tokens.iter().map(|token| {
            participate(ParticipantArgs {
                server: deployment.base.clone(),
                conversation: c.id.clone(),
                token: token.clone(),
                seconds: args.seconds,
                screen_share: false,
                video: args.video,
                reconnect_after: None,
            })
        })
    });
    futures_util::future::try_join_all(talks).await?;
    let mut recordings = Vec::new();
    for c in &conversations {
        let agent = ApiClient::new(&deployment.base, &c.tokens[0]);
        recordings.extend(super::demo::wait_for_recordings(&agent, &c.id).await?);
    }
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = (own() - cpu_before) / wall * 100.0;
    let _ = stop_sampling.send(());
    let recorders: Vec<_> = sampler.await?.into_values().collect();
    let cpu: Vec<f64> = recorders.iter().map(|s| s.cpu_share() * 100.0).collect();
    let memory: Vec<f64> = recorders
        .iter()
        .map(|s| s.usage.peak_rss_bytes as f64 / (1024.0 * 1024.0))
        .collect();
    let metrics = reqwest::get(format!("{}/metrics", deployment.base))
        .await?
        .text()
        .await?;
    let acks = histogram(&metrics, "convrec_fragment_ack_seconds");
    let complete = recordings
        .iter()
        .filter(|r| r["status"] == "COMPLETE" && r["endReason"] == "NORMAL")
        .count();
    let (missing_video, missing_audio) = if args.layout == "RAW_TRACKS" {
        let (v, a) = missing_in_files(&data_dir, &recordings)?;
        (json!(v), json!(a))
    } else {
        // A composed file is drawn at a fixed rate: its frames say nothing of its inputs'.
        (Value::Null, Value::Null)
    };
    deployment.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(json!({
        "calls": calls,
        "publishers": calls * 2,
        "recorders": recorders.len(),
        "recorderCpuPercent": spread(&cpu),
        "recorderPeakMiB": spread(&memory),
        "serverAndPublishersCpuPercent": server_cpu,
        "fragmentAckSeconds": {
            "count": acks.last().map(|(_, n)| *n),
            "p50": quantile(&acks, 0.5),
            "p99": quantile(&acks, 0.99),
        },
        "missingVideoFrames": missing_video,
        "missingAudioPackets": missing_audio,
        "recordingsComplete": complete,
    }))
}

/// Mean and maximum.
fn spread(values: &[f64]) -> Value {
    if values.is_empty() {
        return json!({"mean": null, "max": null});
    }
    json!({
        "mean": values.iter().sum::<f64>() / values.len() as f64,
        "max": values.iter().copied().fold(f64::MIN, f64::max),
    })
}

/// The cumulative buckets (upper bound, count) of a Prometheus histogram in `text`.
fn histogram(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect()
}

/// The upper bound of the bucket that holds quantile `q`, if there were observations.
fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    buckets
        .iter()
        .find(|(_, count)| *count >= q * total)
        .map(|(bound, _)| *bound)
        .filter(|b| b.is_finite())
}

/// Video frames and audio packets missing inside the stored files: a file's span at the
/// fixtures' rates, less the samples it holds.
fn missing_in_files(
    data_dir: &std::path::Path,
    recordings: &[Value],
) -> anyhow::Result<(u64, u64)> {
    let (mut video, mut audio) = (0u64, 0u64);
    for file in recordings
        .iter()
        .flat_map(|r| r["files"].as_array().into_iter().flatten())
    {
        let path = data_dir.join("objects").join(text(file, "objectKey")?);
        let report = inspect(
            std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?,
        )
        .with_context(|| format!("{} is not a readable fMP4 file", path.display()))?;
        for track in &report.tracks {
            let rate = match track.kind {
                MediaKind::Video => FIXTURE_FPS,
                MediaKind::Audio => OPUS_PACKETS_PER_SECOND,
            };
            let expected = (track.duration_seconds * rate).round() as u64;
            let missing = expected.saturating_sub(track.samples);
            match track.kind {
                MediaKind::Video => video += missing,
                MediaKind::Audio => audio += missing,
            }
        }
    }
    Ok((video, audio))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_histogram_buckets() {
        let text = "convrec_fragment_ack_seconds_bucket{le=\"0.001\"} 10\n\
                    convrec_fragment_ack_seconds_bucket{le=\"0.0025\"} 60\n\
                    convrec_fragment_ack_seconds_bucket{le=\"0.005\"} 99\n\
                    convrec_fragment_ack_seconds_bucket{le=\"+Inf\"} 100\n\
                    convrec_other_bucket{le=\"0.001\"} 5\n";
        let buckets = histogram(text, "convrec_fragment_ack_seconds");
        assert_eq!(buckets.len(), 4);
        assert_eq!(quantile(&buckets, 0.5), Some(0.0025));
        assert_eq!(quantile(&buckets, 0.99), Some(0.005));
        assert_eq!(quantile(&buckets, 1.0), None, "past the last finite bound");
        assert_eq!(quantile(&[], 0.5), None);
    }
}
