//! Rekor v1 API bodies: proposed entries (hashedrekord and dsse 0.0.1), their canonical
//! bodies (the Merkle leaves), the LogEntry response and the signed-entry-timestamp payload.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::canonical_json::to_canonical_vec;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProposedEntryError {
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    #[error("unsupported entry kind {0:?} (supported: hashedrekord, dsse)")]
    UnknownKind(String),
    #[error("unsupported {kind} apiVersion {version:?} (supported: 0.0.1)")]
    UnknownVersion { kind: String, version: String },
    #[error("invalid {kind} spec: {message}")]
    BadSpec { kind: &'static str, message: String },
}

/// A parsed, not yet validated, submission to `POST /api/v1/log/entries`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposedEntry {
    HashedRekord(HashedRekordSpec),
    Dsse(DsseProposedSpec),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    spec: Value,
}

impl ProposedEntry {
    pub fn from_json(bytes: &[u8]) -> Result<ProposedEntry, ProposedEntryError> {
        let env: Envelope =
            serde_json::from_slice(bytes).map_err(|e| ProposedEntryError::Json(e.to_string()))?;
        Self::from_parts(&env.kind, &env.api_version, env.spec)
    }

    pub fn from_value(value: Value) -> Result<ProposedEntry, ProposedEntryError> {
        let env: Envelope =
            serde_json::from_value(value).map_err(|e| ProposedEntryError::Json(e.to_string()))?;
        Self::from_parts(&env.kind, &env.api_version, env.spec)
    }

    fn from_parts(
        kind: &str,
        version: &str,
        spec: Value,
    ) -> Result<ProposedEntry, ProposedEntryError> {
        let check_version = |k: &str| {
            if version == "0.0.1" {
                Ok(())
            } else {
                Err(ProposedEntryError::UnknownVersion {
                    kind: k.to_string(),
                    version: version.to_string(),
                })
            }
        };
        match kind {
            "hashedrekord" => {
                check_version(kind)?;
                let spec =
                    serde_json::from_value(spec).map_err(|e| ProposedEntryError::BadSpec {
                        kind: "hashedrekord",
                        message: e.to_string(),
                    })?;
                Ok(ProposedEntry::HashedRekord(spec))
            }
            "dsse" => {
                check_version(kind)?;
                let spec =
                    serde_json::from_value(spec).map_err(|e| ProposedEntryError::BadSpec {
                        kind: "dsse",
                        message: e.to_string(),
                    })?;
                Ok(ProposedEntry::Dsse(spec))
            }
            other => Err(ProposedEntryError::UnknownKind(other.to_string())),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashedRekordSpec {
    pub signature: HashedRekordSignature,
    pub data: HashedRekordData,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashedRekordSignature {
    /// Base64 signature bytes.
    pub content: String,
    #[serde(rename = "publicKey")]
    pub public_key: PublicKeyContent,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyContent {
    /// Base64 of a PEM certificate or PEM public key.
    pub content: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashedRekordData {
    pub hash: HashValue,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashValue {
    pub algorithm: String,
    /// Lowercase hex digest.
    pub value: String,
}

/// The dsse 0.0.1 request spec. Clients also send the computed fields as null; they are
/// accepted only when null, because the server computes them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DsseProposedSpec {
    #[serde(rename = "proposedContent")]
    pub proposed_content: DsseProposedContent,
    #[serde(default)]
    pub signatures: Option<NullOnly>,
    #[serde(default, rename = "envelopeHash")]
    pub envelope_hash: Option<NullOnly>,
    #[serde(default, rename = "payloadHash")]
    pub payload_hash: Option<NullOnly>,
}

/// A field that may only be absent or null.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NullOnly {}

impl<'de> Deserialize<'de> for NullOnly {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "computed fields must not be supplied",
        ))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DsseProposedContent {
    /// The DSSE envelope as a JSON string.
    pub envelope: String,
    /// Base64 PEM certificates or public keys.
    pub verifiers: Vec<String>,
}

/// Canonical hashedrekord 0.0.1 body from already-normalised parts.
pub fn hashedrekord_body(
    algorithm: &str,
    digest_hex: &str,
    signature_b64: &str,
    public_key_b64_pem: &str,
) -> Vec<u8> {
    to_canonical_vec(&json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": digest_hex}},
            "signature": {"content": signature_b64, "publicKey": {"content": public_key_b64_pem}}
        }
    }))
}

/// One signature of a dsse 0.0.1 canonical body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsseBodySignature {
    pub signature_b64: String,
    pub verifier_b64_pem: String,
}

/// Canonical dsse 0.0.1 body; signatures are sorted by signature string as Rekor does.
pub fn dsse_body(
    envelope_sha256_hex: &str,
    payload_sha256_hex: &str,
    signatures: &[DsseBodySignature],
) -> Vec<u8> {
    let mut sigs: Vec<&DsseBodySignature> = signatures.iter().collect();
    sigs.sort_by(|a, b| a.signature_b64.cmp(&b.signature_b64));
    let sigs: Vec<Value> = sigs
        .iter()
        .map(|s| json!({"signature": s.signature_b64, "verifier": s.verifier_b64_pem}))
        .collect();
    to_canonical_vec(&json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": envelope_sha256_hex},
            "payloadHash": {"algorithm": "sha256", "value": payload_sha256_hex},
            "signatures": sigs
        }
    }))
}

