//! Verifying the signatures and attestations attached to an image.
//!
//! Every candidate, whatever layout it was found in, is verified as a Sigstore bundle
//! against the trusted root and the signer policy, with the image digest as the artifact:
//! a DSSE statement must name that digest as a subject, and a legacy simple-signing payload
//! must name it as `docker-manifest-digest`. The subject a referrer manifest claims is
//! unsigned and only decides where to look. A signature is never taken for an attestation
//! or the other way round: the signed predicate type decides.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use sigil_proto::bundle::{
    Bundle, HashOutput, MEDIA_TYPE_V0_1, MessageSignature, SignatureContent, VerificationContent,
    VerificationMaterial,
};
use sigil_proto::cosign::{self, RekorBundle, SimpleSigning};
use sigil_proto::dsse::Envelope;
use sigil_proto::intoto::Statement;
use sigil_proto::oci::{Digest, LegacyTag};

use super::Target;
use crate::oci::attached::{Discovered, FoundBundle, FoundLegacy, Skipped, Want, discover};
use crate::oci::registry::ReferrersSource;
use crate::oci::{Registry, RegistryError};
use crate::verify::keys::decode_pem;
use crate::verify::{
    Artifact, Inclusion, LoggedAt, Policy, VerifiedBundle, VerifiedSigner, Verifier, VerifyError,
    VerifyOptions,
};

/// What the caller is verifying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Image signatures (predicate type `https://sigstore.dev/cosign/sign/v1`, or legacy
    /// simple-signing payloads).
    Signatures,
    /// Attestations, of this predicate type when given.
    Attestations { predicate_type: Option<String> },
}

#[derive(Clone, Debug)]
pub struct ImagePolicy {
    pub signer: Policy,
    /// Annotations the signature must carry (`-a key=value`).
    pub annotations: BTreeMap<String, String>,
}

/// A signature or attestation that satisfied the policy.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedAttachment {
    pub layout: &'static str,
    /// The referrer manifest or legacy tag it was found in.
    pub origin: String,
    pub predicate_type: String,
    pub annotations: BTreeMap<String, Value>,
    pub signer: VerifiedSigner,
    pub log_url: String,
    pub log_index: u64,
    pub inclusion: Inclusion,
    /// With --require-witnesses: the trusted witnesses whose cosigned checkpoint covers the
    /// log entry.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<String>,
    /// The verified in-toto statement (DSSE), as signed.
    #[serde(skip)]
    pub statement: Option<Value>,
    #[serde(skip)]
    pub logged_at: LoggedAt,
}

/// A candidate that did not satisfy the policy, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Rejected {
    pub layout: &'static str,
    pub origin: String,
    pub check: &'static str,
    pub reason: String,
}

#[derive(Clone, Debug)]
pub struct ImageVerification {
    pub target: Target,
    pub verified: Vec<VerifiedAttachment>,
    pub rejected: Vec<Rejected>,
    /// Listed, but not fetchable or not parseable (with the reason).
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, thiserror::Error)]
enum CandidateError {
    #[error("not a Sigstore bundle: {0}")]
    NotABundle(String),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("{0}")]
    Statement(String),
    #[error("{0}")]
    WrongKind(String),
    #[error("it signs image {signed}, not {expected}")]
    WrongImage { signed: String, expected: String },
    #[error("annotation {key}={expected:?} required, signature has {found}")]
    Annotation {
        key: String,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    Layer(String),
}

impl CandidateError {
    fn check(&self) -> &'static str {
        match self {
            CandidateError::NotABundle(_) | CandidateError::Layer(_) => "format",
            CandidateError::Verify(e) => e.check(),
            CandidateError::Statement(_) => "statement",
            CandidateError::WrongKind(_) => "predicate_type",
            CandidateError::WrongImage { .. } => "image_digest",
            CandidateError::Annotation { .. } => "annotations",
        }
    }
}

fn layout_name(source: ReferrersSource) -> &'static str {
    match source {
        ReferrersSource::Api => "referrers-api",
        ReferrersSource::TagSchema => "referrers-tag-schema",
    }
}

/// Finds and verifies everything of the expected kind attached to `target`.
pub async fn verify_image(
    registry: &Registry,
    target: &Target,
    policy: &ImagePolicy,
    expect: &Expect,
    verifier: &Verifier<'_>,
) -> Result<ImageVerification, RegistryError> {
    let legacy = match expect {
        Expect::Signatures => [LegacyTag::Signatures],
        Expect::Attestations { .. } => [LegacyTag::Attestations],
    };
    let found = discover(
        registry,
        &target.image,
        Want {
            referrers: true,
            legacy: &legacy,
            contents: true,
        },
    )
    .await?;
    Ok(verify_discovered(target, found, policy, expect, verifier))
}

