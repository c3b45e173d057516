//! `sigil verify-blob` and the sigstore-conformance `sigil verify-bundle`.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use sigil_proto::bundle::Bundle;

use super::exit;
use crate::trust_source::{ServerUrl, TrustSource, load_trusted_root};
use crate::verify::{
    Artifact, GithubClaims, IdentityPolicy, Matcher, Policy, PublicKey, VerifiedBundle,
    VerifyError, verify_bundle,
};

const VERIFY_BLOB_ABOUT: &str = "\
Verify a Sigstore bundle for a file, offline.

Keyless bundles need the expected signer: --certificate-identity (or -regexp) AND
--certificate-oidc-issuer (or -regexp). Keyed bundles need --key. The trusted root comes
from --trusted-root, --trust-config (a ClientTrustConfig), --server (GET <URL>/api/v1/trusted-root),
or by default $SIGIL_TRUSTED_ROOT / ~/.config/sigil/trusted_root.json.

Regular expressions match anywhere in the value (as in cosign); anchor them with ^...$.

Examples:
  sigil verify-blob a.txt --bundle a.txt.sigstore.json --trusted-root trusted_root.json \\
      --certificate-identity alice@example.com --certificate-oidc-issuer https://issuer.example
  sigil verify-blob a.txt --key cosign.pub --trust-config trust_config.json --output json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
#[command(about = "Verify a file against its Sigstore bundle", long_about = VERIFY_BLOB_ABOUT)]
pub struct VerifyBlobArgs {
    /// The signed file.
    pub file: PathBuf,
    /// The bundle [default: FILE.sigstore.json].
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    #[command(flatten)]
    pub signer: SignerPolicyArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub witnesses: WitnessPolicyArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// Witnesses that must have seen the log's history up to the entry (online: asks the log).
#[derive(Debug, Args)]
pub struct WitnessPolicyArgs {
    /// Also require the log's witnessed checkpoint to carry valid cosignatures from at least
    /// N of the --witness keys and to extend the bundle's checkpoint (asks the log online).
    #[arg(long, value_name = "N")]
    pub require_witnesses: Option<usize>,
    /// A witness to trust: `<name>+<key id>+<base64 key>` (a sigild witness serves it at
    /// /witness/vkey). Repeatable. Without it: $SIGIL_WITNESS_KEYS, else the keys listed in
    /// ~/.config/sigil/witnesses.
    #[arg(long = "witness", value_name = "VKEY")]
    pub witnesses: Vec<String>,
}

impl WitnessPolicyArgs {
    /// The witnesses to require, or `None` when the caller asked for none.
    pub(crate) fn required(&self) -> Result<Option<RequiredWitnesses>, Failure> {
        let Some(count) = self.require_witnesses else {
            return Ok(None);
        };
        let keys = crate::witness::trusted_keys(&self.witnesses, count).map_err(Failure::Usage)?;
        Ok(Some(RequiredWitnesses { count, keys }))
    }

