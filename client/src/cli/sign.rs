//! `sigil sign-blob` and the sigstore-conformance `sigil sign-bundle`.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use sigil_proto::trust::{ClientTrustConfig, SigningConfig, TrustedRoot};

use super::exit;
use super::keys::password_for_existing_key;
use super::login::{LoginArgs, identity_token};
use crate::keys::SigningKey;
use crate::sign::config::select;
use crate::sign::digest::sha256_file;
use crate::sign::{
    KeylessServices, SignError, SignedBundle, SignedBy, http_client, sign_blob_keyed,
    sign_blob_keyless, sign_statement_keyless,
};
use crate::trust_source::{ServerUrl, TrustSource, load_trusted_root};

const SIGN_BLOB_ABOUT: &str = "\
Sign a file and write a Sigstore bundle (v0.3) for it.

Keyless (default): an ephemeral key is certified by the CA for the identity in an OIDC token
(--identity-token, else $SIGSTORE_ID_TOKEN, else GitHub Actions' token service, else
Buildkite's agent, else CircleCI's CLI, all with audience sigstore; else, from a terminal or
with --interactive, a login at --oidc-issuer: browser with a loopback redirect, or the device
flow with --oidc-device-flow or without a display).

Keyed: --key with a cosign key file (password from $COSIGN_PASSWORD or the terminal).
Either way the signature is logged in the transparency log, and the bundle is
verified against the trusted root before it is written.

Services: --server URL (CA, log and trusted root of a sigil server), or --trust-config FILE
(a ClientTrustConfig: services chosen from its signing config). --rekor-url overrides the log;
--trusted-root FILE replaces the server's trusted root.

Examples:
  sigil sign-blob release.tar.gz --server https://sigil.example.com --identity-token \"$TOKEN\"
  sigil sign-blob release.tar.gz --key cosign.key --trust-config trust_config.json
  sigil sign-blob app.bin --server https://sigil.example.com --interactive \\
      --oidc-issuer https://dex.example.com --oidc-device-flow
  sigil sign-blob app.bin --key cosign.key --rekor-url http://127.0.0.1:3000 --bundle app.bundle

Exit codes: 0 signed, 1 signing failed, 2 usage or input error.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
#[command(about = "Sign a file (keyless or with a cosign key) and write a bundle", long_about = SIGN_BLOB_ABOUT)]
pub struct SignBlobArgs {
    /// The file to sign.
    pub file: PathBuf,
    /// Where to write the bundle [default: FILE.sigstore.json].
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    #[command(flatten)]
    pub signing: SigningArgs,
    /// Output format for the summary.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// Who signs and where: shared by every signing command.
#[derive(Debug, Args)]
pub struct SigningArgs {
    /// cosign encrypted private key; without it signing is keyless.
    #[arg(long, conflicts_with_all = ["identity_token", "interactive"])]
    pub key: Option<PathBuf>,
    /// OIDC identity token for keyless signing.
    #[arg(long)]
    pub identity_token: Option<String>,
    #[command(flatten)]
    pub login: LoginArgs,
    /// A sigil server: CA, transparency log and trusted root. Plain http only for a loopback
    /// address (or with --insecure-trust).
    #[arg(long, conflicts_with = "trust_config")]
    pub server: Option<String>,
    /// Fetch trust from a --server over plain http on a non-loopback address: anyone on the
    /// path could replace it.
    #[arg(long, requires = "server")]
    pub insecure_trust: bool,
    /// ClientTrustConfig JSON (trusted root + signing config).
    #[arg(long)]
    pub trust_config: Option<PathBuf>,
    /// Transparency log (Rekor v1) base URL, overriding the server or signing config.
    #[arg(long)]
    pub rekor_url: Option<String>,
    /// Trusted root JSON to check the bundle against, instead of the server's.
    #[arg(long, conflicts_with = "trust_config")]
    pub trusted_root: Option<PathBuf>,
}

/// The sigstore-conformance protocol:
/// `sign-bundle [--staging] [--in-toto] --identity-token TOKEN --bundle FILE [--trusted-root F] [--signing-config F] FILE`.
#[derive(Debug, Args)]
#[command(about = "Sign a file keylessly into a bundle (sigstore-conformance protocol)")]
pub struct SignBundleArgs {
    /// Use the staging trusted root as the default.
    #[arg(long)]
    pub staging: bool,
    /// FILE is an in-toto statement to sign as a DSSE envelope.
    #[arg(long)]
    pub in_toto: bool,
    /// OIDC identity token for the CA.
    #[arg(long)]
    pub identity_token: String,
    /// Where to write the bundle.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Trusted root JSON [default: $SIGIL_TRUSTED_ROOT or ~/.config/sigil/trusted_root.json].
    #[arg(long)]
    pub trusted_root: Option<PathBuf>,
    /// SigningConfig v0.2 JSON naming the CA and the transparency log.
    #[arg(long)]
    pub signing_config: Option<PathBuf>,
    /// A sigil server to use when no signing config is given (plain http: loopback only).
    #[arg(long, conflicts_with = "signing_config")]
    pub server: Option<String>,
    /// The file to sign (with --in-toto: the statement).
    pub file: PathBuf,
}

pub(crate) enum Failure {
    Usage(String),
    Sign(SignError),
}

impl From<SignError> for Failure {
    fn from(e: SignError) -> Self {
        Failure::Sign(e)
    }
}

pub(crate) fn usage(msg: impl Into<String>) -> Failure {
    Failure::Usage(msg.into())
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| usage(format!("cannot read {what} {}: {e}", path.display())))
}

