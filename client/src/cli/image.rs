//! `sigil sign`, `sigil verify`, `sigil attest` and `sigil verify-attestation`: container
//! images in OCI registries, with cosign's command names and flags.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{ArgAction, Args, ValueEnum};
use serde_json::{Value, json};
use sigil_proto::cosign;
use sigil_proto::trust::TrustedRoot;

use super::exit;
use super::login::identity_token;
use super::registry_args::RegistryArgs;
use super::sign::{self as sign_cli, Resolved, SigningArgs, keyless_services, resolve_signing};
use super::verify::{
    self as verify_cli, RequiredWitnesses, SignerPolicyArgs, TrustArgs, WitnessPolicyArgs,
};
use crate::image::sign::{Layout, Publish, SignedImage, attest_image, sign_image};
use crate::image::verify::{
    Expect, ImagePolicy, ImageVerification, Rejected, cosign_payload, verify_image,
};
use crate::image::{ImageSigner, Target, resolve, resolve_recursive};
use crate::keys::SigningKey;
use crate::oci::{ImageRef, Registry};
use crate::sign::{SignedBy, certify, http_client};
use crate::trust_source::load_trusted_root;
use crate::verify::{VerifiedSigner, Verifier};

/// A failure already classified by exit code.
pub(crate) enum Failure {
    Usage(String),
    Failed(String),
}

impl From<sign_cli::Failure> for Failure {
    fn from(f: sign_cli::Failure) -> Self {
        match f {
            sign_cli::Failure::Usage(m) => Failure::Usage(m),
            sign_cli::Failure::Sign(e) => Failure::Failed(e.to_string()),
        }
    }
}

impl From<verify_cli::Failure> for Failure {
    fn from(f: verify_cli::Failure) -> Self {
        match f {
            verify_cli::Failure::Usage(m) => Failure::Usage(m),
            verify_cli::Failure::Verify(e) => Failure::Failed(e.to_string()),
        }
    }
}

pub(crate) fn failed(e: impl std::fmt::Display) -> Failure {
    Failure::Failed(e.to_string())
}

pub(crate) fn usage(e: impl std::fmt::Display) -> Failure {
    Failure::Usage(e.to_string())
}

pub(crate) fn report_failure(f: Failure, json_output: bool) -> u8 {
    let (code, msg) = match f {
        Failure::Usage(m) => (exit::USAGE, m),
        Failure::Failed(m) => (exit::FAILED, m),
    };
    if json_output {
        println!("{}", json!({"ok": false, "error": msg}));
    } else {
        eprintln!("error: {msg}");
    }
    code
}

pub(crate) fn parse_annotations(pairs: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| usage(format!("annotation {p:?} is not key=value")))
        })
        .collect()
}

pub(crate) fn parse_image(s: &str) -> Result<ImageRef, Failure> {
    ImageRef::parse(s).map_err(usage)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    super::current_thread_runtime().map_err(usage)
}

pub(crate) fn registry(args: &RegistryArgs) -> Result<Registry, Failure> {
    Ok(Registry::new(args.options().map_err(usage)?))
}

/// A summary for people, or one JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// How a signature or attestation of an image is published.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// For an image index: also every platform manifest it lists (recursively).
    #[arg(long)]
    pub recursive: bool,
    /// Skip the confirmation asked at a terminal before a keyless signature publishes your
    /// identity in the transparency log (CI never asks).
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Store the signature in the registry (--upload=false: only write --bundle).
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    pub upload: bool,
    /// Also write the bundle to FILE (one image, without --recursive).
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Write cosign's legacy layout (sha256-<hex>.sig, .att) instead of a bundle referrer.
    #[arg(long)]
    pub legacy_tags: bool,
}

const SIGN_ABOUT: &str = "\
Sign a container image in its registry.

The image reference is resolved once to its digest, and the digest is what gets signed (a tag
can be moved to other content later; verify by digest when it matters). Keyless by default:
an ephemeral key certified by the CA for your OIDC identity (the token sources of sign-blob);
--key signs with a cosign key instead. The signature is logged in the transparency log.

