//! `sigil generate-key-pair` and reading a key password the way cosign does.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use super::exit;
use crate::keys::{DEFAULT_SCRYPT_PARAMS, SigningKey};

pub const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

#[derive(Debug, Args)]
#[command(
    about = "Generate a cosign-compatible key pair (PREFIX.key encrypted, PREFIX.pub)",
    long_about = "Generate an ECDSA P-256 key pair in cosign's format: PREFIX.key is the private key \
encrypted with scrypt + NaCl secretbox (PEM ENCRYPTED SIGSTORE PRIVATE KEY), PREFIX.pub the PEM public key.\n\
The password comes from $COSIGN_PASSWORD (may be empty) or is asked for on the terminal."
)]
pub struct GenerateKeyPairArgs {
    /// File name prefix for the key files.
    #[arg(long, default_value = "cosign")]
    pub output_key_prefix: String,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("reading the password: {0}")]
    Io(#[from] std::io::Error),
    #[error("passwords do not match")]
    Mismatch,
}

/// Reads one line from stdin, with terminal echo off when stdin is a terminal.
fn read_secret_line(prompt: &str) -> Result<String, PasswordError> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        set_echo(false);
    }
    let mut line = String::new();
    let result = stdin.lock().read_line(&mut line);
    if tty {
        set_echo(true);
        eprintln!();
    }
    result?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Best effort: without a terminal library, `stty` is the portable way to hide typing.
fn set_echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}

/// The password for an existing key: `$COSIGN_PASSWORD`, else asked once.
pub fn password_for_existing_key(path: &Path) -> Result<String, PasswordError> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    read_secret_line(&format!(
        "Enter password for private key {}: ",
        path.display()
    ))
}

/// The password for a new key: `$COSIGN_PASSWORD`, else asked twice on a terminal.
fn password_for_new_key() -> Result<String, PasswordError> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    let first = read_secret_line("Enter password for private key: ")?;
    if std::io::stdin().is_terminal() {
        let again = read_secret_line("Enter password for private key again: ")?;
        if again != first {
            return Err(PasswordError::Mismatch);
        }
    }
    Ok(first)
}

pub fn generate_key_pair(args: GenerateKeyPairArgs) -> u8 {
    match run(&args) {
        Ok((key_path, pub_path)) => {
            eprintln!(
                "Private key written to {}\nPublic key written to {}",
                key_path.display(),
                pub_path.display()
            );
            exit::OK
        }
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            code
        }
    }
}

fn run(args: &GenerateKeyPairArgs) -> Result<(PathBuf, PathBuf), (u8, String)> {
    let key_path = PathBuf::from(format!("{}.key", args.output_key_prefix));
    let pub_path = PathBuf::from(format!("{}.pub", args.output_key_prefix));
    for p in [&key_path, &pub_path] {
        if p.exists() && !args.force {
            return Err((
                exit::USAGE,
                format!("{} already exists (pass --force to overwrite)", p.display()),
            ));
        }
    }
    let password = password_for_new_key().map_err(|e| (exit::USAGE, e.to_string()))?;
    let key = SigningKey::generate().map_err(|e| (exit::FAILED, e.to_string()))?;
    let pem = key
        .to_encrypted_pem(password.as_bytes(), DEFAULT_SCRYPT_PARAMS)
        .map_err(|e| (exit::FAILED, e.to_string()))?;
    write_private(&key_path, pem.as_bytes())
        .map_err(|e| (exit::FAILED, format!("writing {}: {e}", key_path.display())))?;
    std::fs::write(&pub_path, key.public_key_pem())
        .map_err(|e| (exit::FAILED, format!("writing {}: {e}", pub_path.display())))?;
    Ok((key_path, pub_path))
}

/// The private key file is readable by its owner only, as cosign writes it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}
