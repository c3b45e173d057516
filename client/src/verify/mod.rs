//! Offline verification of Sigstore bundles against a trusted root.
//!
//! The checks follow sigstore-python 4.5.1 (interop doc §7.5): bundle shape, verified
//! times (signed entry timestamp, RFC 3161 timestamps), certificate chain at those times,
//! embedded SCT, identity policy, log inclusion and checkpoint, the artifact signature, and
//! that the log entry describes this bundle.

pub mod asn1;
pub mod body;
pub mod certs;
mod error;
pub mod keys;
pub mod policy;
pub mod sct;
pub mod timestamp;
pub mod tlog;

use serde::Serialize;
use sigil_proto::bundle::{Bundle, BundleVersion, SignatureContent, VerificationContent};
use sigil_proto::dsse::{IN_TOTO_PAYLOAD_TYPE, pae};
use sigil_proto::trust::TrustedRoot;
use time::OffsetDateTime;

pub use error::VerifyError;
pub use keys::{HashAlg, PublicKey};
pub use policy::{GithubClaims, IdentityPolicy, Matcher, Policy};

use certs::{ParsedCert, TrustedCa, fulcio_extension};
use timestamp::TrustedTsa;

/// What was signed: the bytes, or only their SHA-256 (conformance `sha256:<hex>`).
#[derive(Clone, Copy, Debug)]
pub enum Artifact<'a> {
    Bytes(&'a [u8]),
    Sha256([u8; 32]),
}

