//! `convrec serve [--listen ADDR] [--data-dir DIR] [--media-listen ADDR] [--public-url URL]`
//! (SPEC §7).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use convrec_server::{Server, ServerConfig};

/// Arguments of `convrec serve`; each flag has an environment variable, and the flag wins.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the HTTP API (port 0: any free port).
    #[arg(long, env = "CONVREC_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory for the metadata database, the spool and local recordings.
    #[arg(long, env = "CONVREC_DATA_DIR", default_value = "./convrec-data")]
    data_dir: PathBuf,
    /// UDP address of the SFU, one port for all media (default: the HTTP address's IP, any
    /// free port). Must be the IP peers reach.
    #[arg(long, env = "CONVREC_MEDIA_LISTEN")]
    media_listen: Option<SocketAddr>,
    /// The URL recorders reach this server at (identifier.recordingEntryPointBaseUrl);
    /// required when listening on a wildcard address.
    #[arg(long, env = "CONVREC_PUBLIC_URL")]
    public_url: Option<String>,
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let config = ServerConfig {
            listen: args.listen,
            data_dir: args.data_dir,
            media_listen: args.media_listen,
            public_url: args.public_url,
            recorder_program: std::env::current_exe()
                .context("cannot find this program to launch recorders with")?,
            // A secret: from the environment only, never a flag.
            bootstrap_admin_key: std::env::var("CONVREC_BOOTSTRAP_ADMIN_KEY").ok(),
        };
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
