//! `convrec keygen --private-key FILE`: makes a key pair for encryption at rest. The private
//! key goes to FILE (readable by its owner only) and stays with the account; the public key is
//! printed, to be set as `conversation.recording.encryptionPublicKey`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use convrec_seal::{OpeningKey, Scheme};

/// Arguments of `convrec keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key (PEM PKCS #8); it must not exist.
    #[arg(long)]
    private_key: PathBuf,
    /// The kind of key.
    #[arg(long, value_enum, default_value_t = KeyKind::X25519)]
    kind: KeyKind,
}

/// Kinds of keys.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum KeyKind {
    /// X25519 (small and fast).
    X25519,
    /// RSA, 3072 bits (for key stores that hold only RSA).
    Rsa,
}

/// Runs `keygen`.
pub fn run(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let scheme = match args.kind {
        KeyKind::X25519 => Scheme::X25519,
        KeyKind::Rsa => Scheme::RsaOaep,
    };
    let key = OpeningKey::generate(scheme)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.private_key)
        .with_context(|| format!("cannot create {}", args.private_key.display()))?;
    file.write_all(key.to_pem().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", args.private_key.display()))?;
    print!("{}", key.recipient().to_pem());
    eprintln!(
        "convrec: the private key is in {}; key id {}",
        args.private_key.display(),
        key.recipient().key_id_hex()
    );
    Ok(ExitCode::SUCCESS)
}