/// The verification half of [`verify_image`], on what was already fetched.
pub fn verify_discovered(
    target: &Target,
    found: Discovered,
    policy: &ImagePolicy,
    expect: &Expect,
    verifier: &Verifier<'_>,
) -> ImageVerification {
    let digest = &target.descriptor.digest;
    let candidates: Vec<Candidate<'_>> = found
        .bundles
        .iter()
        .map(Candidate::Bundle)
        .chain(found.legacy.iter().filter_map(|l| {
            let wanted = matches!(
                (l.kind, expect),
                (LegacyTag::Signatures, Expect::Signatures)
                    | (LegacyTag::Attestations, Expect::Attestations { .. })
            );
            wanted.then_some(Candidate::Legacy(l))
        }))
        .collect();
    // Each candidate costs several signature checks: spread them over the cores.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = candidates.len().div_ceil(threads).max(1);
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let workers: Vec<_> = candidates
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|c| c.check(digest, policy, expect, verifier))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut result = ImageVerification {
        target: target.clone(),
        verified: Vec::new(),
        rejected: Vec::new(),
        skipped: found.skipped,
    };
    for outcome in outcomes {
        match outcome {
            Outcome::Verified(v) => result.verified.push(*v),
            Outcome::Rejected(r) => result.rejected.push(r),
        }
    }
    result
}

enum Candidate<'a> {
    Bundle(&'a FoundBundle),
    Legacy(&'a FoundLegacy),
}

enum Outcome {
    Verified(Box<VerifiedAttachment>),
    Rejected(Rejected),
}

impl Candidate<'_> {
    fn check(
        &self,
        digest: &Digest,
        policy: &ImagePolicy,
        expect: &Expect,
        verifier: &Verifier<'_>,
    ) -> Outcome {
        let (layout, origin, outcome) = match self {
            Candidate::Bundle(b) => (
                layout_name(b.source),
                format!("referrer {}", b.referrer.digest),
                check_bundle(b, digest, policy, expect, verifier),
            ),
            Candidate::Legacy(l) => {
                let layout = if l.origin.starts_with("referrer") {
                    "legacy-referrer"
                } else {
                    "legacy-tags"
                };
                let origin = format!("{} (layer {})", l.origin, l.layer.digest);
                let outcome = match l.kind {
                    LegacyTag::Attestations => {
                        check_legacy_attestation(l, digest, policy, expect, verifier)
                    }
                    _ => check_legacy_signature(l, digest, policy, verifier),
                };
                (layout, origin, outcome)
            }
        };
        match outcome {
            Ok(mut v) => {
                v.layout = layout;
                v.origin = origin;
                Outcome::Verified(Box::new(v))
            }
            Err(e) => Outcome::Rejected(Rejected {
                layout,
                origin,
                check: e.check(),
                reason: e.to_string(),
            }),
        }
    }
}

fn image_artifact(digest: &Digest) -> Result<Artifact<'static>, CandidateError> {
    digest
        .sha256_bytes()
        .map(Artifact::Sha256)
        .ok_or_else(|| CandidateError::Layer("only sha256 image digests are supported".into()))
}

fn attachment(
    v: VerifiedBundle,
    predicate_type: String,
    annotations: BTreeMap<String, Value>,
    statement: Option<Value>,
) -> VerifiedAttachment {
    VerifiedAttachment {
        layout: "",
        origin: String::new(),
        predicate_type,
        annotations,
        signer: v.signer,
        log_url: v.log_url,
        log_index: v.log_index,
        inclusion: v.inclusion,
        witnesses: v.witnesses,
        statement,
        logged_at: v.logged_at,
    }
}

/// Refuses, before any signature check, a statement whose (still unverified) predicate type
/// is not what the caller wants: whether genuine or forged, it cannot satisfy this policy,
/// and an image with many attestations then costs no crypto for them.
fn refuse_other_kinds(content: &SignatureContent, expect: &Expect) -> Result<(), CandidateError> {
    let SignatureContent::DsseEnvelope(env) = content else {
        return Ok(());
    };
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "predicateType")]
        predicate_type: String,
    }
    match serde_json::from_slice::<Kind>(&env.payload) {
        Ok(k) => check_kind(&k.predicate_type, expect),
        // An unreadable statement is reported by the full check.
        Err(_) => Ok(()),
    }
}

