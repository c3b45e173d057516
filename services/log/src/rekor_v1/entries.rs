//! Turning a proposed entry into its canonical body. Everything is checked here, before the
//! sequencer sees the entry: a rejected submission never touches storage.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sigil_proto::dsse::{Envelope, pae};
use sigil_proto::rekor_v1::{DsseBodySignature, ProposedEntry, dsse_body, hashedrekord_body};

use super::keys::{HashAlg, KeyMaterial};

/// A fully validated entry, ready for the log.
#[derive(Clone, Debug)]
pub struct ValidatedEntry {
    pub body: Vec<u8>,
    pub index_keys: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("{field} is not valid base64")]
    Base64 { field: &'static str },
    #[error("{field}: {message}")]
    Key {
        field: &'static str,
        message: String,
    },
    #[error("unsupported hash algorithm {0:?} (supported: sha256, sha384, sha512)")]
    HashAlgorithm(String),
    #[error("hash value must be {want} lowercase hex characters for {alg}")]
    HashValue { alg: String, want: usize },
    #[error("signature is empty")]
    EmptySignature,
    #[error("{0}")]
    Signature(&'static str),
    #[error("dsse envelope is not valid: {0}")]
    Envelope(String),
    #[error("dsse envelope has no signatures")]
    NoEnvelopeSignatures,
    #[error("dsse entry needs at least one verifier")]
    NoVerifiers,
    #[error("dsse envelope signature {0} does not verify with any of the given verifiers")]
    EnvelopeSignature(usize),
    #[error("dsse entry has {got} {what}; at most {max} are accepted")]
    TooMany {
        what: &'static str,
        got: usize,
        max: usize,
    },
    #[error("dsse envelope signature {0} repeats signature {1}")]
    DuplicateSignature(usize, usize),
    #[error("the entry's canonical body would be {0} bytes; at most {MAX_BODY_BYTES} are accepted")]
    BodyTooLarge(usize),
}

/// The largest canonical body accepted: a C2SP entry bundle (the tiles API) prefixes each
/// entry with a 16-bit length, so a larger body would break every tile that covers it.
pub const MAX_BODY_BYTES: usize = u16::MAX as usize;

/// Per-entry limits for dsse: every signature is tried against every verifier, so the product
/// bounds the CPU one entry can cost (16 x 16 checks, a few milliseconds).
pub const MAX_DSSE_SIGNATURES: usize = 16;
pub const MAX_DSSE_VERIFIERS: usize = 16;

pub fn validate(entry: &ProposedEntry) -> Result<ValidatedEntry, EntryError> {
    let validated = validate_fields(entry)?;
    if validated.body.len() > MAX_BODY_BYTES {
        return Err(EntryError::BodyTooLarge(validated.body.len()));
    }
    Ok(validated)
}

fn validate_fields(entry: &ProposedEntry) -> Result<ValidatedEntry, EntryError> {
    match entry {
        ProposedEntry::HashedRekord(spec) => {
            let alg = HashAlg::from_rekor_name(&spec.data.hash.algorithm)
                .ok_or_else(|| EntryError::HashAlgorithm(spec.data.hash.algorithm.clone()))?;
            let value = &spec.data.hash.value;
            let digest = hex::decode(value)
                .ok()
                .filter(|d| {
                    d.len() == alg.output_len() && value.bytes().all(|b| !b.is_ascii_uppercase())
                })
                .ok_or_else(|| EntryError::HashValue {
                    alg: spec.data.hash.algorithm.clone(),
                    want: alg.output_len() * 2,
                })?;
            let sig = STANDARD
                .decode(&spec.signature.content)
                .map_err(|_| EntryError::Base64 {
                    field: "spec.signature.content",
                })?;
            if sig.is_empty() {
                return Err(EntryError::EmptySignature);
            }
            let pem = STANDARD
                .decode(&spec.signature.public_key.content)
                .map_err(|_| EntryError::Base64 {
                    field: "spec.signature.publicKey.content",
                })?;
            let key = KeyMaterial::from_pem(&pem).map_err(|e| EntryError::Key {
                field: "spec.signature.publicKey.content",
                message: e.to_string(),
            })?;
            key.verify_prehashed(alg, &digest, &sig)
                .map_err(EntryError::Signature)?;
            let body = hashedrekord_body(
                &spec.data.hash.algorithm,
                value,
                &STANDARD.encode(&sig),
                &STANDARD.encode(key.canonical_pem.as_bytes()),
            );
            let mut index_keys = vec![format!("{}:{}", spec.data.hash.algorithm, value)];
            index_keys.extend(key.index_keys());
            Ok(ValidatedEntry { body, index_keys })
        }
        ProposedEntry::Dsse(spec) => {
            let content = &spec.proposed_content;
            let envelope: Envelope = serde_json::from_str(&content.envelope)
                .map_err(|e| EntryError::Envelope(e.to_string()))?;
            if envelope.signatures.is_empty() {
                return Err(EntryError::NoEnvelopeSignatures);
            }
            if content.verifiers.is_empty() {
                return Err(EntryError::NoVerifiers);
            }
            check_count("signatures", envelope.signatures.len(), MAX_DSSE_SIGNATURES)?;
            check_count("verifiers", content.verifiers.len(), MAX_DSSE_VERIFIERS)?;
            for (i, s) in envelope.signatures.iter().enumerate() {
                if let Some(j) = envelope.signatures[..i].iter().position(|t| t.sig == s.sig) {
                    return Err(EntryError::DuplicateSignature(i, j));
                }
            }
            let mut keys: Vec<KeyMaterial> = Vec::with_capacity(content.verifiers.len());
            for v in &content.verifiers {
                let pem = STANDARD.decode(v).map_err(|_| EntryError::Base64 {
                    field: "spec.proposedContent.verifiers",
                })?;
                let key = KeyMaterial::from_pem(&pem).map_err(|e| EntryError::Key {
                    field: "spec.proposedContent.verifiers",
                    message: e.to_string(),
                })?;
                // The same key twice (in any PEM spelling) would only repeat failed checks.
                if !keys.iter().any(|k| k.canonical_pem == key.canonical_pem) {
                    keys.push(key);
                }
            }
            let message = pae(&envelope.payload_type, &envelope.payload);
            let mut signatures = Vec::with_capacity(envelope.signatures.len());
            let mut index_keys = Vec::new();
            for (i, s) in envelope.signatures.iter().enumerate() {
                let key = keys
                    .iter()
                    .find(|k| k.verify_message(&message, &s.sig))
                    .ok_or(EntryError::EnvelopeSignature(i))?;
                signatures.push(DsseBodySignature {
                    signature_b64: STANDARD.encode(&s.sig),
                    verifier_b64_pem: STANDARD.encode(key.canonical_pem.as_bytes()),
                });
                index_keys.extend(key.index_keys());
            }
            let envelope_hash = hex::encode(Sha256::digest(content.envelope.as_bytes()));
            let payload_hash = hex::encode(Sha256::digest(&envelope.payload));
            index_keys.push(format!("sha256:{payload_hash}"));
            // Rekor indexes the envelope's hash too: it is what a bundle's DSSE names.
            index_keys.push(format!("sha256:{envelope_hash}"));
            index_keys.extend(in_toto_subject_digests(&envelope));
            index_keys.sort();
            index_keys.dedup();
            Ok(ValidatedEntry {
                body: dsse_body(&envelope_hash, &payload_hash, &signatures),
                index_keys,
            })
        }
    }
}

fn check_count(what: &'static str, got: usize, max: usize) -> Result<(), EntryError> {
    if got > max {
        return Err(EntryError::TooMany { what, got, max });
    }
    Ok(())
}

/// In-toto statements name their subjects by digest; index those so artifacts are findable.
fn in_toto_subject_digests(envelope: &Envelope) -> Vec<String> {
    if envelope.payload_type != sigil_proto::dsse::IN_TOTO_PAYLOAD_TYPE {
        return Vec::new();
    }
    let Ok(statement) = serde_json::from_slice::<Value>(&envelope.payload) else {
        return Vec::new();
    };
    statement["subject"]
        .as_array()
        .map(|subjects| {
            subjects
                .iter()
                .filter_map(|s| s["digest"]["sha256"].as_str())
                .filter(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(|d| format!("sha256:{}", d.to_lowercase()))
                .collect()
        })
        .unwrap_or_default()
}
