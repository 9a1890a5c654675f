//! `convrec serve [--config FILE] [--listen ADDR] [--data-dir DIR] [--media-listen ADDR]
//! [--public-url URL]` (SPEC §7).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use convrec_server::config_file::{
    ConfigFile, DatabaseSection, Environment, LimitsSection, ObjectStoreSection, TurnSection,
    WebhooksSection, split_ranges,
};
use convrec_server::{Server, ServerConfig};

/// Arguments of `convrec serve`. Each flag has an environment variable and a key in the
/// config file: the flag wins over the environment, which wins over the file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A TOML config file (keys: listen, data_dir, node_id, node_url, node_lease_secs,
    /// database.url, object_store.url, turn.url, turn.force_relay, webhooks.allow, webhooks.deny,
    /// object_store.part_size_mib, object_store.max_backlog_mib, media_listen, media_advertise,
    /// public_url, recorder_command, recording_api_key_id, limits.max_body_kib, limits.max_connections,
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
    /// A TURN relay handed to participants and recorders, with credentials made from the
    /// secret in CONVREC_TURN_SECRET (coturn's static-auth-secret): its URLs, comma-separated,
    /// at least one UDP (turn:HOST:PORT, for recorders), TCP (turn:HOST:PORT?transport=tcp) and
    /// TLS (turns:HOST:PORT) ones for browsers behind firewalls that drop UDP [default: none].
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
    /// The id of a RECORDER API key recorders must also present at their entry point
    /// (conversation.recording.recordingApiKeyId); give recorders its secret in
    /// CONVREC_RECORDER_API_KEY [default: none, the entry point is their only credential].
    #[arg(long, env = "CONVREC_RECORDING_API_KEY_ID")]
    recording_api_key_id: Option<String>,
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

impl ServeArgs {
    /// The settings: flags and environment over the config file over the defaults.
    fn resolve(self) -> anyhow::Result<ServerConfig> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the config file {}", path.display()))?;
                ConfigFile::parse(&text)
                    .with_context(|| format!("the config file {} is not valid", path.display()))?
            }
            None => ConfigFile::default(),
        };
        let flags = ConfigFile {
            listen: self.listen,
            data_dir: self.data_dir,
            node_id: self.node_id,
            node_url: self.node_url,
            node_lease_secs: self.node_lease_secs,
            database: DatabaseSection {
                url: self.database_url,
            },
            object_store: ObjectStoreSection {
                url: self.object_store_url,
                part_size_mib: self.part_size_mib,
                max_backlog_mib: self.max_backlog_mib,
            },
            media_listen: self.media_listen,
            media_advertise: self.media_advertise,
            public_url: self.public_url,
            recorder_command: self.recorder_command,
            recording_api_key_id: self.recording_api_key_id,
            turn: TurnSection {
                url: self.turn_url,
                force_relay: self.force_relay.then_some(true),
            },
            webhooks: WebhooksSection {
                allow: self.webhook_allow.as_deref().map(split_ranges),
                deny: self.webhook_deny.as_deref().map(split_ranges),
            },
            limits: LimitsSection {
                max_body_kib: self.max_body_kib,
                max_connections: self.max_connections,
                failed_auth_per_minute: self.max_failed_auth_per_minute,
                recordings_per_account: self.max_recordings_per_account,
            },
            trusted_proxies: self.trusted_proxies.as_deref().map(split_ranges),
        };
        // Secrets come from the environment only, never a flag or a file others may read.
        let env = Environment {
            bootstrap_admin_key: std::env::var("CONVREC_BOOTSTRAP_ADMIN_KEY").ok(),
            turn_secret: std::env::var("CONVREC_TURN_SECRET").ok(),
            recorder_program: std::env::current_exe()
                .context("cannot find this program to launch recorders with")?,
        };
        Ok(flags.over(file).resolve(env)?)
    }
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