    /// Checks `verified` against the witnesses, if any are required.
    pub(crate) fn check(
        &self,
        root: &sigil_proto::trust::TrustedRoot,
        verified: &mut VerifiedBundle,
    ) -> Result<(), Failure> {
        let Some(required) = self.required()? else {
            return Ok(());
        };
        let rt = super::current_thread_runtime().map_err(Failure::Usage)?;
        let http = crate::sign::http_client();
        verified.witnesses = rt
            .block_on(required.check(
                &http,
                root,
                &verified.log_url,
                verified.log_index,
                &verified.logged_at,
            ))
            .map_err(VerifyError::Witnesses)?;
        Ok(())
    }
}

/// `--require-witnesses N` with the keys of the witnesses to trust.
pub(crate) struct RequiredWitnesses {
    count: usize,
    keys: Vec<sigil_proto::witness::VerifierKey>,
}

impl RequiredWitnesses {
    /// The names of the trusted witnesses whose cosigned checkpoint covers the entry at
    /// `log_index`, or why there are fewer than required.
    pub(crate) async fn check(
        &self,
        http: &reqwest::Client,
        root: &sigil_proto::trust::TrustedRoot,
        log_url: &str,
        log_index: u64,
        logged_at: &crate::verify::LoggedAt,
    ) -> Result<Vec<String>, String> {
        crate::witness::check_logged(
            http,
            log_url,
            log_index,
            logged_at,
            &root.tlogs,
            &self.keys,
            self.count,
        )
        .await
        .map(|w| w.witnesses)
        .map_err(|e| e.to_string())
    }
}

/// Who must have signed: an identity and issuer (keyless) or a key.
#[derive(Debug, Args)]
pub struct SignerPolicyArgs {
    /// Expected signer identity (SAN: email or URI), exact match.
    #[arg(long, conflicts_with_all = ["certificate_identity_regexp", "key"])]
    pub certificate_identity: Option<String>,
    /// Expected signer identity as a regular expression.
    #[arg(long, conflicts_with = "key")]
    pub certificate_identity_regexp: Option<String>,
    /// Expected OIDC issuer, exact match.
    #[arg(long, conflicts_with_all = ["certificate_oidc_issuer_regexp", "key"])]
    pub certificate_oidc_issuer: Option<String>,
    /// Expected OIDC issuer as a regular expression.
    #[arg(long, conflicts_with = "key")]
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// GitHub Actions: expected event that triggered the workflow (e.g. push).
    #[arg(long)]
    pub certificate_github_workflow_trigger: Option<String>,
    /// GitHub Actions: expected commit SHA.
    #[arg(long)]
    pub certificate_github_workflow_sha: Option<String>,
    /// GitHub Actions: expected workflow name.
    #[arg(long)]
    pub certificate_github_workflow_name: Option<String>,
    /// GitHub Actions: expected repository (owner/name).
    #[arg(long)]
    pub certificate_github_workflow_repository: Option<String>,
    /// GitHub Actions: expected git ref (e.g. refs/heads/main).
    #[arg(long)]
    pub certificate_github_workflow_ref: Option<String>,
    /// PEM public key for signatures made with a managed key.
    #[arg(long)]
    pub key: Option<PathBuf>,
}

impl SignerPolicyArgs {
    pub(crate) fn policy(&self) -> Result<Policy, Failure> {
        if let Some(path) = &self.key {
            return Ok(Policy::Key(load_key(path)?));
        }
        let identity = matcher(&self.certificate_identity, &self.certificate_identity_regexp, "certificate-identity")?
            .ok_or_else(|| Failure::Usage("keyless verification needs --certificate-identity or --certificate-identity-regexp (or use --key)".into()))?;
        let issuer = matcher(&self.certificate_oidc_issuer, &self.certificate_oidc_issuer_regexp, "certificate-oidc-issuer")?
            .ok_or_else(|| Failure::Usage("keyless verification needs --certificate-oidc-issuer or --certificate-oidc-issuer-regexp".into()))?;
        Ok(Policy::Identity(IdentityPolicy {
            identity,
            issuer,
            github: GithubClaims {
                trigger: self.certificate_github_workflow_trigger.clone(),
                sha: self.certificate_github_workflow_sha.clone(),
                name: self.certificate_github_workflow_name.clone(),
                repository: self.certificate_github_workflow_repository.clone(),
                git_ref: self.certificate_github_workflow_ref.clone(),
            },
        }))
    }
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Trusted root JSON (dev.sigstore.trustroot.v1.TrustedRoot).
    #[arg(long, conflicts_with_all = ["trust_config", "server"])]
    pub trusted_root: Option<PathBuf>,
    /// ClientTrustConfig JSON (trusted root + signing config).
    #[arg(long, conflicts_with = "server")]
    pub trust_config: Option<PathBuf>,
    /// A sigil server to fetch the trusted root from (plain http: loopback only).
    #[arg(long)]
    pub server: Option<String>,
    /// Fetch the trusted root from a --server over plain http on a non-loopback address:
    /// anyone on the path could replace it.
    #[arg(long, requires = "server")]
    pub insecure_trust: bool,
}

impl TrustArgs {
    pub(crate) fn source(&self) -> Result<TrustSource, String> {
        Ok(if let Some(p) = &self.trusted_root {
            TrustSource::TrustedRoot(p.clone())
        } else if let Some(p) = &self.trust_config {
            TrustSource::TrustConfig(p.clone())
        } else if let Some(u) = &self.server {
            TrustSource::Server(ServerUrl::new(u, self.insecure_trust)?)
        } else {
            TrustSource::Default { staging: false }
        })
    }
}

/// The sigstore-conformance protocol:
/// `verify-bundle [--staging] --bundle FILE (--certificate-identity ID --certificate-oidc-issuer URL | --key KEY) [--trusted-root F] FILE_OR_sha256:DIGEST`.
#[derive(Debug, Args)]
#[command(about = "Verify a bundle (sigstore-conformance protocol)")]
pub struct VerifyBundleArgs {
    /// Use the staging trusted root as the default.
    #[arg(long)]
    pub staging: bool,
    #[arg(long)]
    pub bundle: PathBuf,
    #[arg(long, requires = "certificate_oidc_issuer", conflicts_with = "key")]
    pub certificate_identity: Option<String>,
    #[arg(long, requires = "certificate_identity", conflicts_with = "key")]
    pub certificate_oidc_issuer: Option<String>,
    #[arg(long)]
    pub key: Option<PathBuf>,
    #[arg(long)]
    pub trusted_root: Option<PathBuf>,
    /// The artifact file, or `sha256:<hex>` for its digest.
    pub artifact: String,
}

/// A failure already classified by exit code.
pub(crate) enum Failure {
    Usage(String),
    Verify(VerifyError),
}

impl From<VerifyError> for Failure {
    fn from(e: VerifyError) -> Self {
        Failure::Verify(e)
    }
}

pub(crate) fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::Usage(format!("cannot read {what} {}: {e}", path.display())))
}

