//! `convrec decrypt --key PRIVATE IN OUT`: opens a recording file encrypted for the account's
//! public key (docs/security.md) back into the fMP4 it was.

use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use convrec_seal::{OpenError, OpeningKey, open_stream};

/// Arguments of `convrec decrypt`.
#[derive(Debug, clap::Args)]
pub struct DecryptArgs {
    /// The private key, PEM PKCS #8 ('-----BEGIN PRIVATE KEY-----'), X25519 or RSA.
    #[arg(long)]
    key: PathBuf,
    /// The encrypted file, as downloaded (`….sealed`).
    input: PathBuf,
    /// Where to write the fMP4.
    output: PathBuf,
}

/// Runs `decrypt`: exit 0 when the whole file opened; 1 when it is cut short or altered (the
/// output then holds every block before the damage, itself a playable fMP4) or cannot be
/// opened with this key (no output).
pub fn run(args: DecryptArgs) -> anyhow::Result<ExitCode> {
    let pem = std::fs::read_to_string(&args.key)
        .with_context(|| format!("cannot read the key {}", args.key.display()))?;
    let key = OpeningKey::from_pem(&pem)
        .with_context(|| format!("{} is not a key convrec can use", args.key.display()))?;
    let input = std::fs::File::open(&args.input)
        .with_context(|| format!("cannot open {}", args.input.display()))?;
    let output = std::fs::File::create(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let opened = open_stream(
        &key,
        BufReader::with_capacity(1 << 20, input),
        BufWriter::with_capacity(1 << 20, output),
    )
    .with_context(|| {
        format!(
            "cannot decrypt {} into {}",
            args.input.display(),
            args.output.display()
        )
    })?;
    match opened.outcome {
        Ok(()) => {
            println!(
                "{}: {} chunks opened and verified; the whole file is in {}",
                args.input.display(),
                opened.chunks,
                args.output.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(
            e @ (OpenError::NotSealed
            | OpenError::WrongKey { .. }
            | OpenError::Unwrap
            | OpenError::UnsupportedVersion(_)
            | OpenError::UnknownScheme(_)),
        ) => {
            let _ = std::fs::remove_file(&args.output);
            eprintln!("convrec: {}: {e}", args.input.display());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!(
                "convrec: {}: {e}; {} holds the {} blocks before it",
                args.input.display(),
                args.output.display(),
                opened.chunks
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
