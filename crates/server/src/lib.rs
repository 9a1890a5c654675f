//! The convrec server: the web API ([`api`]), the SFU ([`sfu`]) that calls and layers run on,
//! the recordings ([`recording`]: starting recorders, their entry point, finishing files), and
//! where bytes go ([`storage`]). [`live`] holds what is happening now; the metadata store
//! (`convrec_store::metadata`) what happened.

pub mod api;
pub mod auth;
pub mod cluster;
pub mod config_file;
pub mod destinations;
pub mod grants;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod node;
pub mod recording;
pub mod retry;
pub mod router;
pub mod sfu;
pub mod storage;
pub mod turn;
pub mod upload;
pub mod web;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use convrec_rtc::driver::{self, DriverHandle};
use convrec_rtc::room::Room;
use convrec_store::metadata::{Metadata, MetadataError};
use thiserror::Error;

use crate::live::Live;
use crate::recording::launcher::{Launcher, ProcessLauncher};
use crate::storage::Storage;

/// How the server is started (SPEC §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where the HTTP API listens (port 0: any free port).
    pub listen: SocketAddr,
    /// Where the metadata database, the spool and the local object store live.
    pub data_dir: PathBuf,
    /// The metadata database: `postgres://…` for PostgreSQL; `None`: SQLite in
    /// `data_dir/convrec.db`.
    pub database_url: Option<String>,
    /// Where finished recordings are stored (see [`storage::Storage::remote`]); `None`:
    /// `data_dir/objects`.
    pub object_store_url: Option<String>,
    /// The UDP address of the SFU (all media; port 0: any free port). `None`: the HTTP
    /// address's IP with a free port.
    pub media_listen: Option<SocketAddr>,
    /// The address peers reach the media port at, when it is not the one bound (a 1:1 NAT: a
    /// cloud instance's public IP, a port forward); advertised as the ICE host candidate.
    /// `None`: the bound address.
    pub media_advertise: Option<SocketAddr>,
    /// The URL recorders reach the server at (`identifier.recordingEntryPointBaseUrl`).
    /// `None`: `http://` + the listening address.
    pub public_url: Option<String>,
    /// The program launched as `PROGRAM recorder` (the `convrec` binary).
    pub recorder_program: PathBuf,
    /// A command template that starts a recorder anywhere (a cluster scheduler, a container
    /// runtime, a wrapper), run with `/bin/sh -c`; `None`: `PROGRAM recorder` as a child
    /// process. See [`recording::launcher::ProcessLauncher::command`].
    pub recorder_command: Option<String>,
    /// `conversation.recording.recordingApiKeyId`: the id of the `RECORDER` API key recorders
    /// must also present at their entry point (they get it from `CONVREC_RECORDER_API_KEY`);
    /// `None`: the entry point is their only credential.
    pub recording_api_key_id: Option<String>,
    /// The global admin key (`CONVREC_BOOTSTRAP_ADMIN_KEY`); `None`: the stored or a new one.
    pub bootstrap_admin_key: Option<String>,
    /// This node's name among servers sharing a database (see [`node`]); `None`: the one kept
    /// in the data directory, made on the first start.
    pub node_id: Option<String>,
    /// How files are uploaded into the object store.
    pub upload: upload::UploadSettings,
    /// How this node takes part among nodes sharing the database.
    pub cluster: cluster::ClusterSettings,
    /// The TURN relay handed to participants and recorders; `None`: media goes directly.
    pub turn: Option<turn::TurnSettings>,
    /// Which addresses webhooks may reach.
    pub webhook_destinations: destinations::DestinationPolicy,
    /// What one client or account may take of the server.
    pub limits: limits::Limits,
}