/// A DSSE statement's predicate type must be what the caller expects.
fn check_kind(predicate_type: &str, expect: &Expect) -> Result<(), CandidateError> {
    let is_signature = predicate_type == cosign::SIGN_PREDICATE_TYPE;
    match expect {
        Expect::Signatures if !is_signature => Err(CandidateError::WrongKind(format!(
            "it is an attestation (predicate type {predicate_type}), not a signature"
        ))),
        Expect::Attestations { .. } if is_signature => Err(CandidateError::WrongKind(
            "it is an image signature, not an attestation".into(),
        )),
        Expect::Attestations {
            predicate_type: Some(want),
        } if want != predicate_type => Err(CandidateError::WrongKind(format!(
            "its predicate type is {predicate_type}, not {want}"
        ))),
        _ => Ok(()),
    }
}

fn check_annotations(
    found: &BTreeMap<String, Value>,
    required: &BTreeMap<String, String>,
) -> Result<(), CandidateError> {
    for (key, expected) in required {
        let value = found.get(key);
        if value.and_then(Value::as_str) != Some(expected.as_str()) {
            return Err(CandidateError::Annotation {
                key: key.clone(),
                expected: expected.clone(),
                found: match value {
                    Some(v) => format!("{key}={v}"),
                    None => "none".into(),
                },
            });
        }
    }
    Ok(())
}

/// The statement of a verified DSSE bundle, read strictly, with the annotations of the
/// subject that names `digest`.
fn verified_statement(
    v: &VerifiedBundle,
    digest: &Digest,
) -> Result<(Statement, BTreeMap<String, Value>, Value), CandidateError> {
    let (_, payload) = v
        .dsse_payload
        .as_ref()
        .ok_or_else(|| CandidateError::Statement("the bundle carries no statement".into()))?;
    let statement =
        Statement::parse(payload).map_err(|e| CandidateError::Statement(e.to_string()))?;
    let subject = statement
        .subject
        .iter()
        .find(|s| {
            s.sha256_hex()
                .is_some_and(|h| h.eq_ignore_ascii_case(digest.hex()))
        })
        .ok_or_else(|| CandidateError::WrongImage {
            signed: statement
                .subject
                .iter()
                .filter_map(|s| s.sha256_hex().map(|h| format!("sha256:{h}")))
                .collect::<Vec<_>>()
                .join(", "),
            expected: digest.to_string(),
        })?;
    let annotations = subject.annotations.clone().unwrap_or_default();
    let value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    Ok((statement, annotations, value))
}

fn check_bundle(
    found: &FoundBundle,
    digest: &Digest,
    policy: &ImagePolicy,
    expect: &Expect,
    verifier: &Verifier<'_>,
) -> Result<VerifiedAttachment, CandidateError> {
    let bundle = Bundle::from_json(&found.bundle_json)
        .map_err(|e| CandidateError::NotABundle(e.to_string()))?;
    refuse_other_kinds(&bundle.content, expect)?;
    let v = verifier.verify(&bundle, image_artifact(digest)?, &policy.signer)?;
    match &bundle.content {
        SignatureContent::DsseEnvelope(_) => {
            let (statement, annotations, value) = verified_statement(&v, digest)?;
            check_kind(&statement.predicate_type, expect)?;
            check_annotations(&annotations, &policy.annotations)?;
            Ok(attachment(
                v,
                statement.predicate_type,
                annotations,
                Some(value),
            ))
        }
        SignatureContent::MessageSignature(_) => {
            // A signature over the manifest digest itself (hashedrekord): a signature, with
            // nowhere to carry annotations.
            if !matches!(expect, Expect::Signatures) {
                return Err(CandidateError::WrongKind(
                    "it is a plain signature, not an attestation".into(),
                ));
            }
            check_annotations(&BTreeMap::new(), &policy.annotations)?;
            Ok(attachment(
                v,
                cosign::SIMPLE_SIGNING_TYPE.to_string(),
                BTreeMap::new(),
                None,
            ))
        }
    }
}

