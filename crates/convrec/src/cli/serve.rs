//! `convrec serve [--config FILE] [--listen ADDR] [--data-dir DIR] [--media-listen ADDR]
//! [--public-url URL]` (SPEC §7).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use convrec_server::cluster::ClusterSettings;
use convrec_server::destinations::{DestinationPolicy, IpRange};
use convrec_server::limits::Limits;
use convrec_server::turn::TurnSettings;
use convrec_server::upload::UploadSettings;
use convrec_server::{Server, ServerConfig};

/// Arguments of `convrec serve`. Each flag has an environment variable and a key in the
/// config file: the flag wins over the environment, which wins over the file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A TOML config file (keys: listen, data_dir, node_id, node_url, node_lease_secs,
    /// database.url, object_store.url, turn.url, turn.force_relay, webhooks.allow, webhooks.deny,
    /// object_store.part_size_mib, object_store.max_backlog_mib, media_listen, media_advertise,
    /// public_url, recorder_command, limits.max_body_kib, limits.max_connections,
    /// limits.failed_auth_per_minute, limits.recordings_per_account, trusted_proxies).
    #[arg(long, env = "CONVREC_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the HTTP API (port 0: any free port) [default: 127.0.0.1:8080].
    #[arg(long, env = "CONVREC_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the metadata database, the spool and local recordings
    /// [default: ./convrec-data].
    #[arg(long, env = "CONVREC_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The metadata database (database.url): postgres://USER:PASSWORD@HOST/DB for PostgreSQL
    /// [default: SQLite in DATA_DIR/convrec.db].
    #[arg(long, env = "CONVREC_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Where finished recordings go: s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX],
    /// az://CONTAINER[/PREFIX] or file:///PATH, credentials from the provider's usual
    /// environment variables [default: DATA_DIR/objects].
    #[arg(long, env = "CONVREC_OBJECT_STORE_URL")]
    object_store_url: Option<String>,
    /// Size of the parts files are uploaded in while they are recorded, in MiB (5 to 5120)
    /// [default: 8].
    #[arg(long, env = "CONVREC_PART_SIZE_MIB")]
    part_size_mib: Option<u64>,
    /// MiB of recorded bytes the spool may hold while the object store is unreachable; past
    /// it, recordings end with ABORT_BLOBSTORE_FAILURE [default: 4096].
    #[arg(long, env = "CONVREC_MAX_BACKLOG_MIB")]
    max_backlog_mib: Option<u64>,
    /// This node's name among servers sharing one database (1 to 64 letters, digits, '.', '_',
    /// '-'); it must stay the same across restarts [default: one made on the first start and
    /// kept in DATA_DIR/node-id].
    #[arg(long, env = "CONVREC_NODE_ID")]
    node_id: Option<String>,
    /// The URL the other nodes sharing the database reach this node's API at; requests for a
    /// conversation this node hosts are forwarded there [default: http://LISTEN; required
    /// with a wildcard listening address and a PostgreSQL database].
    #[arg(long, env = "CONVREC_NODE_URL")]
    node_url: Option<String>,
    /// Seconds a node that stops renewing its lease keeps its calls and recordings before
    /// another node takes them over (2 to 300) [default: 15].
    #[arg(long, env = "CONVREC_NODE_LEASE_SECS")]
    node_lease_secs: Option<u64>,
    /// UDP address of the SFU, one port for all media (default: the HTTP address's IP, any
    /// free port). Must be the IP peers reach.
    #[arg(long, env = "CONVREC_MEDIA_LISTEN")]
    media_listen: Option<SocketAddr>,
    /// The address peers reach the media port at when it is not the one bound (a 1:1 NAT: a
    /// cloud instance's public IP, a port forward); it is advertised as the ICE candidate
    /// [default: the bound address].
    #[arg(long, env = "CONVREC_MEDIA_ADVERTISE")]
    media_advertise: Option<SocketAddr>,
    /// The URL recorders reach this server at (identifier.recordingEntryPointBaseUrl);
    /// required when listening on a wildcard address.
    #[arg(long, env = "CONVREC_PUBLIC_URL")]
    public_url: Option<String>,
    /// A TURN relay (turn:HOST:PORT, UDP) handed to participants and recorders, with
    /// credentials made from the secret in CONVREC_TURN_SECRET (coturn's static-auth-secret)
    /// [default: none].
    #[arg(long, env = "CONVREC_TURN_URL")]
    turn_url: Option<String>,
    /// Participants and recorders reach the media only through the TURN relay (the seed's
    /// RELAYED calls).
    #[arg(long, env = "CONVREC_FORCE_RELAY")]
    force_relay: bool,
    /// Address ranges webhooks may reach although they are denied by default (loopback,
    /// private, link-local…), comma-separated ADDRESS[/PREFIX] [default: none].
    #[arg(long, env = "CONVREC_WEBHOOK_ALLOW")]
    webhook_allow: Option<String>,
    /// Address ranges webhooks may not reach, besides the default ones [default: none].
    #[arg(long, env = "CONVREC_WEBHOOK_DENY")]
    webhook_deny: Option<String>,
    /// Start recorders with this shell command instead of as child processes (a cluster
    /// scheduler, a container runtime): it gets CONVREC_ENTRY_POINT, CONVREC_RECORDING_ID and
    /// CONVREC_PROGRAM in its environment and must last as long as the recorder.
    #[arg(long, env = "CONVREC_RECORDER_COMMAND")]
    recorder_command: Option<String>,
    /// The largest request body in KiB (64 to 65536); larger ones are answered 413
    /// [default: 1024].
    #[arg(long, env = "CONVREC_MAX_BODY_KIB")]
    max_body_kib: Option<u64>,
    /// HTTP connections served at once (16 to 1000000); more wait to be accepted
    /// [default: 4096].
    #[arg(long, env = "CONVREC_MAX_CONNECTIONS")]
    max_connections: Option<u64>,
    /// Failed authentications one client address (an IPv6 client's /64) may make in a minute
    /// before its requests are answered 429 until the minute ends (1 to 100000) [default: 20].
    #[arg(long, env = "CONVREC_MAX_FAILED_AUTH_PER_MINUTE")]
    max_failed_auth_per_minute: Option<u64>,
    /// Recordings of one account running at once, over all nodes (1 to 100000); past it a
    /// recording's attempts fail and follow its retry settings [default: 200].
    #[arg(long, env = "CONVREC_MAX_RECORDINGS_PER_ACCOUNT")]
    max_recordings_per_account: Option<u64>,
    /// Reverse proxies in front of the server whose X-Forwarded-For names the client (for the
    /// failed-authentication limit), comma-separated ADDRESS[/PREFIX] [default: none].
    #[arg(long, env = "CONVREC_TRUSTED_PROXIES")]
    trusted_proxies: Option<String>,
}