/// The services and trusted root a signing command resolved to.
pub(crate) struct Resolved {
    pub ca_url: Option<String>,
    pub rekor_url: String,
    /// `None` only for keyed signing where no trusted root is available.
    pub trusted_root: Option<TrustedRoot>,
    /// The issuer the signing config names for interactive logins (`oidcUrls`).
    pub oidc_url: Option<String>,
}

fn from_signing_config(
    config: &SigningConfig,
    trusted_root: Option<TrustedRoot>,
    rekor_override: Option<&str>,
) -> Result<Resolved, Failure> {
    let selected = select(config, time::OffsetDateTime::now_utc())
        .map_err(|e| usage(format!("signing config: {e}")))?;
    let rekor_url = match rekor_override {
        Some(u) => u.to_string(),
        None => selected.rekor_urls.first().cloned().unwrap_or_default(),
    };
    Ok(Resolved {
        ca_url: selected.ca_url,
        rekor_url,
        trusted_root,
        oidc_url: first_valid_oidc_url(config),
    })
}

/// The first `oidcUrls` entry valid now.
fn first_valid_oidc_url(config: &SigningConfig) -> Option<String> {
    let now = time::OffsetDateTime::now_utc();
    config
        .oidc_urls
        .iter()
        .find(|s| s.valid_for.contains(now))
        .map(|s| s.url.clone())
}

pub(crate) fn resolve_signing(args: &SigningArgs, keyed: bool) -> Result<Resolved, Failure> {
    if let Some(path) = &args.trust_config {
        let config = ClientTrustConfig::from_json(&read(path, "trust config")?)
            .map_err(|e| usage(format!("{}: {e}", path.display())))?;
        return from_signing_config(
            &config.signing_config,
            Some(config.trusted_root),
            args.rekor_url.as_deref(),
        );
    }
    let given_root = args
        .trusted_root
        .as_ref()
        .map(|p| load_trusted_root(&TrustSource::TrustedRoot(p.clone())))
        .transpose()
        .map_err(|e| usage(e.to_string()))?;
    if let Some(server) = &args.server {
        let server = ServerUrl::new(server, args.insecure_trust).map_err(usage)?;
        // The server's trust config also names its login issuer; a log-only server has
        // none, and then only its trusted root is asked for.
        let served = load_server_trust_config(&server).ok();
        let oidc_url = served
            .as_ref()
            .and_then(|c| first_valid_oidc_url(&c.signing_config));
        let fetched = match (given_root, served) {
            (Some(root), _) => Ok(root),
            (None, Some(config)) => Ok(config.trusted_root),
            (None, None) => load_trusted_root(&TrustSource::Server(server.clone())),
        };
        let trusted_root = match fetched {
            Ok(root) => Some(root),
            // A log-only server has no trusted root to give; a keyed bundle can still be
            // written, but nothing checks it before it is.
            Err(e) if keyed => {
                eprintln!("warning: {e}; the bundle is written without being verified first");
                None
            }
            Err(e) => return Err(usage(e.to_string())),
        };
        return Ok(Resolved {
            ca_url: Some(server.to_string()),
            rekor_url: args.rekor_url.clone().unwrap_or(server.to_string()),
            trusted_root,
            oidc_url,
        });
    }
    match (&args.rekor_url, keyed) {
        (Some(url), true) => Ok(Resolved {
            ca_url: None,
            rekor_url: url.clone(),
            trusted_root: given_root,
            oidc_url: None,
        }),
        _ => Err(usage(
            "say where to sign: --server URL or --trust-config FILE (or --rekor-url URL with --key)",
        )),
    }
}

