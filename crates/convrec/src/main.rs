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
    /// Run the main job on embedded defaults: a server, a recorded call between synthetic
    /// participants over real WebRTC, and the files it made.
    Demo(cli::demo::DemoArgs),
    /// Report tracks, durations, fragments, key frames, A/V offset, gaps and the index of an
    /// fMP4 file; exits non-zero with the byte offset where a damaged file breaks.
    Inspect(cli::inspect::InspectArgs),
    /// Turn a recording file encrypted for the account's public key back into its fMP4, checking
    /// every chunk; exits non-zero when the file was cut short or altered.
    Decrypt(cli::decrypt::DecryptArgs),
    /// Make a key pair for encryption at rest: the private key into a file, the public key
    /// printed (to set as conversation.recording.encryptionPublicKey).
    Keygen(cli::keygen::KeygenArgs),
    /// Run the server on its data directory (SQLite metadata, local storage), or as one node
    /// of several sharing a PostgreSQL database and an object store.
    Serve(Box<cli::serve::ServeArgs>),
    /// The recorder process a server launches (entry point in CONVREC_ENTRY_POINT).
    Recorder(cli::recorder::RecorderArgs),
    /// A synthetic participant: publishes the embedded fixtures into a call over WebRTC.
    Participant(cli::participant::ParticipantArgs),
    /// Measure call start → recorder ready over repeated calls (docs/benchmarks.md).
    BenchReady(cli::bench_ready::BenchReadyArgs),
    /// Run rounds of N concurrent recorded calls on this machine and report, per N, what
    /// each recorder uses, fragment acknowledgement latency and media missing from the files.
    Loadtest(cli::loadtest::LoadtestArgs),
    /// Measure composing a call's video against ffmpeg on the same inputs (docs/benchmarks.md).
    BenchCompose(cli::bench_compose::BenchComposeArgs),
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
        Command::Decrypt(a) => cli::decrypt::run(a),
        Command::Keygen(a) => cli::keygen::run(a),
        Command::Serve(a) => cli::serve::run(*a),
        Command::Recorder(a) => cli::recorder::run(a),
        Command::Participant(a) => cli::participant::run(a),
        Command::BenchReady(a) => cli::bench_ready::run(a),
        Command::Loadtest(a) => cli::loadtest::run(a),
        Command::BenchCompose(a) => cli::bench_compose::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("convrec: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
