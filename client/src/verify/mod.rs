//! Offline verification of Sigstore bundles against a trusted root.
//!
//! The checks follow sigstore-python 4.5.1 (interop doc §7.5): bundle shape, verified
//! times (signed entry timestamp, RFC 3161 timestamps), certificate chain at those times,
//! embedded SCT, identity policy, log inclusion and checkpoint, the artifact signature, and
//! that the log entry describes this bundle.

pub mod asn1;
pub mod body;
pub mod certs;
mod content;
mod error;
mod identity;
pub mod keys;
pub mod policy;
pub mod sct;
pub mod timestamp;
pub mod tlog;

use serde::Serialize;
use sigil_proto::bundle::{
    Bundle, BundleVersion, Rfc3161Timestamp, SignatureContent, TransparencyLogEntry,
    VerificationContent,
};
use sigil_proto::trust::{TransparencyLogInstance, TrustedRoot};
use time::OffsetDateTime;

pub use error::VerifyError;
pub use keys::{HashAlg, PublicKey};
pub use policy::{GithubClaims, IdentityPolicy, Matcher, Policy};

use certs::{ParsedCert, TrustedCa};
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

/// How the log entry's inclusion was established.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Inclusion {
    /// A Merkle inclusion proof ending in a checkpoint signed by the log.
    Proof,
    /// Only the log's signed promise to include the entry (cosign's legacy image layout).
    Promise,
}

/// Choices a caller makes about what a bundle must carry.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyOptions {
    /// Accept a log entry that has a signed entry timestamp but no inclusion proof, as
    /// cosign's legacy `.sig`/`.att` layers store it.
    pub allow_promise_only: bool,
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
    pub inclusion: Inclusion,
    /// With --require-witnesses: the trusted witnesses whose cosigned checkpoint covers the
    /// entry.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<String>,
    /// For DSSE bundles: the verified payload type and payload.
    #[serde(skip)]
    pub dsse_payload: Option<(String, Vec<u8>)>,
    /// What ties the verified entry to the log's tree, for checks made online later.
    #[serde(skip)]
    pub logged_at: LoggedAt,
}

/// A verified log entry's place in its log's tree: its leaf hash, and the signed checkpoint
/// its inclusion proof was checked against (none when the log only promised inclusion, as
/// in cosign's legacy layers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedAt {
    pub leaf_hash: [u8; 32],
    pub checkpoint: Option<String>,
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
        verify_with(self, bundle, artifact, policy, VerifyOptions::default())
    }

    pub fn verify_with_options(
        &self,
        bundle: &Bundle,
        artifact: Artifact<'_>,
        policy: &Policy,
        options: VerifyOptions,
    ) -> Result<VerifiedBundle, VerifyError> {
        verify_with(self, bundle, artifact, policy, options)
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

pub(crate) fn shape(msg: impl Into<String>) -> VerifyError {
    VerifyError::BundleShape(msg.into())
}

fn verify_with(
    v: &Verifier<'_>,
    bundle: &Bundle,
    artifact: Artifact<'_>,
    policy: &Policy,
    options: VerifyOptions,
) -> Result<VerifiedBundle, VerifyError> {
    let shape = check_shape(bundle, options)?;
    let entry = shape.entry;
    let signer = signer_material(&bundle.verification_material.content, shape.version, policy)?;
    // The identity is a string comparison on the parsed certificate: refusing a bundle by
    // someone else before any signature check makes an image with many signers cheap to
    // verify. Passing here proves nothing; verify_certificate repeats it after the chain.
    if let (SignerKey::Certificate(leaf), Policy::Identity(p)) = (&signer, policy) {
        identity::check_identity(leaf, p)?;
    }

    let (log, log_key) = tlog::find_log(&v.root.tlogs, entry)?;
    let times = establish_times(v, &shape, log, &log_key)?;
    let instants: Vec<OffsetDateTime> = times.iter().map(|t| t.time).collect();

    let verified_signer = match (&signer, policy) {
        (SignerKey::Certificate(leaf), Policy::Identity(p)) => {
            verify_certificate(v, leaf, p, &instants)?
        }
        _ => VerifiedSigner::Key,
    };

    // check_shape let an entry without a proof through only with a verified promise.
    let inclusion = if entry.inclusion_proof.is_some() {
        tlog::verify_inclusion(entry, &log_key)?;
        Inclusion::Proof
    } else {
        Inclusion::Promise
    };
    let logged_at = LoggedAt {
        leaf_hash: sigil_proto::merkle::leaf_hash(&entry.canonicalized_body),
        checkpoint: entry
            .inclusion_proof
            .as_ref()
            .and_then(|p| p.checkpoint.as_ref())
            .map(|c| c.envelope.clone()),
    };

    let (key, body_signer) = match &signer {
        SignerKey::Certificate(leaf) => (&leaf.key, body::Signer::Certificate(&leaf.der)),
        SignerKey::Key(key) => (*key, body::Signer::Key(key.spki_der())),
    };
    let dsse_payload = content::verify_content(&bundle.content, artifact, key, body_signer, entry)?;

    Ok(VerifiedBundle {
        media_type: bundle.media_type.clone(),
        signer: verified_signer,
        verified_times: times,
        log_url: log.base_url.clone(),
        log_index: entry.log_index,
        log_entry_kind: format!("{}/{}", entry.kind_version.kind, entry.kind_version.version),
        inclusion,
        witnesses: Vec::new(),
        dsse_payload,
        logged_at,
    })
}

/// The parts of a well-formed bundle that the later checks work on.
struct Shape<'b> {
    version: BundleVersion,
    entry: &'b TransparencyLogEntry,
    timestamps: &'b [Rfc3161Timestamp],
    /// The artifact signature (DSSE: the envelope's only signature), which RFC 3161
    /// timestamps cover.
    signature: &'b [u8],
}