fn default_bundle_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".sigstore.json");
    PathBuf::from(p)
}

/// `GET <server>/api/v1/trust-config`.
fn load_server_trust_config(server: &ServerUrl) -> Result<ClientTrustConfig, String> {
    let url = format!("{server}/api/v1/trust-config");
    let bytes = crate::trust_source::fetch(&url)?;
    ClientTrustConfig::from_json(&bytes).map_err(|e| format!("{url}: {e}"))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    super::current_thread_runtime().map_err(usage)
}

fn write_bundle(path: &Path, signed: &SignedBundle) -> Result<(), Failure> {
    std::fs::write(path, signed.bundle.to_json_pretty())
        .map_err(|e| usage(format!("cannot write bundle {}: {e}", path.display())))
}

pub(crate) fn load_signing_key(path: &Path) -> Result<SigningKey, Failure> {
    let pem = String::from_utf8(read(path, "private key")?)
        .map_err(|_| usage(format!("{} is not a PEM file", path.display())))?;
    let password = password_for_existing_key(path).map_err(|e| usage(e.to_string()))?;
    SigningKey::from_encrypted_pem(&pem, password.as_bytes())
        .map_err(|e| usage(format!("{}: {e}", path.display())))
}

fn run_sign_blob(args: &SignBlobArgs) -> Result<(PathBuf, SignedBundle), Failure> {
    let signing = &args.signing;
    let keyed = signing.key.is_some();
    let resolved = resolve_signing(signing, keyed)?;
    let key = signing.key.as_deref().map(load_signing_key).transpose()?;
    let digest = sha256_file(&args.file)
        .map_err(|e| usage(format!("cannot read {}: {e}", args.file.display())))?;
    let bundle_path = args
        .bundle
        .clone()
        .unwrap_or_else(|| default_bundle_path(&args.file));
    let http = http_client();
    let signed = runtime()?.block_on(async {
        match &key {
            Some(key) => Ok::<_, Failure>(
                sign_blob_keyed(
                    &http,
                    digest,
                    key,
                    &resolved.rekor_url,
                    resolved.trusted_root.as_ref(),
                )
                .await?,
            ),
            None => {
                let token = identity_token(
                    &http,
                    signing.identity_token.as_deref(),
                    &signing.login,
                    resolved.oidc_url.as_deref(),
                )
                .await
                .map_err(usage)?;
                let services = keyless_services(&resolved)?;
                let root = resolved
                    .trusted_root
                    .as_ref()
                    .ok_or_else(|| usage("keyless signing needs a trusted root"))?;
                Ok(sign_blob_keyless(&http, digest, &token, &services, root).await?)
            }
        }
    })?;
    write_bundle(&bundle_path, &signed)?;
    Ok((bundle_path, signed))
}

pub(crate) fn keyless_services(resolved: &Resolved) -> Result<KeylessServices, Failure> {
    let ca_url = resolved
        .ca_url
        .clone()
        .ok_or_else(|| usage("keyless signing needs a CA: the signing config lists none"))?;
    Ok(KeylessServices {
        ca_url,
        rekor_url: resolved.rekor_url.clone(),
    })
}

fn summary_json(path: &Path, s: &SignedBundle) -> serde_json::Value {
    serde_json::json!({
        "signed": true,
        "bundle": path.display().to_string(),
        "logUrl": s.log_url,
        "logIndex": s.log_index,
        "entryUuid": s.entry_uuid,
        "signedBy": s.signed_by,
        "verifiedBeforeWriting": s.self_checked,
    })
}

