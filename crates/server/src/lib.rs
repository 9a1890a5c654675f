//! The convrec server. So far: start-up on its data directory (SQLite metadata), the HTTP
//! listener with `/health`, and graceful shutdown. The web API, the SFU endpoints (WHIP, WHEP,
//! events) and the recorder entry point are added to [`router`] as step 2 goes on.

pub mod router;

use std::net::SocketAddr;
use std::path::PathBuf;

use convrec_store::metadata::{Metadata, MetadataError};
use thiserror::Error;

/// How the server is started (SPEC §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where the HTTP API listens (port 0: any free port).
    pub listen: SocketAddr,
    /// Where the metadata database, the spool and the local object store live.
    pub data_dir: PathBuf,
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
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The metadata store.
    pub metadata: Metadata,
}

/// A server that is bound and ready to serve.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: AppState,
}

impl Server {
    /// Prepares the data directory, opens the metadata store and binds the listener.
    pub async fn bind(config: &ServerConfig) -> Result<Self, ServerError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let metadata = Metadata::open_sqlite(&config.data_dir.join("convrec.db")).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
        Ok(Self {
            listener,
            state: AppState { metadata },
        })
    }

    /// The address it listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(ServerError::Serve)
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        axum::serve(self.listener, router::build(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServerError::Serve)
    }
}
