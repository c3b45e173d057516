//! Sigstore bundle (`dev.sigstore.bundle.v1.Bundle`), media types v0.1 to v0.3, in the strict
//! protobuf JSON form sigstore-python accepts: unknown fields rejected, 64-bit integers as
//! strings, bytes as padded base64. The protobuf `oneof`s become Rust enums; a bundle with
//! none or two of a oneof's members does not parse.

use serde::{Deserialize, Serialize};

use crate::dsse::Envelope;
use crate::encoding::{base64_bytes, base64_vec, i64_string, u64_string};

/// The media type sigil writes.
pub const MEDIA_TYPE_V0_3: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const MEDIA_TYPE_V0_3_LEGACY: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
pub const MEDIA_TYPE_V0_2: &str = "application/vnd.dev.sigstore.bundle+json;version=0.2";
pub const MEDIA_TYPE_V0_1: &str = "application/vnd.dev.sigstore.bundle+json;version=0.1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BundleVersion {
    V0_1,
    V0_2,
    V0_3,
}

impl BundleVersion {
    pub fn from_media_type(media_type: &str) -> Option<BundleVersion> {
        match media_type {
            MEDIA_TYPE_V0_1 => Some(BundleVersion::V0_1),
            MEDIA_TYPE_V0_2 => Some(BundleVersion::V0_2),
            MEDIA_TYPE_V0_3 | MEDIA_TYPE_V0_3_LEGACY => Some(BundleVersion::V0_3),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleParseError {
    #[error("bundle is not valid JSON for the Sigstore bundle schema: {0}")]
    Json(#[from] serde_json::Error),
}

/// A Sigstore bundle. `media_type` is kept verbatim so that an unsupported version can be
/// reported as such by the verifier (see [`Bundle::version`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawBundle", into = "RawBundle")]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    pub content: SignatureContent,
}

impl Bundle {
    /// A bundle with the v0.3 media type, the one sigil writes.
    pub fn new(verification_material: VerificationMaterial, content: SignatureContent) -> Bundle {
        Bundle {
            media_type: MEDIA_TYPE_V0_3.to_string(),
            verification_material,
            content,
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<Bundle, BundleParseError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("bundle serialises")
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("bundle serialises")
    }

    pub fn version(&self) -> Option<BundleVersion> {
        BundleVersion::from_media_type(&self.media_type)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureContent {
    MessageSignature(MessageSignature),
    DsseEnvelope(Envelope),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageSignature {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_digest: Option<HashOutput>,
    #[serde(with = "base64_bytes")]
    pub signature: Vec<u8>,
}

/// `dev.sigstore.common.v1.HashOutput`; `algorithm` is the enum name, e.g. `SHA2_256`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashOutput {
    pub algorithm: String,
    #[serde(with = "base64_bytes")]
    pub digest: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawVerificationMaterial", into = "RawVerificationMaterial")]
pub struct VerificationMaterial {
    pub content: VerificationContent,
    pub tlog_entries: Vec<TransparencyLogEntry>,
    pub timestamp_verification_data: Option<TimestampVerificationData>,
}

/// What identifies the signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerificationContent {
    /// v0.3: the leaf certificate only (DER).
    Certificate(Vec<u8>),
    /// v0.1/v0.2: leaf first, then intermediates (DER each).
    X509CertificateChain(Vec<Vec<u8>>),
    /// A managed key known to the verifier out of band.
    PublicKey { hint: Option<String> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransparencyLogEntry {
    /// Absent means 0, as protobuf JSON omits default values (cosign's and sigstore-js's
    /// bundles for a log's first entry have no `logIndex`).
    #[serde(default, with = "u64_string")]
    pub log_index: u64,
    pub log_id: LogId,
    pub kind_version: KindVersion,
    /// Seconds since the epoch; 0 (or absent) on Rekor v2, which gives no integrated time.
    #[serde(default, with = "i64_string", skip_serializing_if = "is_zero")]
    pub integrated_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_promise: Option<InclusionPromise>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_proof: Option<InclusionProof>,
    #[serde(with = "base64_bytes")]
    pub canonicalized_body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogId {
    #[serde(with = "base64_bytes")]
    pub key_id: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindVersion {
    pub kind: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InclusionPromise {
    #[serde(with = "base64_bytes")]
    pub signed_entry_timestamp: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InclusionProof {
    #[serde(default, with = "u64_string")]
    pub log_index: u64,
    #[serde(with = "base64_bytes")]
    pub root_hash: Vec<u8>,
    #[serde(with = "u64_string")]
    pub tree_size: u64,
    #[serde(default, with = "base64_vec")]
    pub hashes: Vec<Vec<u8>>,
    /// Required by every current verifier; optional in the schema, so its absence is
    /// reported by verification rather than as a parse error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointEnvelope>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointEnvelope {
    /// The signed note text, verbatim.
    pub envelope: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimestampVerificationData {
    #[serde(default)]
    pub rfc3161_timestamps: Vec<Rfc3161Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rfc3161Timestamp {
    /// DER `TimeStampResp` (sigstore-python also accepts a bare `TimeStampToken`).
    #[serde(with = "base64_bytes")]
    pub signed_timestamp: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogEntryConversionError {
    #[error("Rekor response field {0} is not valid {1}")]
    Encoding(&'static str, &'static str),
    #[error("Rekor entry body has no kind/apiVersion")]
    BodyKind,
}

impl TransparencyLogEntry {
    /// The bundle form of a Rekor v1 `LogEntry` response (interop doc §3.7): hex becomes
    /// bytes, the body's `kind`/`apiVersion` become `kindVersion`, the SET becomes the
    /// inclusion promise.
    pub fn from_rekor_v1(
        entry: &crate::rekor_v1::LogEntry,
    ) -> Result<TransparencyLogEntry, LogEntryConversionError> {
        use LogEntryConversionError::{BodyKind, Encoding};
        let b64 = |field, s: &str| {
            crate::encoding::decode_base64(s).map_err(|_| Encoding(field, "base64"))
        };
        let hex = |field, s: &str| hex::decode(s).map_err(|_| Encoding(field, "hex"));
        let body = b64("body", &entry.body)?;
        #[derive(Deserialize)]
        struct KindOnly {
            kind: String,
            #[serde(rename = "apiVersion")]
            api_version: String,
        }
        let kind: KindOnly = serde_json::from_slice(&body).map_err(|_| BodyKind)?;
        let proof = &entry.verification.inclusion_proof;
        Ok(TransparencyLogEntry {
            log_index: entry.log_index,
            log_id: LogId {
                key_id: hex("logID", &entry.log_id)?,
            },
            kind_version: KindVersion {
                kind: kind.kind,
                version: kind.api_version,
            },
            integrated_time: entry.integrated_time,
            inclusion_promise: Some(InclusionPromise {
                signed_entry_timestamp: b64(
                    "signedEntryTimestamp",
                    &entry.verification.signed_entry_timestamp,
                )?,
            }),
            inclusion_proof: Some(InclusionProof {
                log_index: proof.log_index,
                root_hash: hex("rootHash", &proof.root_hash)?,
                tree_size: proof.tree_size,
                hashes: proof
                    .hashes
                    .iter()
                    .map(|h| hex("hashes", h))
                    .collect::<Result<_, _>>()?,
                checkpoint: Some(CheckpointEnvelope {
                    envelope: proof.checkpoint.clone(),
                }),
            }),
            canonicalized_body: body,
        })
    }
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

// ---- wire forms with the oneofs spelled out as optional fields --------------------------

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBundle {
    media_type: String,
    verification_material: VerificationMaterial,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_signature: Option<MessageSignature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dsse_envelope: Option<Envelope>,
}

impl TryFrom<RawBundle> for Bundle {
    type Error = String;
    fn try_from(raw: RawBundle) -> Result<Bundle, String> {
        let content = match (raw.message_signature, raw.dsse_envelope) {
            (Some(m), None) => SignatureContent::MessageSignature(m),
            (None, Some(d)) => SignatureContent::DsseEnvelope(d),
            (None, None) => {
                return Err("bundle has neither messageSignature nor dsseEnvelope".into());
            }
            (Some(_), Some(_)) => {
                return Err("bundle has both messageSignature and dsseEnvelope".into());
            }
        };
        Ok(Bundle {
            media_type: raw.media_type,
            verification_material: raw.verification_material,
            content,
        })
    }
}

impl From<Bundle> for RawBundle {
    fn from(b: Bundle) -> RawBundle {
        let (message_signature, dsse_envelope) = match b.content {
            SignatureContent::MessageSignature(m) => (Some(m), None),
            SignatureContent::DsseEnvelope(d) => (None, Some(d)),
        };
        RawBundle {
            media_type: b.media_type,
            verification_material: b.verification_material,
            message_signature,
            dsse_envelope,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawVerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate: Option<X509Certificate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x509_certificate_chain: Option<X509CertificateChain>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<RawPublicKeyIdentifier>,
    #[serde(default)]
    tlog_entries: Vec<TransparencyLogEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp_verification_data: Option<TimestampVerificationData>,
}

/// `dev.sigstore.common.v1.X509Certificate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct X509Certificate {
    #[serde(with = "base64_bytes")]
    pub raw_bytes: Vec<u8>,
}

/// `dev.sigstore.common.v1.X509CertificateChain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X509CertificateChain {
    #[serde(default)]
    pub certificates: Vec<X509Certificate>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublicKeyIdentifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

impl TryFrom<RawVerificationMaterial> for VerificationMaterial {
    type Error = String;
    fn try_from(raw: RawVerificationMaterial) -> Result<VerificationMaterial, String> {
        let content = match (raw.certificate, raw.x509_certificate_chain, raw.public_key) {
            (Some(c), None, None) => VerificationContent::Certificate(c.raw_bytes),
            (None, Some(chain), None) => {
                VerificationContent::X509CertificateChain(chain.certificates.into_iter().map(|c| c.raw_bytes).collect())
            }
            (None, None, Some(k)) => VerificationContent::PublicKey { hint: k.hint },
            (None, None, None) => {
                return Err("verificationMaterial has none of certificate, x509CertificateChain, publicKey".into());
            }
            _ => return Err("verificationMaterial has more than one of certificate, x509CertificateChain, publicKey".into()),
        };
        Ok(VerificationMaterial {
            content,
            tlog_entries: raw.tlog_entries,
            timestamp_verification_data: raw.timestamp_verification_data,
        })
    }
}

impl From<VerificationMaterial> for RawVerificationMaterial {
    fn from(m: VerificationMaterial) -> RawVerificationMaterial {
        let (certificate, x509_certificate_chain, public_key) = match m.content {
            VerificationContent::Certificate(der) => {
                (Some(X509Certificate { raw_bytes: der }), None, None)
            }
            VerificationContent::X509CertificateChain(chain) => (
                None,
                Some(X509CertificateChain {
                    certificates: chain
                        .into_iter()
                        .map(|raw_bytes| X509Certificate { raw_bytes })
                        .collect(),
                }),
                None,
            ),
            VerificationContent::PublicKey { hint } => {
                (None, None, Some(RawPublicKeyIdentifier { hint }))
            }
        };
        RawVerificationMaterial {
            certificate,
            x509_certificate_chain,
            public_key,
            tlog_entries: m.tlog_entries,
            timestamp_verification_data: m.timestamp_verification_data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn cases_dir() -> Option<PathBuf> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/conformance-assets/bundle-verify");
        if dir.is_dir() {
            Some(dir)
        } else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "conformance assets missing at {}",
                dir.display()
            );
            None
        }
    }

    const MINIMAL: &str = r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"k"},"tlogEntries":[{"logIndex":"1","logId":{"keyId":"AQ=="},"kindVersion":{"kind":"hashedrekord","version":"0.0.1"},"integratedTime":"5","inclusionPromise":null,"inclusionProof":{"logIndex":"1","rootHash":"AA==","treeSize":"2","hashes":["AQ=="],"checkpoint":{"envelope":"x\n"}},"canonicalizedBody":"e30="}]},"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AA=="},"signature":"AQI="}}"#;

    #[test]
    fn a_missing_log_index_is_zero_as_protobuf_json_defaults_it() {
        let first_entry = MINIMAL.replace(r#""logIndex":"1","#, "");
        let b = Bundle::from_json(first_entry.as_bytes()).unwrap();
        let e = &b.verification_material.tlog_entries[0];
        assert_eq!(e.log_index, 0);
        assert_eq!(e.inclusion_proof.as_ref().unwrap().log_index, 0);
    }

    #[test]
    fn parses_a_minimal_bundle_and_accepts_null_promise() {
        let b = Bundle::from_json(MINIMAL.as_bytes()).unwrap();
        assert_eq!(b.version(), Some(BundleVersion::V0_3));
        assert_eq!(
            b.verification_material.content,
            VerificationContent::PublicKey {
                hint: Some("k".into())
            }
        );
        let e = &b.verification_material.tlog_entries[0];
        assert_eq!((e.log_index, e.integrated_time), (1, 5));
        assert!(e.inclusion_promise.is_none());
        assert!(
            matches!(b.content, SignatureContent::MessageSignature(ref m) if m.signature == [1, 2])
        );
        let rebuilt = Bundle::new(b.verification_material.clone(), b.content.clone());
        assert_eq!(rebuilt.media_type, MEDIA_TYPE_V0_3);
        // Re-parsing our own output gives the same value.
        assert_eq!(Bundle::from_json(b.to_json().as_bytes()).unwrap(), b);
    }

    #[test]
    fn rejects_strictness_violations() {
        let bad = [
            MINIMAL.replace(r#""logIndex":"1","logId""#, r#""logIndex":1,"logId""#),
            MINIMAL.replace(r#""logIndex":"1","logId""#, r#""logIndex":"-1","logId""#),
            MINIMAL.replace(r#""signature":"AQI=""#, r#""signature":"AQI""#),
            MINIMAL.replace(r#""hint":"k""#, r#""hint":"k","extra":1"#),
            MINIMAL.replace(r#""publicKey":{"hint":"k"},"#, r#""publicKey":{"hint":"k"},"certificate":{"rawBytes":"AA=="},"#),
            MINIMAL.replace(r#""publicKey":{"hint":"k"},"#, ""),
            MINIMAL.replace(r#","messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AA=="},"signature":"AQI="}"#, ""),
        ];
        for json in &bad {
            assert!(
                Bundle::from_json(json.as_bytes()).is_err(),
                "accepted {json}"
            );
        }
    }

    #[test]
    fn converts_a_rekor_v1_response_entry() {
        use crate::rekor_v1::{InclusionProof as V1Proof, LogEntry, Verification};
        let body = br#"{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{}}"#;
        let entry = LogEntry {
            body: crate::encoding::encode_base64(body),
            integrated_time: 1712085549,
            log_id: "c0d23d6a".into(),
            log_index: 25915956,
            verification: Verification {
                inclusion_proof: V1Proof {
                    checkpoint: "cp\n".into(),
                    hashes: vec!["00ff".into()],
                    log_index: 25901137,
                    root_hash: "ab".into(),
                    tree_size: 25901138,
                },
                signed_entry_timestamp: "AQI=".into(),
            },
        };
        let tle = TransparencyLogEntry::from_rekor_v1(&entry).unwrap();
        assert_eq!(tle.log_id.key_id, [0xc0, 0xd2, 0x3d, 0x6a]);
        assert_eq!(
            (
                tle.kind_version.kind.as_str(),
                tle.kind_version.version.as_str()
            ),
            ("hashedrekord", "0.0.1")
        );
        assert_eq!(tle.canonicalized_body, body);
        let proof = tle.inclusion_proof.as_ref().unwrap();
        assert_eq!((proof.log_index, proof.tree_size), (25901137, 25901138));
        assert_eq!(proof.hashes, vec![vec![0x00, 0xff]]);
        assert_eq!(
            tle.inclusion_promise.unwrap().signed_entry_timestamp,
            [1, 2]
        );
        let bad = LogEntry {
            log_id: "zz".into(),
            ..entry
        };
        assert_eq!(
            TransparencyLogEntry::from_rekor_v1(&bad),
            Err(LogEntryConversionError::Encoding("logID", "hex"))
        );
    }

    #[test]
    fn unknown_media_type_parses_but_has_no_version() {
        let b = Bundle::from_json(
            MINIMAL
                .replace("bundle.v0.3+json", "bundle+json;version=99.9")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(b.version(), None);
    }

    /// Every conformance bundle that is not deliberately malformed parses, and re-serialising
    /// it gives the same JSON value (modulo `inclusionPromise: null`, which we omit, and
    /// line-wrapped base64).
    #[test]
    fn conformance_bundles_round_trip() {
        let Some(dir) = cases_dir() else { return };
        let deliberately_malformed = [
            "bundle-malformed-json_fail",
            "bundle-invalid-base64-signature_fail",
            "bundle-negative-log-index_fail",
        ];
        let mut parsed = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let Ok(bytes) = std::fs::read(path.join("bundle.sigstore.json")) else {
                continue;
            };
            let result = Bundle::from_json(&bytes);
            if deliberately_malformed.contains(&name.as_str()) {
                assert!(result.is_err(), "{name} should not parse");
                continue;
            }
            let bundle = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut original: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            strip_nulls(&mut original);
            let ours: serde_json::Value = serde_json::from_str(&bundle.to_json()).unwrap();
            assert_eq!(
                Bundle::from_json(bundle.to_json().as_bytes()).unwrap(),
                bundle
            );
            // This one wraps a base64 value in lines; we write it unwrapped.
            if name != "rekor2-timestamp-with-incorrect-time_fail" {
                assert_eq!(ours, original, "{name} does not round-trip");
            }
            parsed += 1;
        }
        assert!(parsed >= 60, "only {parsed} bundles parsed");
    }

    fn strip_nulls(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                map.values_mut().for_each(strip_nulls);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
            _ => {}
        }
    }
}