/// The config file's keys (SPEC §7): the same settings as the flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    node_id: Option<String>,
    node_url: Option<String>,
    node_lease_secs: Option<u64>,
    database: Option<DatabaseSection>,
    object_store: Option<ObjectStoreSection>,
    media_listen: Option<SocketAddr>,
    media_advertise: Option<SocketAddr>,
    public_url: Option<String>,
    recorder_command: Option<String>,
    turn: Option<TurnSection>,
    webhooks: Option<WebhooksSection>,
    limits: Option<LimitsSection>,
    trusted_proxies: Option<Vec<String>>,
}

/// `[limits]` of the config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    /// `limits.max_body_kib`.
    max_body_kib: Option<u64>,
    /// `limits.max_connections`.
    max_connections: Option<u64>,
    /// `limits.failed_auth_per_minute`.
    failed_auth_per_minute: Option<u64>,
    /// `limits.recordings_per_account`.
    recordings_per_account: Option<u64>,
}

/// `[webhooks]` of the config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhooksSection {
    /// `webhooks.allow`.
    allow: Option<Vec<String>>,
    /// `webhooks.deny`.
    deny: Option<Vec<String>>,
}

/// `[turn]` of the config file (the secret only from the environment).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TurnSection {
    /// `turn.url`.
    url: Option<String>,
    /// `turn.force_relay`.
    force_relay: Option<bool>,
}

/// `[database]` of the config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseSection {
    /// `database.url`.
    url: Option<String>,
}

/// `[object_store]` of the config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectStoreSection {
    /// `object_store.url`.
    url: Option<String>,
    /// `object_store.part_size_mib`.
    part_size_mib: Option<u64>,
    /// `object_store.max_backlog_mib`.
    max_backlog_mib: Option<u64>,
}