fn report(result: Result<(PathBuf, SignedBundle), Failure>, output: OutputFormat) -> u8 {
    match (result, output) {
        (Ok((path, signed)), OutputFormat::Json) => {
            println!("{}", summary_json(&path, &signed));
            exit::OK
        }
        (Ok((path, signed)), OutputFormat::Text) => {
            let who = match &signed.signed_by {
                SignedBy::Key { .. } => "the given key".to_string(),
                SignedBy::Certificate { identities, issuer } => format!(
                    "{} (issuer {})",
                    identities.join(", "),
                    issuer.as_deref().unwrap_or("?")
                ),
            };
            eprintln!(
                "Signed by {who}; log entry {} (uuid {}) at {}\nWrote bundle to {}",
                signed.log_index,
                signed.entry_uuid,
                signed.log_url,
                path.display()
            );
            exit::OK
        }
        (Err(Failure::Usage(msg)), OutputFormat::Json) => {
            println!("{}", serde_json::json!({"signed": false, "error": msg}));
            exit::USAGE
        }
        (Err(Failure::Usage(msg)), OutputFormat::Text) => {
            eprintln!("error: {msg}");
            exit::USAGE
        }
        (Err(Failure::Sign(e)), OutputFormat::Json) => {
            println!(
                "{}",
                serde_json::json!({"signed": false, "error": e.to_string()})
            );
            exit::FAILED
        }
        (Err(Failure::Sign(e)), OutputFormat::Text) => {
            eprintln!("signing failed: {e}");
            exit::FAILED
        }
    }
}

pub fn sign_blob(args: SignBlobArgs) -> u8 {
    report(run_sign_blob(&args), args.output)
}

fn resolve_sign_bundle(args: &SignBundleArgs) -> Result<Resolved, Failure> {
    let source = match &args.trusted_root {
        Some(p) => TrustSource::TrustedRoot(p.clone()),
        None => TrustSource::Default {
            staging: args.staging,
        },
    };
    if let Some(path) = &args.signing_config {
        let trusted_root = load_trusted_root(&source).map_err(|e| usage(e.to_string()))?;
        let config = SigningConfig::from_json(&read(path, "signing config")?)
            .map_err(|e| usage(format!("{}: {e}", path.display())))?;
        return from_signing_config(&config, Some(trusted_root), None);
    }
    if let Some(server) = &args.server {
        let server = ServerUrl::new(server, false).map_err(usage)?;
        let trusted_root = match &args.trusted_root {
            Some(_) => load_trusted_root(&source),
            None => load_trusted_root(&TrustSource::Server(server.clone())),
        }
        .map_err(|e| usage(e.to_string()))?;
        return Ok(Resolved {
            ca_url: Some(server.to_string()),
            rekor_url: server.to_string(),
            trusted_root: Some(trusted_root),
            oidc_url: None,
        });
    }
    if let Some(path) = default_signing_config(args.staging).filter(|p| p.exists()) {
        let trusted_root = load_trusted_root(&source).map_err(|e| usage(e.to_string()))?;
        let config = SigningConfig::from_json(&read(&path, "signing config")?)
            .map_err(|e| usage(format!("{}: {e}", path.display())))?;
        return from_signing_config(&config, Some(trusted_root), None);
    }
    Err(usage(
        "sign-bundle needs --signing-config FILE (or --server URL) to find the CA and the log, \
         or a default at $SIGIL_SIGNING_CONFIG / ~/.config/sigil/signing_config.json",
    ))
}

/// `$SIGIL_SIGNING_CONFIG`, else `~/.config/sigil/signing_config.json`
/// (`staging_signing_config.json` for staging), beside the default trusted root.
fn default_signing_config(staging: bool) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SIGIL_SIGNING_CONFIG").filter(|_| !staging) {
        return Some(PathBuf::from(p));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    let file = if staging {
        "staging_signing_config.json"
    } else {
        "signing_config.json"
    };
    Some(config.join("sigil").join(file))
}

fn run_sign_bundle(args: &SignBundleArgs) -> Result<(PathBuf, SignedBundle), Failure> {
    let resolved = resolve_sign_bundle(args)?;
    let services = keyless_services(&resolved)?;
    let root = resolved
        .trusted_root
        .ok_or_else(|| usage("keyless signing needs a trusted root"))?;
    let http = http_client();
    let signed = if args.in_toto {
        let statement = read(&args.file, "in-toto statement")?;
        runtime()?.block_on(sign_statement_keyless(
            &http,
            &statement,
            &args.identity_token,
            &services,
            &root,
        ))?
    } else {
        let digest = sha256_file(&args.file)
            .map_err(|e| usage(format!("cannot read {}: {e}", args.file.display())))?;
        runtime()?.block_on(sign_blob_keyless(
            &http,
            digest,
            &args.identity_token,
            &services,
            &root,
        ))?
    };
    write_bundle(&args.bundle, &signed)?;
    Ok((args.bundle.clone(), signed))
}

pub fn sign_bundle_conformance(args: SignBundleArgs) -> u8 {
    report(run_sign_bundle(&args), OutputFormat::Text)
}
