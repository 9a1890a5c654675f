//! `convrec`: the single binary of the convrec recording service.

mod cli;

use clap::{Parser, Subcommand};

/// convrec: self-hosted conversation recording into fragmented MP4.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Record a synthetic publication (the embedded fixtures) through the media core and show
    /// the result. Step 1 of the roadmap: no server or WebRTC yet.
    Demo(cli::demo::DemoArgs),
    /// Report tracks, durations, fragments, key frames, A/V offset, gaps and the index of an
    /// fMP4 file; exits non-zero with the byte offset where a damaged file breaks.
    Inspect(cli::inspect::InspectArgs),
    /// Run the server on its data directory (SQLite metadata, local storage).
    Serve(cli::serve::ServeArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let result = match args.command {
        Command::Demo(a) => cli::demo::run(a),
        Command::Inspect(a) => cli::inspect::run(a),
        Command::Serve(a) => cli::serve::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("convrec: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