/// Bundle rules independent of any key: version, one log entry with an inclusion proof,
/// a time source the version allows, one DSSE signature.
fn check_shape(bundle: &Bundle, options: VerifyOptions) -> Result<Shape<'_>, VerifyError> {
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
    if entry.inclusion_proof.is_none()
        && !(options.allow_promise_only && entry.inclusion_promise.is_some())
    {
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
    Ok(Shape {
        version,
        entry,
        timestamps,
        signature,
    })
}

/// Who signed, as far as the bundle says, and whether that fits the policy.
fn signer_material<'p>(
    content: &VerificationContent,
    version: BundleVersion,
    policy: &'p Policy,
) -> Result<SignerKey<'p>, VerifyError> {
    match (content, policy) {
        (VerificationContent::PublicKey { .. }, Policy::Key(key)) => Ok(SignerKey::Key(key)),
        (VerificationContent::PublicKey { .. }, Policy::Identity(_)) => {
            Err(VerifyError::KeyRequired)
        }
        (_, Policy::Key(_)) => Err(VerifyError::CertificateNotKey),
        (VerificationContent::Certificate(der), Policy::Identity(_)) => {
            Ok(SignerKey::Certificate(Box::new(ParsedCert::from_der(der)?)))
        }
        (VerificationContent::X509CertificateChain(_), _) if version == BundleVersion::V0_3 => Err(
            shape("a v0.3 bundle must carry the leaf certificate, not a chain"),
        ),
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
            Ok(SignerKey::Certificate(Box::new(ParsedCert::from_der(
                leaf,
            )?)))
        }
    }
}

/// The verified times: the integrated time a signed entry timestamp vouches for, and each
/// RFC 3161 timestamp (all of which must verify). The log key must be valid at them.
fn establish_times(
    v: &Verifier<'_>,
    shape: &Shape<'_>,
    log: &TransparencyLogInstance,
    log_key: &PublicKey,
) -> Result<Vec<VerifiedTime>, VerifyError> {
    let entry = shape.entry;
    let mut times = Vec::new();
    if let Some(promise) = &entry.inclusion_promise {
        let t = tlog::verify_set(entry, &promise.signed_entry_timestamp, log_key)?;
        tlog::check_key_validity(log, t)?;
        times.push(VerifiedTime {
            source: TimeSource::SignedEntryTimestamp,
            time: t,
        });
    }
    for ts in shape.timestamps {
        let t = timestamp::verify_timestamp(&ts.signed_timestamp, shape.signature, &v.tsas)?;
        if entry.inclusion_promise.is_none() {
            tlog::check_key_validity(log, t)?;
        }
        times.push(VerifiedTime {
            source: TimeSource::Rfc3161,
            time: t,
        });
    }
    Ok(times)
}

/// The keyless signer: leaf profile, chain to a trusted CA and embedded SCT, validity at
/// every verified time, and the identity policy.
fn verify_certificate(
    v: &Verifier<'_>,
    leaf: &ParsedCert,
    policy: &IdentityPolicy,
    instants: &[OffsetDateTime],
) -> Result<VerifiedSigner, VerifyError> {
    if instants.is_empty() {
        return Err(VerifyError::NoVerifiedTime);
    }
    identity::check_leaf_profile(leaf)?;
    let issuers = certs::verify_chain(leaf, &v.cas, instants)?;
    sct::verify_embedded_sct(leaf, issuers, &v.root.ctlogs)?;
    if let Some(t) = instants.iter().find(|t| !leaf.valid_at(**t)) {
        return Err(VerifyError::TimeOutsideCertificate {
            time: *t,
            not_before: leaf.not_before,
            not_after: leaf.not_after,
        });
    }
    identity::check_identity(leaf, policy)
}