fn load_key(path: &Path) -> Result<PublicKey, Failure> {
    let pem = read_file(path, "public key")?;
    let text = String::from_utf8(pem)
        .map_err(|_| Failure::Usage(format!("{} is not a PEM file", path.display())))?;
    PublicKey::from_pem(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}

fn matcher(
    exact: &Option<String>,
    regexp: &Option<String>,
    flag: &str,
) -> Result<Option<Matcher>, Failure> {
    match (exact, regexp) {
        (Some(s), _) => Ok(Some(Matcher::Exact(s.clone()))),
        (None, Some(r)) => Matcher::regex(r)
            .map(Some)
            .map_err(|e| Failure::Usage(format!("--{flag}-regexp: {e}"))),
        (None, None) => Ok(None),
    }
}

fn parse_bundle(path: &Path) -> Result<Bundle, Failure> {
    let bytes = read_file(path, "bundle")?;
    Bundle::from_json(&bytes).map_err(|e| Failure::Verify(VerifyError::BundleFormat(e.to_string())))
}

/// The conformance protocol's artifact: a file, or `sha256:<hex>` for its digest.
fn verify_artifact(
    artifact: &str,
    bundle: &Bundle,
    policy: &Policy,
    source: &TrustSource,
) -> Result<VerifiedBundle, Failure> {
    let root = load_trusted_root(source).map_err(|e| Failure::Usage(e.to_string()))?;
    if let Some(hex_digest) = artifact.strip_prefix("sha256:") {
        let digest: [u8; 32] = hex::decode(hex_digest)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| Failure::Usage(format!("{artifact:?} is not sha256:<64 hex digits>")))?;
        return Ok(verify_bundle(
            bundle,
            Artifact::Sha256(digest),
            policy,
            &root,
        )?);
    }
    let bytes = read_file(Path::new(artifact), "artifact")?;
    Ok(verify_bundle(
        bundle,
        Artifact::Bytes(&bytes),
        policy,
        &root,
    )?)
}