/// The signer and log entry of a legacy layer, from its annotations, as a v0.1 bundle.
fn legacy_material(l: &FoundLegacy) -> Result<VerificationMaterial, CandidateError> {
    let content = match l.layer.annotation(cosign::ANNOTATION_CERTIFICATE) {
        Some(pem) if !pem.is_empty() => {
            let (label, der) = decode_pem(pem).ok_or_else(|| {
                CandidateError::Layer("its certificate annotation is not PEM".into())
            })?;
            if label != "CERTIFICATE" {
                return Err(CandidateError::Layer(format!(
                    "its certificate annotation holds a {label}, not a CERTIFICATE"
                )));
            }
            VerificationContent::X509CertificateChain(vec![der])
        }
        _ => VerificationContent::PublicKey { hint: None },
    };
    let rekor = l
        .layer
        .annotation(cosign::ANNOTATION_BUNDLE)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| {
            CandidateError::Layer(format!(
                "it has no transparency log entry ({} annotation missing)",
                cosign::ANNOTATION_BUNDLE
            ))
        })?;
    let entry = RekorBundle::parse(rekor)
        .and_then(|b| b.to_log_entry())
        .map_err(|e| CandidateError::Layer(e.to_string()))?;
    Ok(VerificationMaterial {
        content,
        tlog_entries: vec![entry],
        timestamp_verification_data: None,
    })
}

const LEGACY: VerifyOptions = VerifyOptions {
    allow_promise_only: true,
};

fn check_legacy_signature(
    l: &FoundLegacy,
    digest: &Digest,
    policy: &ImagePolicy,
    verifier: &Verifier<'_>,
) -> Result<VerifiedAttachment, CandidateError> {
    let signature_b64 = l
        .layer
        .annotation(cosign::ANNOTATION_SIGNATURE)
        .ok_or_else(|| {
            CandidateError::Layer(format!(
                "it has no {} annotation",
                cosign::ANNOTATION_SIGNATURE
            ))
        })?;
    let signature = sigil_proto::encoding::decode_base64(signature_b64)
        .map_err(|_| CandidateError::Layer("its signature annotation is not base64".into()))?;
    let payload_sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &l.payload);
    let bundle = Bundle {
        media_type: MEDIA_TYPE_V0_1.to_string(),
        verification_material: legacy_material(l)?,
        content: SignatureContent::MessageSignature(MessageSignature {
            message_digest: Some(HashOutput {
                algorithm: "SHA2_256".into(),
                digest: payload_sha256.as_ref().to_vec(),
            }),
            signature,
        }),
    };
    let v = verifier.verify_with_options(
        &bundle,
        Artifact::Bytes(&l.payload),
        &policy.signer,
        LEGACY,
    )?;
    let payload =
        SimpleSigning::parse(&l.payload).map_err(|e| CandidateError::Statement(e.to_string()))?;
    let signed = &payload.critical.image.docker_manifest_digest;
    if Digest::parse(signed).ok().as_ref() != Some(digest) {
        return Err(CandidateError::WrongImage {
            signed: signed.clone(),
            expected: digest.to_string(),
        });
    }
    let annotations = payload.optional.clone().unwrap_or_default();
    check_annotations(&annotations, &policy.annotations)?;
    Ok(attachment(
        v,
        cosign::SIMPLE_SIGNING_TYPE.to_string(),
        annotations,
        serde_json::from_slice(&l.payload).ok(),
    ))
}

fn check_legacy_attestation(
    l: &FoundLegacy,
    digest: &Digest,
    policy: &ImagePolicy,
    expect: &Expect,
    verifier: &Verifier<'_>,
) -> Result<VerifiedAttachment, CandidateError> {
    let envelope: Envelope = serde_json::from_slice(&l.payload)
        .map_err(|e| CandidateError::Layer(format!("its layer is not a DSSE envelope: {e}")))?;
    let bundle = Bundle {
        media_type: MEDIA_TYPE_V0_1.to_string(),
        verification_material: legacy_material(l)?,
        content: SignatureContent::DsseEnvelope(envelope),
    };
    refuse_other_kinds(&bundle.content, expect)?;
    let v =
        verifier.verify_with_options(&bundle, image_artifact(digest)?, &policy.signer, LEGACY)?;
    let (statement, annotations, value) = verified_statement(&v, digest)?;
    check_kind(&statement.predicate_type, expect)?;
    check_annotations(&annotations, &policy.annotations)?;
    Ok(attachment(
        v,
        statement.predicate_type,
        annotations,
        Some(value),
    ))
}

/// cosign's output for one verified signature: the simple-signing shape, with the predicate
/// type as `type` and the annotations as `optional`.
pub fn cosign_payload(target: &Target, v: &VerifiedAttachment) -> Value {
    serde_json::json!({
        "critical": {
            "identity": {"docker-reference": target.image.name()},
            "image": {"docker-manifest-digest": target.descriptor.digest.to_string()},
            "type": v.predicate_type,
        },
        "optional": v.annotations,
    })
}