/// Why the server could not start or run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The data directory could not be made.
    #[error("cannot use the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The metadata store could not be opened.
    #[error("cannot open the metadata database: {0}")]
    Metadata(#[from] MetadataError),
    /// The storage could not be prepared.
    #[error("cannot prepare storage: {0}")]
    Storage(#[from] storage::StorageError),
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A setting is missing or wrong.
    #[error("{0}")]
    Config(String),
    /// Serving failed.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// Another node took this node's work over (see [`cluster`]).
    #[error(transparent)]
    LeaseLost(#[from] cluster::LeaseLost),
}

/// How long a stopping server waits for its recorders to finish their files.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// What handlers share. Cloning is cheap.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The parts of the server.
pub struct Shared {
    /// The metadata store.
    pub metadata: Metadata,
    /// What is happening now.
    pub live: Live,
    /// The SFU.
    pub room: DriverHandle<Room>,
    /// Spool and object store.
    pub storage: Storage,
    /// Starts recorders.
    pub launcher: Box<dyn Launcher>,
    /// `identifier.recordingEntryPointBaseUrl`, without a trailing slash.
    pub base_url: String,
    /// The HTTP client requests are forwarded to other nodes with.
    pub http: reqwest::Client,
    /// The HTTP client webhooks are sent with (it reaches only allowed addresses).
    pub webhook_http: reqwest::Client,
    /// Which addresses webhooks may reach.
    pub webhook_destinations: Arc<destinations::DestinationPolicy>,
    /// Signs and checks download links.
    pub grants: grants::Grants,
    /// Cancelled when the server starts stopping (ends event streams).
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Wakes the webhook dispatcher when a message is queued.
    pub webhook_wakeup: tokio::sync::Notify,
    /// What `/metrics` shows.
    pub metrics: metrics::Metrics,
    /// This node's name (see [`node`]).
    pub node_id: String,
    /// How files are uploaded into the object store.
    pub upload_settings: upload::UploadSettings,
    /// This node's lease among the nodes sharing the database.
    pub cluster: cluster::Membership,
    /// The TURN relay handed to participants and recorders.
    pub turn: Option<turn::TurnSettings>,
    /// What one client or account may take of the server.
    pub limits: limits::Limits,
    /// The `RECORDER` key recorders must present at their entry point, if any
    /// ([`ServerConfig::recording_api_key_id`]).
    pub recording_api_key_id: Option<String>,
    /// Failed authentications per client.
    pub failed_auth: limits::FailedAuthTable,
    admin_key_digest: [u8; 32],
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Whether `token` is the global admin key.
    pub fn is_admin_key(&self, token: &str) -> bool {
        auth::same_digest(&auth::digest(token), &self.admin_key_digest)
    }
}

/// A server that is bound and ready to serve.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: AppState,
    generated_admin_key: Option<String>,
    media_addr: SocketAddr,
}

impl Server {
    /// Prepares the data directory, opens the metadata store, binds the HTTP listener and the
    /// SFU's UDP socket.
    pub async fn bind(config: &ServerConfig) -> Result<Self, ServerError> {
        let data_dir_error = |source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.data_dir).map_err(data_dir_error)?;
        let metadata = match &config.database_url {
            Some(url) => Metadata::open(url).await?,
            None => Metadata::open_sqlite(&config.data_dir.join("convrec.db")).await?,
        };
        let node_id = node::resolve(&config.data_dir, config.node_id.as_deref())
            .map_err(ServerError::Config)?;
        if config.upload.part_size < upload::MIN_PART_SIZE {
            return Err(ServerError::Config(format!(
                "object_store.part_size_mib must be at least {} (the smallest part S3 takes)",
                upload::MIN_PART_SIZE >> 20
            )));
        }
        let (admin_key, generated) =
            auth::admin_key(&config.data_dir, config.bootstrap_admin_key.as_deref())
                .map_err(data_dir_error)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
        let local = listener.local_addr().map_err(ServerError::Serve)?;
        let base_url = match &config.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if local.ip().is_unspecified() => {
                return Err(ServerError::Config(format!(
                    "listening on the wildcard address {local}: set the URL recorders reach this server at (--public-url or CONVREC_PUBLIC_URL, identifier.recordingEntryPointBaseUrl)"
                )));
            }
            None => format!("http://{local}"),
        };
        let node_url = match &config.cluster.node_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if local.ip().is_unspecified() => match &config.database_url {
                // Alone on its database: nobody needs to reach it.
                None => base_url.clone(),
                Some(_) => {
                    return Err(ServerError::Config(format!(
                        "listening on the wildcard address {local} with a shared database: set the URL other nodes reach this node at (--node-url or CONVREC_NODE_URL)"
                    )));
                }
            },
            None => format!("http://{local}"),
        };
        let media_listen = config
            .media_listen
            .unwrap_or(SocketAddr::new(local.ip(), 0));
        if media_listen.ip().is_unspecified() {
            return Err(ServerError::Config(format!(
                "the media address {media_listen} is a wildcard; WebRTC peers need the concrete IP they reach it at (--media-listen or CONVREC_MEDIA_LISTEN)"
            )));
        }
        let media_socket = tokio::net::UdpSocket::bind(media_listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: media_listen,
                source,
            })?;
        let media_addr = media_socket.local_addr().map_err(ServerError::Serve)?;
        let advertised = config.media_advertise.unwrap_or(media_addr);
        if advertised.ip().is_unspecified() || advertised.port() == 0 {
            return Err(ServerError::Config(format!(
                "the advertised media address {advertised} must name an IP and a port peers reach (--media-advertise or CONVREC_MEDIA_ADVERTISE)"
            )));
        }
        let (room, room_events) =
            driver::spawn(media_socket, Room::new(advertised)).map_err(ServerError::Serve)?;
        let storage = match &config.object_store_url {
            Some(url) => Storage::remote(&config.data_dir, url)?,
            None => Storage::local(&config.data_dir)?,
        };
        let own_grant_key = grants::Grants::load_or_create(&config.data_dir)
            .map_err(data_dir_error)?
            .to_hex();
        let shared = metadata
            .shared_secret("download-grant-key", &own_grant_key)
            .await?;
        let grants = grants::Grants::from_hex(&shared).ok_or_else(|| {
            ServerError::Config("the download key kept in the database is not 64 hex digits".into())
        })?;
        let state = AppState(Arc::new(Shared {
            metadata,
            live: Live::default(),
            room,
            storage,
            launcher: Box::new(match &config.recorder_command {
                Some(template) => {
                    ProcessLauncher::command(template, config.recorder_program.clone())
                }
                None => ProcessLauncher::local(config.recorder_program.clone()),
            }),
            base_url,
            http: reqwest::Client::new(),
            webhook_http: destinations::webhook_client(Arc::new(
                config.webhook_destinations.clone(),
            )),
            webhook_destinations: Arc::new(config.webhook_destinations.clone()),
            shutdown: tokio_util::sync::CancellationToken::new(),
            grants,
            webhook_wakeup: tokio::sync::Notify::new(),
            metrics: metrics::Metrics::new(),
            node_id,
            upload_settings: config.upload,
            cluster: cluster::Membership::new(node_url, config.cluster.lease),
            turn: config.turn.clone(),
            limits: config.limits.clone(),
            recording_api_key_id: config.recording_api_key_id.clone(),
            failed_auth: std::sync::Mutex::new(limits::FailedAuthentications::new(
                config.limits.failed_auth_per_minute,
                limits::FAILED_AUTH_WINDOW,
            )),
            admin_key_digest: auth::digest(&admin_key),
        }));
        tokio::spawn(sfu::run_events(state.clone(), room_events));
        cluster::join(&state).await?;
        recording::recover(&state).await?;
        tokio::spawn(webhooks::run_dispatcher(state.clone()));
        Ok(Self {
            listener,
            state,
            generated_admin_key: generated.then_some(admin_key),
            media_addr,
        })
    }

    /// The address it listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(ServerError::Serve)
    }

    /// The SFU's UDP address.
    pub fn media_addr(&self) -> SocketAddr {
        self.media_addr
    }

    /// The admin key, if it was generated by this start (to be shown once).
    pub fn generated_admin_key(&self) -> Option<&str> {
        self.generated_admin_key.as_deref()
    }

    /// Serves until `shutdown` completes; then ends calls and layers, finishes the running
    /// recordings (up to [`SHUTDOWN_GRACE`]) and the requests in flight.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let state = self.state.clone();
        let stopping = async move {
            shutdown.await;
            tracing::info!("stopping: ending calls and finishing recordings");
            recording::stop_all(&state, SHUTDOWN_GRACE).await;
            // With recordings unfinished (their spools kept), the lease runs out by itself: the
            // next start of this node, or another node, finishes them.
            if !state.live.recording_work_left() {
                cluster::leave(&state).await;
            }
        };
        let listener = limits::LimitedListener::new(
            self.listener,
            self.state.limits.max_connections,
            self.state.metrics.http_connections.clone(),
        );
        let serving = axum::serve(
            listener,
            router::build(self.state.clone())
                .into_make_service_with_connect_info::<limits::ClientAddr>(),
        )
        .with_graceful_shutdown(stopping);
        tokio::select! {
            served = serving => served.map_err(ServerError::Serve),
            // Its work is another node's now: stop without touching it.
            lost = cluster::run(self.state) => Err(lost.into()),
        }
    }
}

/// Now, in Unix milliseconds (the one clock of the API layer).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