fn report(result: Result<VerifiedBundle, Failure>, output: OutputFormat) -> u8 {
    match (result, output) {
        (Ok(v), OutputFormat::Json) => {
            let mut json = serde_json::to_value(&v).unwrap_or_default();
            json["verified"] = serde_json::Value::Bool(true);
            println!("{json}");
            exit::OK
        }
        (Ok(v), OutputFormat::Text) => {
            let who = match &v.signer {
                crate::verify::VerifiedSigner::Certificate { identities, issuer } => {
                    format!(
                        "{} (issuer {})",
                        identities.join(", "),
                        issuer.as_deref().unwrap_or("?")
                    )
                }
                crate::verify::VerifiedSigner::Key => "the given public key".to_string(),
            };
            println!(
                "Verified OK: signed by {who}; log entry {} at {}",
                v.log_index, v.log_url
            );
            if !v.witnesses.is_empty() {
                println!("Witnessed by {}", v.witnesses.join(", "));
            }
            exit::OK
        }
        (Err(Failure::Usage(msg)), _) => {
            eprintln!("error: {msg}");
            exit::USAGE
        }
        (Err(Failure::Verify(e)), OutputFormat::Json) => {
            println!(
                "{}",
                serde_json::json!({"verified": false, "check": e.check(), "error": e.to_string()})
            );
            exit::FAILED
        }
        (Err(Failure::Verify(e)), OutputFormat::Text) => {
            eprintln!("verification failed: {e}");
            exit::FAILED
        }
    }
}

pub fn verify_blob(args: VerifyBlobArgs) -> u8 {
    report(run_verify_blob(&args), args.output)
}

fn run_verify_blob(args: &VerifyBlobArgs) -> Result<VerifiedBundle, Failure> {
    let policy = args.signer.policy()?;
    let bundle_path = args.bundle.clone().unwrap_or_else(|| {
        let mut p = args.file.clone().into_os_string();
        p.push(".sigstore.json");
        PathBuf::from(p)
    });
    let bundle = parse_bundle(&bundle_path)?;
    // The positional argument is always a file, even one named like `sha256:<hex>`: only the
    // conformance `verify-bundle` takes a digest in its place.
    let source = args.trust.source().map_err(Failure::Usage)?;
    let root = load_trusted_root(&source).map_err(|e| Failure::Usage(e.to_string()))?;
    let bytes = read_file(&args.file, "artifact")?;
    let mut verified = verify_bundle(&bundle, Artifact::Bytes(&bytes), &policy, &root)?;
    args.witnesses.check(&root, &mut verified)?;
    Ok(verified)
}

pub fn verify_bundle_conformance(args: VerifyBundleArgs) -> u8 {
    report(run_verify_bundle(&args), OutputFormat::Text)
}

fn run_verify_bundle(args: &VerifyBundleArgs) -> Result<VerifiedBundle, Failure> {
    let policy = match (
        &args.key,
        &args.certificate_identity,
        &args.certificate_oidc_issuer,
    ) {
        (Some(path), _, _) => Policy::Key(load_key(path)?),
        (None, Some(id), Some(iss)) => Policy::Identity(IdentityPolicy {
            identity: Matcher::Exact(id.clone()),
            issuer: Matcher::Exact(iss.clone()),
            github: GithubClaims::default(),
        }),
        _ => {
            return Err(Failure::Usage(
                "pass --certificate-identity and --certificate-oidc-issuer, or --key".into(),
            ));
        }
    };
    let bundle = parse_bundle(&args.bundle)?;
    let source = match &args.trusted_root {
        Some(p) => TrustSource::TrustedRoot(p.clone()),
        None => TrustSource::Default {
            staging: args.staging,
        },
    };
    verify_artifact(&args.artifact, &bundle, &policy, &source)
}
