//! `convrec participant`: a synthetic participant. It joins its conversation's call (starting
//! one if none is active), publishes the embedded H.264 + Opus fixtures over real WebRTC with
//! WHIP (looped, with continuous timestamps) and, with `--screen-share`, a screen-sharing layer
//! too; after `--seconds` it ends its sessions.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use convrec_media::source::synthetic::{SyntheticConfig, SyntheticSource};
use convrec_media::timeline::MediaKind;
use convrec_rtc::client::{Client, Local};
use convrec_rtc::driver;
use convrec_rtc::relay::{Relayed, RelayedEvent};
use convrec_rtc::synthetic::{PlayStats, play};
use convrec_rtc::turn::TurnServer;
use reqwest::Method;
use serde_json::{Value, json};

use super::api_client::{ApiClient, Refused};
use super::fixtures;

/// Arguments of `convrec participant`.
#[derive(Debug, Clone, clap::Args)]
pub struct ParticipantArgs {
    /// The server's URL, e.g. `http://127.0.0.1:8080`.
    #[arg(long)]
    pub server: String,
    /// The conversation to join.
    #[arg(long)]
    pub conversation: String,
    /// The participant token (from `POST /v1/conversations/{id}/participants`).
    #[arg(long, env = "CONVREC_PARTICIPANT_TOKEN", hide_env_values = true)]
    pub token: String,
    /// How long to publish, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Also share a screen (a SCREEN_SHARING layer, video only).
    #[arg(long)]
    pub screen_share: bool,
    /// The embedded video to send.
    #[arg(long, value_enum, default_value_t = fixtures::Video::Small)]
    pub video: fixtures::Video,
    /// After this many seconds, end the call publication and publish again in a new session
    /// (new SSRCs), as a client does after a network change [default: never].
    #[arg(long)]
    pub reconnect_after: Option<f64>,
}

/// What a participant did.
#[derive(Debug, Clone)]
pub struct ParticipantReport {
    /// Its (first) call publication.
    pub publication: String,
    /// The call publications it made after reconnecting.
    pub later_publications: Vec<String>,
    /// Its screen-share publication.
    pub screen_publication: Option<String>,
    /// What its call publications sent; `sent_for` is how long their media flowed (the sum
    /// over its sessions; joining, connecting and leaving are not in it).
    pub stats: PlayStats,
}

/// Runs `convrec participant`.
pub fn run(args: ParticipantArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let report = runtime.block_on(participate(args))?;
    eprintln!(
        "published {} for {:.1} s: {} video frames, {} audio packets, {} key-frame requests answered{}",
        report.publication,
        report.stats.sent_for.as_secs_f64(),
        report.stats.video_frames,
        report.stats.audio_packets,
        report.stats.keyframe_requests,
        report
            .later_publications
            .iter()
            .map(|p| format!("; reconnected as {p}"))
            .collect::<String>()
    );
    Ok(ExitCode::SUCCESS)
}

/// Joins, publishes for `args.seconds`, and leaves.
pub async fn participate(args: ParticipantArgs) -> anyhow::Result<ParticipantReport> {
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 86_400.0) {
        anyhow::bail!(
            "--seconds must be more than 0 and at most 86400, not {}",
            args.seconds
        );
    }
    let api = ApiClient::new(&args.server, &args.token);
    let length = Duration::from_secs_f64(args.seconds);
    let conversation = &args.conversation;
    let call = join_or_start(&api, conversation, "calls", "CALL", "AUDIO_VIDEO").await?;
    // The call publication's sessions: one, or two around a reconnection.
    let sessions = match args.reconnect_after {
        Some(after) if !(after.is_finite() && after > 0.0 && after < args.seconds) => {
            anyhow::bail!(
                "--reconnect-after must be more than 0 and less than --seconds ({}), not {after}",
                args.seconds
            )
        }
        Some(after) => vec![
            Duration::from_secs_f64(after),
            length - Duration::from_secs_f64(after),
        ],
        None => vec![length],
    };
    let whip = format!("/v1/conversations/{conversation}/calls/{call}/whip");
    let screen = if args.screen_share {
        let layer = join_or_start(
            &api,
            conversation,
            "layers",
            "COLLABORATION_LAYER",
            "SCREEN_SHARING",
        )
        .await?;
        Some(
            Publishing::start(
                &api,
                conversation,
                &format!("/v1/conversations/{conversation}/layers/{layer}/whip"),
                &[MediaKind::Video],
                args.video,
            )
            .await?,
        )
    } else {
        None
    };
    let camera = async {
        let mut locations = Vec::new();
        let mut stats = PlayStats::default();
        for session in sessions {
            let camera = Publishing::start(
                &api,
                conversation,
                &whip,
                &[MediaKind::Audio, MediaKind::Video],
                args.video,
            )
            .await?;
            let played = camera.play(session).await;
            api.delete(&camera.location).await?;
            camera.release_relay().await;
            let played = played?;
            stats += played;
            locations.push(last_segment(&camera.location));
        }
        anyhow::Ok((locations, stats))
    };
    let (camera_result, screen_result) = tokio::join!(camera, async {
        match &screen {
            Some(s) => Some(s.play(length).await),
            None => None,
        }
    });
    if let Some(s) = &screen {
        api.delete(&s.location).await?;
        s.release_relay().await;
    }
    let (mut publications, stats) = camera_result?;
    if let Some(r) = screen_result {
        r?;
    }
    Ok(ParticipantReport {
        publication: publications.remove(0),
        later_publications: publications,
        screen_publication: screen.map(|s| last_segment(&s.location)),
        stats,
    })
}