impl ServeArgs {
    /// The settings: flags and environment over the config file over the defaults.
    fn resolve(self) -> anyhow::Result<ServerConfig> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the config file {}", path.display()))?;
                toml::from_str::<ConfigFile>(&text)
                    .with_context(|| format!("the config file {} is not valid", path.display()))?
            }
            None => ConfigFile::default(),
        };
        let object_store = file.object_store.unwrap_or_default();
        let turn = file.turn.unwrap_or_default();
        let webhooks = file.webhooks.unwrap_or_default();
        let limits = file.limits.unwrap_or_default();
        let public_url = self.public_url.or(file.public_url);
        if let Some(url) = &public_url {
            let kind = convrec_core::config::ValueKind::Url;
            convrec_core::config::check_value(kind, &serde_json::Value::from(url.as_str()))
                .map_err(|allowed| {
                    anyhow::anyhow!(
                        "identifier.recordingEntryPointBaseUrl (--public-url) cannot be '{url}'; allowed: {allowed}"
                    )
                })?;
        }
        Ok(ServerConfig {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./convrec-data")),
            database_url: match self.database_url.or(file.database.and_then(|d| d.url)) {
                Some(url)
                    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) =>
                {
                    anyhow::bail!(
                        "database.url (--database-url) must be a postgres:// or postgresql:// URL; leave it out for SQLite in the data directory"
                    )
                }
                url => url,
            },
            object_store_url: self.object_store_url.or(object_store.url),
            upload: upload_settings(
                self.part_size_mib.or(object_store.part_size_mib),
                self.max_backlog_mib.or(object_store.max_backlog_mib),
            )?,
            node_id: self.node_id.or(file.node_id),
            cluster: cluster_settings(
                self.node_url.or(file.node_url),
                self.node_lease_secs.or(file.node_lease_secs),
            )?,
            media_listen: self.media_listen.or(file.media_listen),
            media_advertise: self.media_advertise.or(file.media_advertise),
            public_url,
            recorder_program: std::env::current_exe()
                .context("cannot find this program to launch recorders with")?,
            // A secret: from the environment only, never a flag or a file others may read.
            recorder_command: match self.recorder_command.or(file.recorder_command) {
                Some(command) if command.trim().is_empty() => anyhow::bail!(
                    "recorder_command (--recorder-command) cannot be empty; leave it out to run recorders as child processes"
                ),
                command => command,
            },
            bootstrap_admin_key: std::env::var("CONVREC_BOOTSTRAP_ADMIN_KEY").ok(),
            webhook_destinations: DestinationPolicy {
                allow: ranges(
                    "webhooks.allow (--webhook-allow)",
                    self.webhook_allow,
                    webhooks.allow,
                )?,
                deny: ranges(
                    "webhooks.deny (--webhook-deny)",
                    self.webhook_deny,
                    webhooks.deny,
                )?,
            },
            turn: turn_settings(
                self.turn_url.or(turn.url),
                std::env::var("CONVREC_TURN_SECRET").ok(),
                self.force_relay || turn.force_relay.unwrap_or(false),
            )?,
            limits: Limits {
                max_body_bytes: limit::<usize>(
                    "limits.max_body_kib (--max-body-kib)",
                    self.max_body_kib.or(limits.max_body_kib),
                    64..=65536,
                    Limits::default().max_body_bytes as u64 >> 10,
                )? << 10,
                max_connections: limit(
                    "limits.max_connections (--max-connections)",
                    self.max_connections.or(limits.max_connections),
                    16..=1_000_000,
                    Limits::default().max_connections as u64,
                )?,
                failed_auth_per_minute: limit(
                    "limits.failed_auth_per_minute (--max-failed-auth-per-minute)",
                    self.max_failed_auth_per_minute
                        .or(limits.failed_auth_per_minute),
                    1..=100_000,
                    Limits::default().failed_auth_per_minute.into(),
                )?,
                recordings_per_account: limit(
                    "limits.recordings_per_account (--max-recordings-per-account)",
                    self.max_recordings_per_account
                        .or(limits.recordings_per_account),
                    1..=100_000,
                    Limits::default().recordings_per_account.into(),
                )?,
                trusted_proxies: ranges(
                    "trusted_proxies (--trusted-proxies)",
                    self.trusted_proxies,
                    file.trusted_proxies,
                )?,
            },
        })
    }
}

/// A limit's value, checked against its range, or its default; converted to what it counts in.
fn limit<T: TryFrom<u64>>(
    setting: &str,
    value: Option<u64>,
    allowed: std::ops::RangeInclusive<u64>,
    default: u64,
) -> anyhow::Result<T> {
    let value = value.unwrap_or(default);
    anyhow::ensure!(
        allowed.contains(&value),
        "{setting} cannot be {value}; allowed: {} to {}",
        allowed.start(),
        allowed.end()
    );
    T::try_from(value).map_err(|_| anyhow::anyhow!("{setting} cannot be {value} on this machine"))
}