impl Artifact<'_> {
    fn digest(&self, alg: HashAlg) -> Result<Vec<u8>, VerifyError> {
        match (self, alg) {
            (Artifact::Bytes(b), alg) => Ok(alg.digest(b)),
            (Artifact::Sha256(d), HashAlg::Sha256) => Ok(d.to_vec()),
            (Artifact::Sha256(_), other) => Err(VerifyError::ArtifactMismatch(format!(
                "bundle signs a {other:?} digest but only a SHA-256 digest of the artifact was given"
            ))),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// Rekor v1 integrated time, vouched for by the signed entry timestamp.
    SignedEntryTimestamp,
    Rfc3161,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedTime {
    pub source: TimeSource,
    #[serde(with = "sigil_proto::encoding::rfc3339")]
    pub time: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VerifiedSigner {
    Certificate {
        /// SAN values (email, URI, username).
        identities: Vec<String>,
        issuer: Option<String>,
    },
    Key,
}

/// The facts a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedBundle {
    pub media_type: String,
    pub signer: VerifiedSigner,
    pub verified_times: Vec<VerifiedTime>,
    pub log_url: String,
    pub log_index: u64,
    pub log_entry_kind: String,
    /// For DSSE bundles: the verified payload type and payload.
    #[serde(skip)]
    pub dsse_payload: Option<(String, Vec<u8>)>,
}

/// A trusted root with its certificates parsed once, for verifying many bundles.
pub struct Verifier<'r> {
    root: &'r TrustedRoot,
    cas: Vec<TrustedCa>,
    tsas: Vec<TrustedTsa>,
}

impl<'r> Verifier<'r> {
    pub fn new(root: &'r TrustedRoot) -> Result<Verifier<'r>, VerifyError> {
        Ok(Verifier {
            root,
            cas: TrustedCa::parse_all(&root.certificate_authorities)
                .map_err(|e| VerifyError::TrustedRoot(e.to_string()))?,
            tsas: TrustedTsa::parse_all(&root.timestamp_authorities)
                .map_err(|e| VerifyError::TrustedRoot(e.to_string()))?,
        })
    }

    pub fn verify(
        &self,
        bundle: &Bundle,
        artifact: Artifact<'_>,
        policy: &Policy,
    ) -> Result<VerifiedBundle, VerifyError> {
        verify_with(self, bundle, artifact, policy)
    }
}

/// Verifies `bundle` for `artifact` under `policy`, trusting only `trusted_root`.
pub fn verify_bundle(
    bundle: &Bundle,
    artifact: Artifact<'_>,
    policy: &Policy,
    trusted_root: &TrustedRoot,
) -> Result<VerifiedBundle, VerifyError> {
    Verifier::new(trusted_root)?.verify(bundle, artifact, policy)
}

enum SignerKey<'a> {
    Certificate(Box<ParsedCert>),
    Key(&'a PublicKey),
}

fn shape(msg: impl Into<String>) -> VerifyError {
    VerifyError::BundleShape(msg.into())
}

fn verify_with(
    v: &Verifier<'_>,
    bundle: &Bundle,
    artifact: Artifact<'_>,
    policy: &Policy,
) -> Result<VerifiedBundle, VerifyError> {
    // 1. Shape.
    let version = bundle
        .version()
        .ok_or_else(|| VerifyError::UnsupportedVersion(bundle.media_type.clone()))?;
    let material = &bundle.verification_material;
    let [entry] = material.tlog_entries.as_slice() else {
        return Err(shape(format!(
            "expected exactly one transparency log entry, found {}",
            material.tlog_entries.len()
        )));
    };
    if !matches!(entry.kind_version.version.as_str(), "0.0.1" | "0.0.2") {
        return Err(shape(format!(
            "unsupported log entry version {}",
            entry.kind_version.version
        )));
    }
    // The checkpoint's presence is checked with the proof itself, so that a wrong proof is
    // reported as such.
    if entry.inclusion_proof.is_none() {
        return Err(tlog::TlogError::MissingInclusionProof.into());
    }
    let timestamps = material
        .timestamp_verification_data
        .as_ref()
        .map(|t| t.rfc3161_timestamps.as_slice())
        .unwrap_or_default();
    if timestamps.len() > 32 {
        return Err(shape("more than 32 RFC 3161 timestamps"));
    }
    for (i, ts) in timestamps.iter().enumerate() {
        if timestamps[..i]
            .iter()
            .any(|other| other.signed_timestamp == ts.signed_timestamp)
        {
            return Err(shape("duplicate RFC 3161 timestamp"));
        }
    }
    match (
        version,
        entry.inclusion_promise.is_some(),
        timestamps.is_empty(),
    ) {
        (BundleVersion::V0_1, false, _) => {
            return Err(shape("a v0.1 bundle must have an inclusion promise"));
        }
        (_, false, true) => {
            return Err(shape(
                "bundle needs an inclusion promise or an RFC 3161 timestamp",
            ));
        }
        _ => {}
    }
    let signature: &[u8] = match &bundle.content {
        SignatureContent::MessageSignature(m) => &m.signature,
        SignatureContent::DsseEnvelope(env) => match env.signatures.as_slice() {
            [only] => &only.sig,
            other => {
                return Err(shape(format!(
                    "DSSE envelope must have exactly one signature, has {}",
                    other.len()
                )));
            }
        },
    };

    // 2. Who signed, as far as the bundle says.
    let signer = match (&material.content, policy) {
        (VerificationContent::PublicKey { .. }, Policy::Key(key)) => SignerKey::Key(key),
        (VerificationContent::PublicKey { .. }, Policy::Identity(_)) => {
            return Err(VerifyError::KeyRequired);
        }
        (_, Policy::Key(_)) => return Err(VerifyError::CertificateNotKey),
        (VerificationContent::Certificate(der), Policy::Identity(_)) => {
            SignerKey::Certificate(Box::new(ParsedCert::from_der(der)?))
        }
        (VerificationContent::X509CertificateChain(_), _) if version == BundleVersion::V0_3 => {
            return Err(shape(
                "a v0.3 bundle must carry the leaf certificate, not a chain",
            ));
        }
        (VerificationContent::X509CertificateChain(chain), Policy::Identity(_)) => {
            let (leaf, rest) = chain
                .split_first()
                .ok_or_else(|| shape("certificate chain is empty"))?;
            for der in rest {
                if ParsedCert::from_der(der)?.is_self_issued() {
                    return Err(shape(
                        "certificate chain must not contain a root certificate",
                    ));
                }
            }
            SignerKey::Certificate(Box::new(ParsedCert::from_der(leaf)?))
        }
    };

    // 3. Verified times.
    let (log, log_key) = tlog::find_log(&v.root.tlogs, entry)?;
    let mut times = Vec::new();
    if let Some(promise) = &entry.inclusion_promise {
        let t = tlog::verify_set(entry, &promise.signed_entry_timestamp, &log_key)?;
        tlog::check_key_validity(log, t)?;
        times.push(VerifiedTime {
            source: TimeSource::SignedEntryTimestamp,
            time: t,
        });
    }
    for ts in timestamps {
        let t = timestamp::verify_timestamp(&ts.signed_timestamp, signature, &v.tsas)?;
        if entry.inclusion_promise.is_none() {
            tlog::check_key_validity(log, t)?;
        }
        times.push(VerifiedTime {
            source: TimeSource::Rfc3161,
            time: t,
        });
    }
    let instants: Vec<OffsetDateTime> = times.iter().map(|t| t.time).collect();

    // 4. Certificate: chain, SCT, profile, validity at every verified time, policy.
    let verified_signer = match (&signer, policy) {
        (SignerKey::Certificate(leaf), Policy::Identity(p)) => {
            if instants.is_empty() {
                return Err(VerifyError::NoVerifiedTime);
            }
            check_leaf_profile(leaf)?;
            let issuers = certs::verify_chain(leaf, &v.cas, &instants)?;
            sct::verify_embedded_sct(leaf, issuers, &v.root.ctlogs)?;
            if let Some(t) = instants.iter().find(|t| !leaf.valid_at(**t)) {
                return Err(VerifyError::TimeOutsideCertificate {
                    time: *t,
                    not_before: leaf.not_before,
                    not_after: leaf.not_after,
                });
            }
            check_identity(leaf, p)?
        }
        _ => VerifiedSigner::Key,
    };

    // 5. Log inclusion and checkpoint.
    tlog::verify_inclusion(entry, &log_key)?;

    // 6. Artifact signature, and that the log entry is about this signature.
    let (key, body_signer) = match &signer {
        SignerKey::Certificate(leaf) => (&leaf.key, body::Signer::Certificate(&leaf.der)),
        SignerKey::Key(key) => (*key, body::Signer::Key(key.spki_der())),
    };
    let mut dsse_payload = None;
    match &bundle.content {
        SignatureContent::MessageSignature(m) => {
            let alg = match &m.message_digest {
                Some(d) => HashAlg::from_proto_name(&d.algorithm).ok_or_else(|| {
                    shape(format!(
                        "unsupported message digest algorithm {}",
                        d.algorithm
                    ))
                })?,
                None => HashAlg::Sha256,
            };
            let digest = artifact.digest(alg)?;
            if m.message_digest
                .as_ref()
                .is_some_and(|d| d.digest != digest)
            {
                return Err(VerifyError::ArtifactMismatch(
                    "the bundle's message digest is not the artifact's digest".into(),
                ));
            }
            let ok = match (key.kind(), artifact) {
                (keys::KeyKind::Ed25519, Artifact::Bytes(b)) => {
                    key.verify(alg, b, &m.signature).is_ok()
                }
                _ => key.verify_prehashed(alg, &digest, &m.signature).is_ok(),
            };
            if !ok {
                return Err(VerifyError::Signature);
            }
            body::check_message_signature(entry, alg, &digest, &m.signature, body_signer)?;
        }
        SignatureContent::DsseEnvelope(env) => {
            key.verify(
                key.default_hash(),
                &pae(&env.payload_type, &env.payload),
                signature,
            )
            .map_err(|_| VerifyError::Signature)?;
            check_statement_subject(&env.payload_type, &env.payload, artifact)?;
            body::check_dsse(entry, env, body_signer)?;
            dsse_payload = Some((env.payload_type.clone(), env.payload.clone()));
        }
    }

    Ok(VerifiedBundle {
        media_type: bundle.media_type.clone(),
        signer: verified_signer,
        verified_times: times,
        log_url: log.base_url.clone(),
        log_index: entry.log_index,
        log_entry_kind: format!("{}/{}", entry.kind_version.kind, entry.kind_version.version),
        dsse_payload,
    })
}

fn check_leaf_profile(leaf: &ParsedCert) -> Result<(), VerifyError> {
    if leaf.is_ca() {
        return Err(VerifyError::CertificateProfile(
            "the signing certificate is a CA certificate",
        ));
    }
    if !leaf.has_digital_signature_usage() {
        return Err(VerifyError::CertificateProfile(
            "key usage lacks digitalSignature",
        ));
    }
    let code_signing = leaf
        .extended_key_usage()
        .is_some_and(|(_, ekus)| ekus.contains(&certs::CODE_SIGNING));
    if !code_signing {
        return Err(VerifyError::CertificateProfile(
            "extended key usage lacks codeSigning",
        ));
    }
    if leaf.extension(&certs::PRECERT_POISON).is_some() {
        return Err(VerifyError::CertificateProfile(
            "the signing certificate is a precertificate",
        ));
    }
    if leaf.has_unknown_critical_extension() {
        return Err(VerifyError::CertificateProfile(
            "the signing certificate has an unknown critical extension",
        ));
    }
    Ok(())
}

/// (claim name, expected value, legacy raw OID arc, current OID arc, prefix the current one adds)
type ClaimSpec<'a> = (
    &'static str,
    &'a Option<String>,
    u32,
    Option<u32>,
    &'static str,
);

fn check_identity(
    leaf: &ParsedCert,
    policy: &IdentityPolicy,
) -> Result<VerifiedSigner, VerifyError> {
    let identities = leaf.san_identities();
    if !identities.iter().any(|id| policy.identity.matches(id)) {
        return Err(VerifyError::Identity {
            expected: policy.identity.to_string(),
            found: identities,
        });
    }
    let issuer = fulcio_extension(leaf, 8).or_else(|| fulcio_extension(leaf, 1));
    if !issuer.as_deref().is_some_and(|i| policy.issuer.matches(i)) {
        return Err(VerifyError::Issuer {
            expected: policy.issuer.to_string(),
            found: issuer,
        });
    }
    let github = &policy.github;
    // (claim, expected, legacy raw OID arc, current OID arc, prefix the current one adds)
    let claims: [ClaimSpec<'_>; 5] = [
        ("trigger", &github.trigger, 2, Some(20), ""),
        ("sha", &github.sha, 3, Some(13), ""),
        ("name", &github.name, 4, None, ""),
        (
            "repository",
            &github.repository,
            5,
            Some(12),
            "https://github.com/",
        ),
        ("ref", &github.git_ref, 6, Some(14), ""),
    ];
    for (claim, expected, legacy, current, prefix) in claims {
        let Some(expected) = expected else { continue };
        let found = fulcio_extension(leaf, legacy).or_else(|| {
            current
                .and_then(|arc| fulcio_extension(leaf, arc))
                .map(|v| v.strip_prefix(prefix).map(str::to_string).unwrap_or(v))
        });
        if found.as_deref() != Some(expected.as_str()) {
            return Err(VerifyError::GithubClaim {
                claim,
                expected: expected.clone(),
                found,
            });
        }
    }
    Ok(VerifiedSigner::Certificate { identities, issuer })
}

/// For in-toto statements the artifact must be one of the subjects (by SHA-256).
fn check_statement_subject(
    payload_type: &str,
    payload: &[u8],
    artifact: Artifact<'_>,
) -> Result<(), VerifyError> {
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(VerifyError::ArtifactMismatch(format!(
            "DSSE payload type {payload_type:?} is not an in-toto statement"
        )));
    }
    let statement: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|_| VerifyError::ArtifactMismatch("in-toto statement is not JSON".into()))?;
    let want = hex::encode(artifact.digest(HashAlg::Sha256)?);
    let found = statement
        .get("subject")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("digest")?.get("sha256")?.as_str())
        .any(|d| d.eq_ignore_ascii_case(&want));
    if found {
        Ok(())
    } else {
        Err(VerifyError::ArtifactMismatch(
            "the artifact's SHA-256 is not a subject of the in-toto statement".into(),
        ))
    }
}