Storage: a Sigstore bundle (DSSE, predicate type https://sigstore.dev/cosign/sign/v1) stored as
an OCI 1.1 referrer of the image, as cosign v3 does; on registries without the referrers API,
also listed in the referrers tag schema index (tag sha256-<hex>). --legacy-tags writes cosign's
older sha256-<hex>.sig layout instead, for verifiers that only read that.

Examples:
  # In CI with an OIDC id-token (GitHub Actions, GitLab's SIGSTORE_ID_TOKEN, ...)
  sigil sign registry.example.com/app@sha256:4f2c... --server https://sigil.example.com --yes
  # A tag, annotated, every platform of a multi-arch index
  sigil sign registry.example.com/app:v1.2.0 --recursive -a git_sha=$GIT_SHA --server https://sigil.example.com
  # With a cosign key, bundle written locally, registry untouched
  sigil sign registry.example.com/app@sha256:4f2c... --key cosign.key --rekor-url https://sigil.example.com \\
      --upload=false --bundle app.sigstore.json

Exit codes: 0 signed, 1 signing failed, 2 usage or input error.";

#[derive(Debug, Args)]
#[command(about = "Sign a container image (keyless or with a cosign key)", long_about = SIGN_ABOUT)]
pub struct SignArgs {
    /// The image(s): registry/repository:tag or registry/repository@sha256:<hex>.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    #[command(flatten)]
    pub signing: SigningArgs,
    /// Annotation to sign with the image (key=value, repeatable).
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    #[command(flatten)]
    pub publish: PublishArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

const ATTEST_ABOUT: &str = "\
Attest a container image: sign an in-toto statement about its digest and attach it.

--type names the predicate: slsaprovenance (v0.2), slsaprovenance1, spdx, spdxjson,
cyclonedx, vuln, openvex, link, custom (the file's text wrapped with a timestamp), or any URI.
The statement is stored like a signature (a bundle referrer, or with --legacy-tags the
sha256-<hex>.att tag) with its predicate type, so verifiers can tell them apart.

Examples:
  sigil attest registry.example.com/app@sha256:4f2c... --predicate provenance.json \\
      --type slsaprovenance1 --server https://sigil.example.com --yes
  sigil attest registry.example.com/app@sha256:4f2c... --predicate sbom.cdx.json --type cyclonedx \\
      --key cosign.key --trust-config trust_config.json

Exit codes: 0 attested, 1 failed, 2 usage or input error.";

#[derive(Debug, Args)]
#[command(about = "Attest a container image with an in-toto predicate", long_about = ATTEST_ABOUT)]
pub struct AttestArgs {
    /// The image: registry/repository:tag or registry/repository@sha256:<hex>.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The predicate file (JSON, or text for --type custom).
    #[arg(long, value_name = "FILE")]
    pub predicate: PathBuf,
    /// Predicate type: a short name (see above) or a URI.
    #[arg(long = "type", default_value = "custom")]
    pub predicate_type: String,
    #[command(flatten)]
    pub signing: SigningArgs,
    #[command(flatten)]
    pub publish: PublishArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

enum Work {
    Sign(BTreeMap<String, String>),
    Attest {
        predicate_type: String,
        predicate: Value,
    },
}

/// Asks before a keyless signature publishes the signer's identity, unless told not to or
/// not at a terminal.
fn confirm(yes: bool, log_url: &str) -> Result<(), Failure> {
    if yes || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(());
    }
    eprint!(
        "Your identity (from the OIDC token) will be recorded in the transparency log at {log_url}, \
         which keeps it permanently and shows it to anyone who reads the log.\n\
         Continue? [y/N] "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| usage(format!("reading the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        Ok(())
    } else {
        Err(usage(
            "signing cancelled (pass --yes to skip this question)",
        ))
    }
}

struct Plan<'a> {
    signing: &'a SigningArgs,
    images: Vec<ImageRef>,
    publish: &'a PublishArgs,
    registry: &'a RegistryArgs,
}

/// The signer a command's flags ask for: the key, or an ephemeral key the CA certifies for
/// the identity token (after the confirmation, if one is due).
pub(crate) async fn make_signer<'a>(
    http: &reqwest::Client,
    signing: &SigningArgs,
    resolved: &'a Resolved,
    key: Option<&'a SigningKey>,
    yes: bool,
) -> Result<ImageSigner<'a>, Failure> {
    if let Some(key) = key {
        return Ok(ImageSigner::Keyed {
            key,
            rekor_url: resolved.rekor_url.clone(),
            trusted_root: resolved.trusted_root.as_ref(),
        });
    }
    let services = keyless_services(resolved)?;
    let root = resolved
        .trusted_root
        .as_ref()
        .ok_or_else(|| usage("keyless signing needs a trusted root"))?;
    let token = identity_token(
        http,
        signing.identity_token.as_deref(),
        &signing.login,
        resolved.oidc_url.as_deref(),
    )
    .await
    .map_err(usage)?;
    confirm(yes, &services.rekor_url)?;
    let certified = certify(http, &token, &services.ca_url)
        .await
        .map_err(failed)?;
    Ok(ImageSigner::Keyless {
        certified,
        rekor_url: services.rekor_url,
        trusted_root: root,
    })
}

fn run_signing(plan: Plan<'_>, work: Work) -> Result<Vec<SignedImage>, Failure> {
    let p = plan.publish;
    if p.bundle.is_some() && (plan.images.len() != 1 || p.recursive) {
        return Err(usage(
            "--bundle writes one bundle: give one image and no --recursive",
        ));
    }
    if !p.upload && p.bundle.is_none() {
        return Err(usage(
            "--upload=false keeps the signature out of the registry, so give --bundle FILE to keep it",
        ));
    }
    let keyed = plan.signing.key.is_some();
    let resolved: Resolved = resolve_signing(plan.signing, keyed)?;
    let key: Option<SigningKey> = plan
        .signing
        .key
        .as_deref()
        .map(sign_cli::load_signing_key)
        .transpose()?;
    let registry = registry(plan.registry)?;
    let http = http_client();
    let signed = runtime()?.block_on(async {
        // Every image is resolved before anything is signed, so a typo fails with nothing
        // logged.
        let mut targets: Vec<Target> = Vec::new();
        for image in &plan.images {
            let found = if p.recursive {
                resolve_recursive(&registry, image).await
            } else {
                resolve(&registry, image).await.map(|t| vec![t])
            }
            .map_err(failed)?;
            targets.extend(found);
        }
        for t in &targets {
            if let Some(tag) = &t.from_tag {
                eprintln!(
                    "Resolved tag {tag} to {}. The digest is what gets signed; tags can move, so \
                     refer to the image by digest where it matters.",
                    t.descriptor.digest
                );
            }
        }
        let signer = make_signer(&http, plan.signing, &resolved, key.as_ref(), p.yes).await?;
        let publish = Publish {
            layout: if p.legacy_tags {
                Layout::LegacyTags
            } else {
                Layout::Referrers
            },
            upload: p.upload,
        };
        let mut out = Vec::new();
        for target in &targets {
            let result = match &work {
                Work::Sign(annotations) => {
                    sign_image(&http, &registry, target, &signer, annotations, publish).await
                }
                Work::Attest {
                    predicate_type,
                    predicate,
                } => {
                    attest_image(
                        &http,
                        &registry,
                        target,
                        &signer,
                        predicate_type,
                        predicate.clone(),
                        publish,
                    )
                    .await
                }
            };
            out.push(result.map_err(|e| failed(format!("{}: {e}", target.image)))?);
        }
        Ok::<_, Failure>(out)
    })?;
    if let (Some(path), [only]) = (p.bundle.as_ref(), signed.as_slice()) {
        std::fs::write(path, only.signed.bundle.to_json_pretty())
            .map_err(|e| usage(format!("cannot write bundle {}: {e}", path.display())))?;
    }
    Ok(signed)
}

fn sign_summary(s: &SignedImage) -> Value {
    json!({
        "image": s.target.image.to_string(),
        "digest": s.target.descriptor.digest.to_string(),
        "resolvedFromTag": s.target.from_tag,
        "platform": s.target.platform,
        "logUrl": s.signed.log_url,
        "logIndex": s.signed.log_index,
        "entryUuid": s.signed.entry_uuid,
        "signedBy": s.signed.signed_by,
        "layout": s.layout,
        "stored": s.attached,
    })
}

fn report_signed(result: Result<Vec<SignedImage>, Failure>, output: Output, verb: &str) -> u8 {
    match result {
        Err(f) => report_failure(f, output == Output::Json),
        Ok(signed) if output == Output::Json => {
            println!(
                "{}",
                json!({"ok": true, "signed": signed.iter().map(sign_summary).collect::<Vec<_>>()})
            );
            exit::OK
        }
        Ok(signed) => {
            for s in &signed {
                let who = match &s.signed.signed_by {
                    SignedBy::Key { .. } => "the given key".to_string(),
                    SignedBy::Certificate { identities, issuer } => format!(
                        "{} (issuer {})",
                        identities.join(", "),
                        issuer.as_deref().unwrap_or("?")
                    ),
                };
                let platform = s
                    .target
                    .platform
                    .as_deref()
                    .map(|p| format!(" [{p}]"))
                    .unwrap_or_default();
                eprintln!(
                    "{verb} {}{platform} as {who}; log entry {} at {}",
                    s.target.image, s.signed.log_index, s.signed.log_url
                );
                match &s.attached {
                    Some(a) => eprintln!("  stored in {} ({})", a.reference, a.layout),
                    None => eprintln!("  not uploaded (--upload=false)"),
                }
            }
            exit::OK
        }
    }
}

pub fn sign(args: SignArgs) -> u8 {
    let result = (|| {
        let images = args
            .images
            .iter()
            .map(|i| parse_image(i))
            .collect::<Result<Vec<_>, _>>()?;
        let annotations = parse_annotations(&args.annotations)?;
        run_signing(
            Plan {
                signing: &args.signing,
                images,
                publish: &args.publish,
                registry: &args.registry,
            },
            Work::Sign(annotations),
        )
    })();
    report_signed(result, args.output, "Signed")
}

/// The predicate type and the predicate value a predicate file and `--type` give.
pub(crate) fn predicate_from_file(
    path: &PathBuf,
    type_name: &str,
) -> Result<(String, Value), Failure> {
    let predicate_type = cosign::predicate_type(type_name).map_err(usage)?;
    let content = std::fs::read(path)
        .map_err(|e| usage(format!("cannot read predicate {}: {e}", path.display())))?;
    let value = cosign::predicate_value(type_name, &content, &crate::image::now_rfc3339())
        .map_err(|e| usage(format!("{}: {e}", path.display())))?;
    Ok((predicate_type, value))
}

pub fn attest(args: AttestArgs) -> u8 {
    let result = (|| {
        let image = parse_image(&args.image)?;
        let (predicate_type, predicate) =
            predicate_from_file(&args.predicate, &args.predicate_type)?;
        run_signing(
            Plan {
                signing: &args.signing,
                images: vec![image],
                publish: &args.publish,
                registry: &args.registry,
            },
            Work::Attest {
                predicate_type,
                predicate,
            },
        )
    })();
    report_signed(result, args.output, "Attested")
}

// ---- verification --------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyOutput {
    /// The verified payloads as JSON on stdout (cosign's output), checks on stderr.
    Payloads,
    /// One JSON report on stdout: every candidate, verified or rejected, and why.
    Json,
    /// A summary on stdout.
    Text,
}

const VERIFY_ABOUT: &str = "\
Verify the signatures attached to a container image.

Every signature found is checked, in whichever layout it is stored (bundle referrers through
the referrers API or the referrers tag schema, and cosign's legacy sha256-<hex>.sig tag): the
certificate chains to the trusted root and carries an SCT from a trusted CT log, the signer
matches the policy, the transparency log entry is proven (or, for legacy signatures, promised)
by a trusted log, and the signed statement names the image digest being verified.
Attestations are not signatures: they never satisfy `verify` (use verify-attestation).

The verified payloads are printed on stdout as JSON (as cosign does); the checks on stderr.
Exit 0 when at least one signature satisfies the policy; otherwise exit 1 with \"no matching
signatures\" and, for each candidate, why it failed.

--require-witnesses N also asks the log (online) for its witnessed checkpoint and keeps only
signatures whose log entry it covers, cosigned by N of the --witness keys. A legacy signature
carries only the log's promise, so its inclusion proof is fetched from the log by index and
must be for the very entry the promise signed.

Examples:
  sigil verify registry.example.com/app@sha256:4f2c... --server https://sigil.example.com \\
      --certificate-identity-regexp '^https://github.com/acme/app/' \\
      --certificate-oidc-issuer https://token.actions.githubusercontent.com
  sigil verify registry.example.com/app:v1 --key cosign.pub --trusted-root trusted_root.json -a env=prod
  sigil verify registry.example.com/app@sha256:4f2c... --server https://sigil.example.com \\
      --certificate-identity release@example.com --certificate-oidc-issuer https://issuer.example \\
      --require-witnesses 1 --witness 'witness.example/w1+6e2f1a9c+AaBb...'

Exit codes: 0 verified, 1 no matching signature (or the image cannot be read), 2 usage error.";

/// What an image must satisfy, shared by `verify` and `verify-attestation`.
#[derive(Debug, Args)]
pub struct ImageCheckArgs {
    /// The image: registry/repository:tag or registry/repository@sha256:<hex>.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[command(flatten)]
    pub signer: SignerPolicyArgs,
    /// An annotation the signature (for an attestation: the statement's subject) must carry
    /// (key=value, repeatable).
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    #[command(flatten)]
    pub witnesses: WitnessPolicyArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
#[command(about = "Verify a container image's signatures", long_about = VERIFY_ABOUT)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub check: ImageCheckArgs,
    #[arg(long, value_enum, default_value = "payloads")]
    pub output: VerifyOutput,
}

const VERIFY_ATTESTATION_ABOUT: &str = "\
Verify the attestations attached to a container image, and print their statements.

The same checks as `verify`, on attestations of the predicate type --type (default: custom, as
in cosign; `--type any` accepts every type): a bundle referrer, or cosign's legacy
sha256-<hex>.att tag. Image signatures are not attestations and never satisfy this command.

Examples:
  sigil verify-attestation registry.example.com/app@sha256:4f2c... --type slsaprovenance1 \\
      --server https://sigil.example.com \\
      --certificate-identity-regexp '^https://github.com/acme/' \\
      --certificate-oidc-issuer https://token.actions.githubusercontent.com

Exit codes: 0 verified, 1 no matching attestation (or the image cannot be read), 2 usage error.";

#[derive(Debug, Args)]
#[command(about = "Verify a container image's attestations", long_about = VERIFY_ATTESTATION_ABOUT)]
pub struct VerifyAttestationArgs {
    #[command(flatten)]
    pub check: ImageCheckArgs,
    /// Predicate type to accept: a short name, a URI, or `any`.
    #[arg(long = "type", default_value = "custom")]
    pub predicate_type: String,
    #[arg(long, value_enum, default_value = "payloads")]
    pub output: VerifyOutput,
}

struct Checked {
    verification: ImageVerification,
    expect: Expect,
    /// `--require-witnesses N`.
    witnesses_required: Option<usize>,
}

fn run_verify(check: &ImageCheckArgs, expect: Expect) -> Result<Checked, Failure> {
    let image = parse_image(&check.image)?;
    let policy = ImagePolicy {
        signer: check.signer.policy()?,
        annotations: parse_annotations(&check.annotations)?,
    };
    let witnesses = check.witnesses.required().map_err(Failure::from)?;
    let root = load_trusted_root(&check.trust.source().map_err(usage)?).map_err(usage)?;
    let verifier = Verifier::new(&root).map_err(failed)?;
    let registry = registry(&check.registry)?;
    let verification = runtime()?.block_on(async {
        let target = resolve(&registry, &image).await.map_err(failed)?;
        let mut verification = verify_image(&registry, &target, &policy, &expect, &verifier)
            .await
            .map_err(failed)?;
        if let Some(witnesses) = witnesses {
            require_witnesses(&mut verification, &witnesses, &root).await;
        }
        Ok::<_, Failure>(verification)
    })?;
    Ok(Checked {
        verification,
        expect,
        witnesses_required: check.witnesses.require_witnesses,
    })
}

/// Moves to the rejected every verified attachment whose log entry the witnesses have not
/// seen (asking its log online).
async fn require_witnesses(
    verification: &mut ImageVerification,
    witnesses: &RequiredWitnesses,
    root: &TrustedRoot,
) {
    let http = crate::sign::http_client();
    let mut kept = Vec::new();
    for mut a in std::mem::take(&mut verification.verified) {
        match witnesses
            .check(&http, root, &a.log_url, a.log_index, &a.logged_at)
            .await
        {
            Ok(names) => {
                a.witnesses = names;
                kept.push(a);
            }
            Err(reason) => verification.rejected.push(Rejected {
                layout: a.layout,
                origin: a.origin,
                check: "witnesses",
                reason: format!("witnesses: {reason}"),
            }),
        }
    }
    verification.verified = kept;
}

fn describe_signer(s: &VerifiedSigner) -> String {
    match s {
        VerifiedSigner::Certificate { identities, issuer } => format!(
            "{} (issuer {})",
            identities.join(", "),
            issuer.as_deref().unwrap_or("?")
        ),
        VerifiedSigner::Key => "the given key".into(),
    }
}

fn report_json(c: &Checked) -> Value {
    let v = &c.verification;
    json!({
        "ok": !v.verified.is_empty(),
        "image": v.target.image.to_string(),
        "digest": v.target.descriptor.digest.to_string(),
        "verified": v.verified,
        "rejected": v.rejected,
        "skipped": v.skipped,
    })
}

/// The checks, on stderr, the way cosign lists them.
fn print_checks(c: &Checked, what: &str) {
    let v = &c.verification;
    eprintln!("Verification for {} --", v.target.image);
    if let Some(tag) = &v.target.from_tag {
        eprintln!(
            "  (tag {tag} resolved to {}; tags can move)",
            v.target.descriptor.digest
        );
    }
    eprintln!("The following checks were performed on each of these {what}:");
    eprintln!("  - the signed statement or payload names this image digest");
    eprintln!(
        "  - the signature verifies with the signer's key, and the signer matches the policy"
    );
    eprintln!(
        "  - a keyless signer's certificate chains to the trusted root and carries a valid SCT"
    );
    eprintln!(
        "  - the transparency log entry is signed by a trusted log and describes this signature"
    );
    if let Expect::Attestations { .. } = c.expect {
        eprintln!("  - the predicate type is the one asked for");
    }
    if let Some(n) = c.witnesses_required {
        eprintln!(
            "  - at least {n} trusted witness(es) cosigned a checkpoint of the log that covers the entry"
        );
    }
    for a in &v.verified {
        eprintln!(
            "OK   {} ({}): {} signed by {}, log entry {}{}{}",
            a.origin,
            a.layout,
            a.predicate_type,
            describe_signer(&a.signer),
            a.log_index,
            match a.inclusion {
                crate::verify::Inclusion::Proof => "",
                crate::verify::Inclusion::Promise =>
                    " (log promise; legacy layout carries no inclusion proof)",
            },
            if a.witnesses.is_empty() {
                String::new()
            } else {
                format!(", witnessed by {}", a.witnesses.join(", "))
            }
        );
    }
    for r in &v.rejected {
        eprintln!("FAIL {} ({}): {}", r.origin, r.layout, r.reason);
    }
    for s in &v.skipped {
        eprintln!("SKIP {}: {}", s.what, s.why);
    }
}

fn report_verified(
    result: Result<Checked, Failure>,
    output: VerifyOutput,
    what: &str,
    print: impl Fn(&Checked),
) -> u8 {
    let checked = match result {
        Ok(c) => c,
        Err(f) => return report_failure(f, output == VerifyOutput::Json),
    };
    let v = &checked.verification;
    if output == VerifyOutput::Json {
        println!("{}", report_json(&checked));
    } else {
        print_checks(&checked, what);
    }
    if v.verified.is_empty() {
        if output != VerifyOutput::Json {
            if v.rejected.is_empty() && v.skipped.is_empty() {
                eprintln!("error: no {what} found for {}", v.target.image);
            } else {
                eprintln!("error: no matching {what}");
            }
        }
        return exit::FAILED;
    }
    match output {
        VerifyOutput::Payloads => print(&checked),
        VerifyOutput::Text => println!(
            "Verified OK: {} of {} {what} on {} satisfy the policy",
            v.verified.len(),
            v.verified.len() + v.rejected.len(),
            v.target.image
        ),
        VerifyOutput::Json => {}
    }
    exit::OK
}

pub fn verify(args: VerifyArgs) -> u8 {
    let result = run_verify(&args.check, Expect::Signatures);
    report_verified(result, args.output, "signatures", |c| {
        let payloads: Vec<Value> = c
            .verification
            .verified
            .iter()
            .map(|a| cosign_payload(&c.verification.target, a))
            .collect();
        println!("{}", Value::Array(payloads));
    })
}

/// `--type` for verification: `any`, or a name or URI.
pub(crate) fn expected_predicate(type_name: &str) -> Result<Option<String>, Failure> {
    if type_name == "any" {
        return Ok(None);
    }
    cosign::predicate_type(type_name).map(Some).map_err(usage)
}

pub fn verify_attestation(args: VerifyAttestationArgs) -> u8 {
    let result = expected_predicate(&args.predicate_type).and_then(|predicate_type| {
        run_verify(&args.check, Expect::Attestations { predicate_type })
    });
    report_verified(result, args.output, "attestations", |c| {
        for a in &c.verification.verified {
            println!("{}", a.statement.clone().unwrap_or(Value::Null));
        }
    })
}
