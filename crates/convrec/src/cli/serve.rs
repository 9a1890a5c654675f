//! `convrec serve [--listen ADDR] [--data-dir DIR]` (SPEC §7).

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
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let config = ServerConfig {
            listen: args.listen,
            data_dir: args.data_dir,
        };
        let server = Server::bind(&config).await?;
        let addr = server.local_addr()?;
        // Watch for SIGTERM before announcing ourselves: a stop sent right after the line must
        // be a graceful one.
        let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch for SIGTERM")?;
        // Scripts and tests wait for exactly this line.
        println!("convrec listening on http://{addr}");
        std::io::stdout().flush()?;
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "serving");
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
