//! The `sigil` command line. Each subcommand group lives in its own module and exposes an
//! `Args` struct plus a `run` function; adding one is a new variant here and a new module.

mod attachments;
mod attest_blob;
mod image;
mod keys;
mod log;
mod login;
mod registry_args;
mod sign;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const LONG_ABOUT: &str = "\
sigil is a Sigstore-compatible client. It signs files and container images, keyless (an OIDC
identity certified by the CA) or with cosign keys, logs every signature in a transparency log,
and verifies Sigstore bundles (v0.1 to v0.3) fully offline against a trusted root: certificate
chain, embedded SCT, signer identity, transparency-log inclusion and checkpoint, signed entry
timestamps and RFC 3161 timestamps. Images use cosign's formats, so cosign verifies what sigil
signs and the other way round.

Examples:
  # Keyless: who must have signed, and which OIDC issuer vouched for them
  sigil verify-blob release.tar.gz --bundle release.tar.gz.sigstore.json \\
      --certificate-identity alice@example.com \\
      --certificate-oidc-issuer https://accounts.example.com \\
      --trusted-root trusted_root.json

  # A managed key instead of an identity
  sigil verify-blob release.tar.gz --bundle release.tar.gz.sigstore.json --key cosign.pub \\
      --trusted-root trusted_root.json

  # A container image: sign its digest in CI, verify before deploy
  sigil sign registry.example.com/app@sha256:4f2c... --server https://sigil.example.com --yes
  sigil verify registry.example.com/app@sha256:4f2c... --server https://sigil.example.com \\
      --certificate-identity-regexp '^https://github.com/acme/' \\
      --certificate-oidc-issuer https://token.actions.githubusercontent.com

Exit codes: 0 verified, 1 verification failed, 2 usage or input error.";

#[derive(Debug, Parser)]
#[command(name = "sigil", version, about = "Sign and verify artifacts with Sigstore-compatible bundles", long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    VerifyBlob(Box<verify::VerifyBlobArgs>),
    VerifyBundle(verify::VerifyBundleArgs),
    GenerateKeyPair(keys::GenerateKeyPairArgs),
    SignBlob(Box<sign::SignBlobArgs>),
    SignBundle(sign::SignBundleArgs),
    Sign(Box<image::SignArgs>),
    Verify(Box<image::VerifyArgs>),
    Attest(Box<image::AttestArgs>),
    VerifyAttestation(Box<image::VerifyAttestationArgs>),
    AttestBlob(Box<attest_blob::AttestBlobArgs>),
    VerifyBlobAttestation(Box<attest_blob::VerifyBlobAttestationArgs>),
    Tree(attachments::TreeArgs),
    Download(attachments::DownloadArgs),
    Triangulate(attachments::TriangulateArgs),
    Copy(attachments::CopyArgs),
    Log(log::LogArgs),
}

/// Exit codes shared by every subcommand.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
}

/// The single-threaded runtime a command runs its network work on; the error says why it
/// could not start.
pub(crate) fn current_thread_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::VerifyBlob(args) => verify::verify_blob(*args),
        Command::VerifyBundle(args) => verify::verify_bundle_conformance(args),
        Command::GenerateKeyPair(args) => keys::generate_key_pair(args),
        Command::SignBlob(args) => sign::sign_blob(*args),
        Command::SignBundle(args) => sign::sign_bundle_conformance(args),
        Command::Sign(args) => image::sign(*args),
        Command::Verify(args) => image::verify(*args),
        Command::Attest(args) => image::attest(*args),
        Command::VerifyAttestation(args) => image::verify_attestation(*args),
        Command::AttestBlob(args) => attest_blob::attest_blob(*args),
        Command::VerifyBlobAttestation(args) => attest_blob::verify_blob_attestation(*args),
        Command::Tree(args) => attachments::tree(args),
        Command::Download(args) => attachments::download(args),
        Command::Triangulate(args) => attachments::triangulate(args),
        Command::Copy(args) => attachments::copy_image(args),
        Command::Log(args) => log::log(args),
    };
    ExitCode::from(code)
}