/// The bytes a signed entry timestamp signs.
pub fn set_payload(
    body_b64: &str,
    integrated_time: i64,
    log_id_hex: &str,
    log_index: u64,
) -> Vec<u8> {
    to_canonical_vec(&json!({
        "body": body_b64,
        "integratedTime": integrated_time,
        "logID": log_id_hex,
        "logIndex": log_index,
    }))
}

/// `{entryID: LogEntry}` as Rekor v1 returns it.
pub type LogEntryMap = BTreeMap<String, LogEntry>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub body: String,
    pub integrated_time: i64,
    #[serde(rename = "logID")]
    pub log_id: String,
    pub log_index: u64,
    pub verification: Verification,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub inclusion_proof: InclusionProof,
    pub signed_entry_timestamp: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProof {
    pub checkpoint: String,
    pub hashes: Vec<String>,
    pub log_index: u64,
    pub root_hash: String,
    pub tree_size: u64,
}

/// `GET /api/v1/log`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogInfo {
    pub root_hash: String,
    pub tree_size: u64,
    pub signed_tree_head: String,
    #[serde(rename = "treeID")]
    pub tree_id: String,
    #[serde(default)]
    pub inactive_shards: Vec<Value>,
}

/// `GET /api/v1/log/proof`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistencyProof {
    pub root_hash: String,
    pub hashes: Vec<String>,
}

/// `{code, message}` error body used by every sigil endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: u16,
    pub message: String,
}

/// `POST /api/v1/log/entries/retrieve`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetrieveRequest {
    #[serde(default, rename = "entryUUIDs")]
    pub entry_uuids: Vec<String>,
    #[serde(default)]
    pub log_indexes: Vec<u64>,
    #[serde(default)]
    pub entries: Vec<Value>,
}

/// `POST /api/v1/index/retrieve`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchIndexRequest {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub public_key: Option<SearchPublicKey>,
    #[serde(default)]
    pub hash: Option<String>,
    #[serde(default)]
    pub operator: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchPublicKey {
    pub format: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hashedrekord_and_rejects_unknowns() {
        let body = br#"{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"signature":{"content":"AA==","publicKey":{"content":"AA=="}},"data":{"hash":{"algorithm":"sha256","value":"00"}}}}"#;
        assert!(matches!(
            ProposedEntry::from_json(body),
            Ok(ProposedEntry::HashedRekord(_))
        ));
        let v2 = br#"{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{}}"#;
        assert!(matches!(
            ProposedEntry::from_json(v2),
            Err(ProposedEntryError::UnknownVersion { .. })
        ));
        let kind = br#"{"apiVersion":"0.0.1","kind":"rpm","spec":{}}"#;
        assert_eq!(
            ProposedEntry::from_json(kind),
            Err(ProposedEntryError::UnknownKind("rpm".into()))
        );
        assert!(matches!(
            ProposedEntry::from_json(b"{"),
            Err(ProposedEntryError::Json(_))
        ));
    }

    #[test]
    fn dsse_accepts_null_computed_fields_only() {
        let ok = br#"{"apiVersion":"0.0.1","kind":"dsse","spec":{"proposedContent":{"envelope":"{}","verifiers":["AA=="]},"signatures":null,"envelopeHash":null,"payloadHash":null}}"#;
        assert!(matches!(
            ProposedEntry::from_json(ok),
            Ok(ProposedEntry::Dsse(_))
        ));
        let bad = br#"{"apiVersion":"0.0.1","kind":"dsse","spec":{"proposedContent":{"envelope":"{}","verifiers":[]},"payloadHash":{"algorithm":"sha256","value":"00"}}}"#;
        assert!(matches!(
            ProposedEntry::from_json(bad),
            Err(ProposedEntryError::BadSpec { .. })
        ));
    }

    #[test]
    fn canonical_bodies_have_the_rekor_shape() {
        let b = hashedrekord_body("sha256", "ab", "c2ln", "cGVt");
        assert_eq!(
            String::from_utf8(b).unwrap(),
            r#"{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"sha256","value":"ab"}},"signature":{"content":"c2ln","publicKey":{"content":"cGVt"}}}}"#
        );
        let d = dsse_body(
            "ee",
            "pp",
            &[
                DsseBodySignature {
                    signature_b64: "b".into(),
                    verifier_b64_pem: "v2".into(),
                },
                DsseBodySignature {
                    signature_b64: "a".into(),
                    verifier_b64_pem: "v1".into(),
                },
            ],
        );
        assert_eq!(
            String::from_utf8(d).unwrap(),
            r#"{"apiVersion":"0.0.1","kind":"dsse","spec":{"envelopeHash":{"algorithm":"sha256","value":"ee"},"payloadHash":{"algorithm":"sha256","value":"pp"},"signatures":[{"signature":"a","verifier":"v1"},{"signature":"b","verifier":"v2"}]}}"#
        );
        assert_eq!(
            String::from_utf8(set_payload("Ym9keQ==", 12, "abcd", 3)).unwrap(),
            r#"{"body":"Ym9keQ==","integratedTime":12,"logID":"abcd","logIndex":3}"#
        );
    }
}