fn last_segment(location: &str) -> String {
    location.rsplit('/').next().unwrap_or(location).to_owned()
}

/// The active interaction of `source` (and type), or a new one.
async fn join_or_start(
    api: &ApiClient,
    conversation: &str,
    collection: &str,
    source: &str,
    kind: &str,
) -> anyhow::Result<String> {
    let found = api
        .json(
            Method::GET,
            &format!("/v1/conversations/{conversation}"),
            None,
        )
        .await?["activeInteractions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["source"] == source && (source == "CALL" || i["type"] == kind))
        .and_then(|i| i["id"].as_str().map(str::to_owned));
    if let Some(id) = found {
        return Ok(id);
    }
    let started = api
        .json(
            Method::POST,
            &format!("/v1/conversations/{conversation}/{collection}"),
            Some(json!({ "type": kind })),
        )
        .await;
    match started {
        Ok(v) => v["id"]
            .as_str()
            .map(str::to_owned)
            .context("the server did not say the interaction's id"),
        // Another participant started it first.
        Err(e) => match e.downcast_ref::<Refused>() {
            Some(r) if r.code == "INTERACTION_ACTIVE" => r.details["interactionId"]
                .as_str()
                .map(str::to_owned)
                .context("the conflict did not name the interaction"),
            _ => Err(e),
        },
    }
}

/// One WHIP session and its media.
struct Publishing {
    location: String,
    handle: driver::DriverHandle<Relayed<Client>>,
    events: tokio::sync::Mutex<
        tokio::sync::mpsc::UnboundedReceiver<RelayedEvent<convrec_rtc::client::ClientEvent>>,
    >,
    kinds: Vec<MediaKind>,
    video: fixtures::Video,
}

impl Publishing {
    async fn start(
        api: &ApiClient,
        conversation: &str,
        whip: &str,
        kinds: &[MediaKind],
        video: fixtures::Video,
    ) -> anyhow::Result<Self> {
        let ip = convrec_rtc::net::local_ip_towards(api.base()).await?;
        let socket = tokio::net::UdpSocket::bind((ip, 0)).await?;
        let relay = forced_relay(api, conversation).await?;
        let (local, allocations) = match &relay {
            Some(server) => {
                let (allocation, relayed) = convrec_rtc::relay::allocate(&socket, server)
                    .await
                    .with_context(|| {
                        format!("cannot allocate on the TURN relay {}", server.addr)
                    })?;
                (Local::Relayed(relayed), vec![allocation])
            }
            None => (Local::Host(socket.local_addr()?), Vec::new()),
        };
        let (client, offer) = Client::publisher(Instant::now(), local, kinds)?;
        let (location, answer) = api.offer(whip, offer).await?;
        let (handle, events) = driver::spawn(socket, Relayed::new(client, relay, allocations))?;
        handle
            .call(move |r, _| r.inner().accept_answer(&answer))
            .await??;
        Ok(Self {
            location,
            handle,
            events: tokio::sync::Mutex::new(events),
            kinds: kinds.to_vec(),
            video,
        })
    }

    /// Gives its TURN allocation back, if it has one (and waits until that went out).
    async fn release_relay(&self) {
        let _ = self.handle.call(|r, now| r.close_relays(now)).await;
        let _ = self.handle.call(|_, _| ()).await;
    }

    async fn play(&self, length: Duration) -> anyhow::Result<PlayStats> {
        let source = SyntheticSource::new(
            SyntheticConfig::default(),
            fixtures::video(self.video),
            fixtures::audio(self.video)?,
        );
        let mut events = self.events.lock().await;
        Ok(play(&self.handle, &mut events, source, &self.kinds, length).await?)
    }
}

/// The TURN relay the conversation's deployment forces (`iceTransportPolicy: relay`), if any.
async fn forced_relay(api: &ApiClient, conversation: &str) -> anyhow::Result<Option<TurnServer>> {
    let ice = api
        .json(
            Method::GET,
            &format!("/v1/conversations/{conversation}/iceServers"),
            None,
        )
        .await?;
    if ice["iceTransportPolicy"] != "relay" {
        return Ok(None);
    }
    let server = &ice["iceServers"][0];
    let text = |field: &str| server[field].as_str().unwrap_or_default().to_owned();
    let urls: Vec<String> = server["urls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|url| url.as_str().map(str::to_owned))
        .collect();
    let turn = TurnServer::resolve(&urls, &text("username"), &text("credential"))
        .await
        .context("the TURN relay")?;
    Ok(Some(turn))
}

/// The JSON of a report, for `demo --json`.
pub fn report_json(report: &ParticipantReport) -> Value {
    json!({
        "publicationId": report.publication,
        "screenPublicationId": report.screen_publication,
        "publishedSeconds": report.stats.sent_for.as_secs_f64(),
        "videoFrames": report.stats.video_frames,
        "audioPackets": report.stats.audio_packets,
        "keyFrameRequests": report.stats.keyframe_requests,
    })
}