/// Address ranges from a flag (comma-separated) or else the config file's list, checked.
fn ranges(
    setting: &str,
    flag: Option<String>,
    file: Option<Vec<String>>,
) -> anyhow::Result<Vec<IpRange>> {
    let texts: Vec<String> = match flag {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        None => file.unwrap_or_default(),
    };
    texts
        .iter()
        .map(|t| t.parse().map_err(|why| anyhow::anyhow!("{setting}: {why}")))
        .collect()
}

/// The TURN settings, checked: a relay needs its secret, forcing it needs a relay.
fn turn_settings(
    url: Option<String>,
    secret: Option<String>,
    force_relay: bool,
) -> anyhow::Result<Option<TurnSettings>> {
    let Some(url) = url else {
        anyhow::ensure!(
            !force_relay,
            "turn.force_relay (--force-relay) needs a relay: set turn.url (--turn-url)"
        );
        return Ok(None);
    };
    convrec_server::turn::check_url(&url)
        .map_err(|why| anyhow::anyhow!("turn.url (--turn-url): {why}"))?;
    let secret = secret.filter(|s| !s.is_empty()).ok_or_else(|| {
        anyhow::anyhow!(
            "turn.url (--turn-url) needs the secret shared with the relay in CONVREC_TURN_SECRET"
        )
    })?;
    Ok(Some(TurnSettings {
        urls: vec![url],
        secret,
        force_relay,
    }))
}

/// The cluster settings, checked.
fn cluster_settings(
    node_url: Option<String>,
    node_lease_secs: Option<u64>,
) -> anyhow::Result<ClusterSettings> {
    if let Some(url) = &node_url {
        let kind = convrec_core::config::ValueKind::Url;
        convrec_core::config::check_value(kind, &serde_json::Value::from(url.as_str())).map_err(
            |allowed| {
                anyhow::anyhow!("node_url (--node-url) cannot be '{url}'; allowed: {allowed}")
            },
        )?;
    }
    let lease = match node_lease_secs {
        Some(secs @ 2..=300) => std::time::Duration::from_secs(secs),
        Some(secs) => anyhow::bail!(
            "node_lease_secs (--node-lease-secs) cannot be {secs}; allowed: 2 to 300 seconds"
        ),
        None => ClusterSettings::default().lease,
    };
    Ok(ClusterSettings { node_url, lease })
}

/// The upload settings from MiB figures, checked.
fn upload_settings(
    part_size_mib: Option<u64>,
    max_backlog_mib: Option<u64>,
) -> anyhow::Result<UploadSettings> {
    let defaults = UploadSettings::default();
    let part_size = match part_size_mib {
        Some(mib @ 5..=5120) => mib << 20,
        Some(mib) => anyhow::bail!(
            "object_store.part_size_mib (--part-size-mib) cannot be {mib}; allowed: 5 to 5120 (the part sizes S3 takes)"
        ),
        None => defaults.part_size,
    };
    let max_backlog = match max_backlog_mib {
        Some(mib) if mib >= part_size >> 20 && mib <= 1 << 30 => mib << 20,
        Some(mib) => anyhow::bail!(
            "object_store.max_backlog_mib (--max-backlog-mib) cannot be {mib}; allowed: from the part size ({} MiB) to 1073741824",
            part_size >> 20
        ),
        None => defaults.max_backlog.max(part_size),
    };
    Ok(UploadSettings {
        part_size,
        max_backlog,
    })
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let config = args.resolve()?;
    runtime.block_on(async {
        let server = Server::bind(&config).await?;
        let addr = server.local_addr()?;
        if let Some(key) = server.generated_admin_key() {
            eprintln!(
                "convrec: generated the global admin key (shown once; kept in {}): {key}",
                config.data_dir.join(convrec_server::auth::ADMIN_KEY_FILE).display()
            );
        }
        // Watch for SIGTERM before announcing ourselves: a stop sent right after the line must
        // be a graceful one.
        let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch for SIGTERM")?;
        // Scripts and tests wait for exactly this line.
        println!("convrec listening on http://{addr}");
        std::io::stdout().flush()?;
        tracing::info!(%addr, media = %server.media_addr(), data_dir = %config.data_dir.display(), "serving");
        server.serve(shutdown_signal(terminate)).await?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal(mut terminate: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
