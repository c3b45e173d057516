//! `sigil attest-blob` and `sigil verify-blob-attestation`: in-toto attestations about files.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;
use sigil_proto::bundle::Bundle;
use sigil_proto::cosign;
use sigil_proto::intoto::Statement;

use super::exit;
use super::image::{
    Output, expected_predicate, failed, make_signer, predicate_from_file, report_failure, runtime,
    usage,
};
use super::sign::{SigningArgs, load_signing_key, resolve_signing};
use super::verify::{SignerPolicyArgs, TrustArgs, WitnessPolicyArgs, read_file};
use crate::sign::digest::sha256_file;
use crate::sign::http_client;
use crate::trust_source::load_trusted_root;
use crate::verify::{Artifact, verify_bundle};

fn default_bundle(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".att.sigstore.json");
    PathBuf::from(p)
}

const ATTEST_BLOB_ABOUT: &str = "\
Attest a file: sign an in-toto statement (subject: the file's name and SHA-256) with a predicate,
and write the bundle. --type as for `sigil attest` (slsaprovenance1, spdxjson, cyclonedx, vuln,
custom, a URI, ...). Keyless by default, or --key.

Example:
  sigil attest-blob app.tar.gz --predicate provenance.json --type slsaprovenance1 \\
      --server https://sigil.example.com --bundle app.tar.gz.att.sigstore.json";

#[derive(Debug, Args)]
#[command(about = "Attest a file with an in-toto predicate and write the bundle", long_about = ATTEST_BLOB_ABOUT)]
pub struct AttestBlobArgs {
    /// The file the attestation is about.
    pub file: PathBuf,
    /// The predicate file (JSON, or text for --type custom).
    #[arg(long, value_name = "FILE")]
    pub predicate: PathBuf,
    /// Predicate type: a short name or a URI.
    #[arg(long = "type", default_value = "custom")]
    pub predicate_type: String,
    /// Where to write the bundle [default: FILE.att.sigstore.json].
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    #[command(flatten)]
    pub signing: SigningArgs,
    /// Skip the confirmation asked at a terminal before a keyless signature.
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

pub fn attest_blob(args: AttestBlobArgs) -> u8 {
    let result = (|| {
        let (predicate_type, predicate) =
            predicate_from_file(&args.predicate, &args.predicate_type)?;
        let digest = sha256_file(&args.file)
            .map_err(|e| usage(format!("cannot read {}: {e}", args.file.display())))?;
        let name = args
            .file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let statement =
            cosign::attestation_statement(&name, &hex::encode(digest), &predicate_type, predicate)
                .to_json();
        let keyed = args.signing.key.is_some();
        let resolved = resolve_signing(&args.signing, keyed)?;
        let key = args
            .signing
            .key
            .as_deref()
            .map(load_signing_key)
            .transpose()?;
        let http = http_client();
        let signed = runtime()?.block_on(async {
            let signer =
                make_signer(&http, &args.signing, &resolved, key.as_ref(), args.yes).await?;
            signer
                .sign_statement(&http, &statement)
                .await
                .map_err(failed)
        })?;
        let path = args
            .bundle
            .clone()
            .unwrap_or_else(|| default_bundle(&args.file));
        std::fs::write(&path, signed.bundle.to_json_pretty())
            .map_err(|e| usage(format!("cannot write bundle {}: {e}", path.display())))?;
        Ok((path, signed, predicate_type))
    })();
    match result {
        Ok((path, signed, predicate_type)) => {
            if args.output == Output::Json {
                println!(
                    "{}",
                    json!({"ok": true, "bundle": path.display().to_string(), "predicateType": predicate_type,
                           "logIndex": signed.log_index, "logUrl": signed.log_url, "signedBy": signed.signed_by})
                );
            } else {
                eprintln!(
                    "Attested {} ({predicate_type}); log entry {} at {}\nWrote bundle to {}",
                    args.file.display(),
                    signed.log_index,
                    signed.log_url,
                    path.display()
                );
            }
            exit::OK
        }
        Err(f) => report_failure(f, args.output == Output::Json),
    }
}

const VERIFY_BLOB_ATTESTATION_ABOUT: &str = "\
Verify an attestation bundle for a file, offline, and print its statement.

The bundle must be a DSSE in-toto statement naming the file's SHA-256 as a subject, with the
predicate type --type (default custom, as in cosign; `any` accepts every type), signed as the
policy flags say (identity and issuer, or --key) and logged in a trusted log.

Example:
  sigil verify-blob-attestation app.tar.gz --bundle app.tar.gz.att.sigstore.json \\
      --type slsaprovenance1 --trusted-root trusted_root.json \\
      --certificate-identity-regexp '^https://github.com/acme/' \\
      --certificate-oidc-issuer https://token.actions.githubusercontent.com";

#[derive(Debug, Args)]
#[command(about = "Verify a file's attestation bundle and print the statement", long_about = VERIFY_BLOB_ATTESTATION_ABOUT)]
pub struct VerifyBlobAttestationArgs {
    /// The file the attestation is about.
    pub file: PathBuf,
    /// The bundle [default: FILE.att.sigstore.json].
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Predicate type to accept: a short name, a URI, or `any`.
    #[arg(long = "type", default_value = "custom")]
    pub predicate_type: String,
    #[command(flatten)]
    pub signer: SignerPolicyArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub witnesses: WitnessPolicyArgs,
}

pub fn verify_blob_attestation(args: VerifyBlobAttestationArgs) -> u8 {
    let result = (|| {
        let expected = expected_predicate(&args.predicate_type)?;
        let policy = args.signer.policy()?;
        let path = args
            .bundle
            .clone()
            .unwrap_or_else(|| default_bundle(&args.file));
        let bundle = Bundle::from_json(&read_file(&path, "bundle")?)
            .map_err(|e| failed(format!("{}: not a Sigstore bundle: {e}", path.display())))?;
        let artifact = read_file(&args.file, "file")?;
        let root = load_trusted_root(&args.trust.source().map_err(usage)?).map_err(usage)?;
        let mut verified =
            verify_bundle(&bundle, Artifact::Bytes(&artifact), &policy, &root).map_err(failed)?;
        args.witnesses.check(&root, &mut verified)?;
        let witnesses = std::mem::take(&mut verified.witnesses);
        let (_, payload) = verified
            .dsse_payload
            .ok_or_else(|| failed("the bundle holds a plain signature, not an attestation"))?;
        let statement = Statement::parse(&payload).map_err(failed)?;
        if let Some(want) = expected
            && statement.predicate_type != want
        {
            return Err(failed(format!(
                "the attestation's predicate type is {}, not {want}",
                statement.predicate_type
            )));
        }
        Ok((String::from_utf8_lossy(&payload).to_string(), witnesses))
    })();
    match result {
        Ok((statement, witnesses)) => {
            println!("{statement}");
            eprintln!("Verified OK");
            if !witnesses.is_empty() {
                eprintln!("Witnessed by {}", witnesses.join(", "));
            }
            exit::OK
        }
        Err(f) => report_failure(f, false),
    }
}
