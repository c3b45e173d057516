//! cosign's formats for signatures and attestations attached to container images
//! (interop doc §8): the bundle-as-referrer layout cosign v3 writes, the legacy tag layout
//! (simple-signing payloads and DSSE layers with cosign's annotations), the in-toto
//! statements of image signatures and attestations, and cosign's predicate type names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bundle::{InclusionPromise, KindVersion, LogId, TransparencyLogEntry};
use crate::intoto::{STATEMENT_V0_1, STATEMENT_V1, Statement, Subject};
use crate::oci::{Descriptor, Digest, EMPTY_CONTENT, EMPTY_V1, IMAGE_CONFIG_V1, MANIFEST_V1};

/// The predicate type of a plain image signature in the bundle layout.
pub const SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Media type of a Sigstore bundle v0.3 stored in a registry (artifact and layer type).
pub const BUNDLE_V0_3_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Any Sigstore bundle media type starts with this.
pub const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";

/// Referrer manifest annotations.
pub const ANNOTATION_BUNDLE_CONTENT: &str = "dev.sigstore.bundle.content";
pub const ANNOTATION_BUNDLE_PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// Legacy layout: layer media types and annotations.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const DSSE_LAYER_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
pub const ANNOTATION_CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
pub const ANNOTATION_CHAIN: &str = "dev.sigstore.cosign/chain";
pub const ANNOTATION_BUNDLE: &str = "dev.sigstore.cosign/bundle";
pub const ANNOTATION_RFC3161: &str = "dev.sigstore.cosign/rfc3161timestamp";
pub const ANNOTATION_PREDICATE_TYPE: &str = "predicateType";
/// Artifact type of the older OCI 1.1 referrer mode (simple-signing layer as a referrer).
pub const LEGACY_REFERRER_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CosignFormatError {
    #[error("simple-signing payload is not valid: {0}")]
    SimpleSigning(String),
    #[error("simple-signing payload type is {0:?}, not {SIMPLE_SIGNING_TYPE:?}")]
    SimpleSigningType(String),
    #[error("cosign bundle annotation is not valid: {0}")]
    BundleAnnotation(String),
    #[error("unknown predicate type {0:?}: use one of {known} or a URI", known = PREDICATE_NAMES.join(", "))]
    PredicateType(String),
    #[error("predicate is not JSON: {0}")]
    PredicateJson(String),
}

// ---- in-toto statements --------------------------------------------------------------------

/// The statement of an image signature in the bundle layout, as cosign v3 writes it: one
/// subject with no name, the image digest, and the `-a` annotations (always present).
pub fn image_signature_statement(
    image: &Digest,
    annotations: &BTreeMap<String, String>,
) -> Statement {
    let mut subject = Subject::sha256(None, image.hex());
    subject.annotations = Some(
        annotations
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    );
    Statement {
        statement_type: STATEMENT_V1.to_string(),
        subject: vec![subject],
        predicate_type: SIGN_PREDICATE_TYPE.to_string(),
        predicate: Some(Value::Object(Default::default())),
    }
}

/// An attestation statement as cosign writes it: v0.1, the subject named after the
/// repository (or file) it is about.
pub fn attestation_statement(
    subject_name: &str,
    sha256_hex: &str,
    predicate_type: &str,
    predicate: Value,
) -> Statement {
    Statement {
        statement_type: STATEMENT_V0_1.to_string(),
        subject: vec![Subject::sha256(Some(subject_name.to_string()), sha256_hex)],
        predicate_type: predicate_type.to_string(),
        predicate: Some(predicate),
    }
}

/// cosign's `--type` short names and the predicate types they stand for.
const PREDICATE_TYPES: &[(&str, &str)] = &[
    ("custom", "https://cosign.sigstore.dev/attestation/v1"),
    ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
    ("link", "https://in-toto.io/Link/v1"),
    ("spdx", "https://spdx.dev/Document"),
    ("spdxjson", "https://spdx.dev/Document"),
    ("cyclonedx", "https://cyclonedx.org/bom"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
    ("openvex", "https://openvex.dev/ns"),
];
const PREDICATE_NAMES: &[&str] = &[
    "custom",
    "slsaprovenance",
    "slsaprovenance02",
    "slsaprovenance1",
    "link",
    "spdx",
    "spdxjson",
    "cyclonedx",
    "vuln",
    "openvex",
];

/// The predicate type for a `--type` value: a short name, or a URI used verbatim.
pub fn predicate_type(name: &str) -> Result<String, CosignFormatError> {
    if let Some((_, uri)) = PREDICATE_TYPES.iter().find(|(n, _)| *n == name) {
        return Ok((*uri).to_string());
    }
    let is_uri = name.split_once(':').is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && !rest.is_empty()
    }) && !name.contains(char::is_whitespace);
    if is_uri {
        Ok(name.to_string())
    } else {
        Err(CosignFormatError::PredicateType(name.to_string()))
    }
}

/// The statement's predicate from the predicate file, as cosign builds it: `custom` wraps
/// the text with a timestamp, `spdx` (tag-value) is carried as a string, everything else
/// must be JSON and is carried as is.
pub fn predicate_value(
    type_name: &str,
    content: &[u8],
    now_rfc3339: &str,
) -> Result<Value, CosignFormatError> {
    match type_name {
        "custom" => Ok(serde_json::json!({
            "Data": String::from_utf8_lossy(content),
            "Timestamp": now_rfc3339,
        })),
        "spdx" => match serde_json::from_slice(content) {
            Ok(v) => Ok(v),
            Err(_) => Ok(Value::String(String::from_utf8_lossy(content).into_owned())),
        },
        _ => serde_json::from_slice(content)
            .map_err(|e| CosignFormatError::PredicateJson(e.to_string())),
    }
}

// ---- the bundle layout (OCI 1.1 referrers) -------------------------------------------------

/// The referrer manifest that stores one bundle: empty config, one layer with the bundle,
/// `subject` = the signed image, annotations naming the content and predicate type.
pub fn bundle_referrer_manifest(
    subject: &Descriptor,
    bundle_json: &[u8],
    content: &str,
    predicate_type: &str,
    created_rfc3339: &str,
) -> crate::oci::Manifest {
    let mut config = Descriptor::new(EMPTY_V1, EMPTY_CONTENT);
    config.artifact_type = None;
    let annotations = BTreeMap::from([
        (ANNOTATION_BUNDLE_CONTENT.to_string(), content.to_string()),
        (
            ANNOTATION_BUNDLE_PREDICATE_TYPE.to_string(),
            predicate_type.to_string(),
        ),
        (ANNOTATION_CREATED.to_string(), created_rfc3339.to_string()),
    ]);
    crate::oci::Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_V1.to_string()),
        artifact_type: Some(BUNDLE_V0_3_MEDIA_TYPE.to_string()),
        config,
        layers: vec![Descriptor::new(BUNDLE_V0_3_MEDIA_TYPE, bundle_json)],
        subject: Some(subject_descriptor(subject)),
        annotations: Some(annotations),
        extra: BTreeMap::new(),
    }
}

/// A subject reference carries only what identifies the manifest.
fn subject_descriptor(d: &Descriptor) -> Descriptor {
    Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        artifact_type: None,
        annotations: None,
        platform: None,
        extra: BTreeMap::new(),
    }
}

/// The entry the referrers tag schema index holds for a referrer manifest: its descriptor
/// with the artifact type and the manifest's annotations (the distribution spec asks for them).
pub fn referrer_index_entry(manifest: &crate::oci::Manifest, manifest_json: &[u8]) -> Descriptor {
    let mut entry = Descriptor::new(MANIFEST_V1, manifest_json);
    entry.artifact_type = manifest
        .artifact_type
        .clone()
        .or_else(|| Some(manifest.config.media_type.clone()));
    entry.annotations = manifest.annotations.clone();
    entry
}

// ---- the legacy tag layout -----------------------------------------------------------------

/// The simple-signing payload of a legacy image signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimpleSigning {
    pub critical: Critical,
    /// The `-a` annotations; `null` when there are none.
    pub optional: Option<BTreeMap<String, Value>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: Image,
    #[serde(rename = "type")]
    pub signature_type: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Image {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl SimpleSigning {
    pub fn new(
        docker_reference: &str,
        image: &Digest,
        annotations: &BTreeMap<String, String>,
    ) -> SimpleSigning {
        SimpleSigning {
            critical: Critical {
                identity: Identity {
                    docker_reference: docker_reference.to_string(),
                },
                image: Image {
                    docker_manifest_digest: image.to_string(),
                },
                signature_type: SIMPLE_SIGNING_TYPE.to_string(),
            },
            optional: (!annotations.is_empty()).then(|| {
                annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect()
            }),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<SimpleSigning, CosignFormatError> {
        let s: SimpleSigning = serde_json::from_slice(bytes)
            .map_err(|e| CosignFormatError::SimpleSigning(e.to_string()))?;
        if s.critical.signature_type != SIMPLE_SIGNING_TYPE {
            return Err(CosignFormatError::SimpleSigningType(
                s.critical.signature_type,
            ));
        }
        Ok(s)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("payloads serialise")
    }
}

/// `dev.sigstore.cosign/bundle`: the Rekor v1 entry a legacy signature was logged as, with
/// its signed entry timestamp (no inclusion proof).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RekorBundle {
    #[serde(
        rename = "SignedEntryTimestamp",
        with = "crate::encoding::base64_bytes"
    )]
    pub signed_entry_timestamp: Vec<u8>,
    #[serde(rename = "Payload")]
    pub payload: RekorPayload,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RekorPayload {
    /// Standard base64 of the canonicalized entry body.
    pub body: String,
    #[serde(rename = "integratedTime")]
    pub integrated_time: i64,
    #[serde(rename = "logIndex")]
    pub log_index: u64,
    /// Hex of the log ID.
    #[serde(rename = "logID")]
    pub log_id: String,
}

impl RekorBundle {
    pub fn parse(text: &str) -> Result<RekorBundle, CosignFormatError> {
        serde_json::from_str(text).map_err(|e| CosignFormatError::BundleAnnotation(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("bundles serialise")
    }

    /// From a bundle log entry (which carries everything this annotation needs).
    pub fn from_log_entry(entry: &TransparencyLogEntry) -> Option<RekorBundle> {
        Some(RekorBundle {
            signed_entry_timestamp: entry
                .inclusion_promise
                .as_ref()?
                .signed_entry_timestamp
                .clone(),
            payload: RekorPayload {
                body: crate::encoding::encode_base64(&entry.canonicalized_body),
                integrated_time: entry.integrated_time,
                log_index: entry.log_index,
                log_id: hex::encode(&entry.log_id.key_id),
            },
        })
    }

    /// The bundle form of this entry: an inclusion promise and no inclusion proof.
    pub fn to_log_entry(&self) -> Result<TransparencyLogEntry, CosignFormatError> {
        let bad = |m: &str| CosignFormatError::BundleAnnotation(m.to_string());
        let body = crate::encoding::decode_base64(&self.payload.body)
            .map_err(|_| bad("Payload.body is not base64"))?;
        let key_id =
            hex::decode(&self.payload.log_id).map_err(|_| bad("Payload.logID is not hex"))?;
        #[derive(Deserialize)]
        struct KindOnly {
            kind: String,
            #[serde(rename = "apiVersion")]
            api_version: String,
        }
        let kind: KindOnly = serde_json::from_slice(&body)
            .map_err(|_| bad("Payload.body has no kind/apiVersion"))?;
        Ok(TransparencyLogEntry {
            log_index: self.payload.log_index,
            log_id: LogId { key_id },
            kind_version: KindVersion {
                kind: kind.kind,
                version: kind.api_version,
            },
            integrated_time: self.payload.integrated_time,
            inclusion_promise: Some(InclusionPromise {
                signed_entry_timestamp: self.signed_entry_timestamp.clone(),
            }),
            inclusion_proof: None,
            canonicalized_body: body,
        })
    }
}

/// The annotations of one legacy layer (signature or attestation).
pub struct LegacyLayer<'a> {
    /// Base64 signature over the payload; empty for attestations (the signature is in the
    /// DSSE envelope).
    pub signature_b64: &'a str,
    pub certificate_pem: Option<&'a str>,
    pub rekor_bundle: Option<&'a RekorBundle>,
    pub predicate_type: Option<&'a str>,
}

impl LegacyLayer<'_> {
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::from([(
            ANNOTATION_SIGNATURE.to_string(),
            self.signature_b64.to_string(),
        )]);
        if let Some(cert) = self.certificate_pem {
            a.insert(ANNOTATION_CERTIFICATE.to_string(), cert.to_string());
            // cosign v3 writes an empty chain: the trusted root holds the intermediates.
            a.insert(ANNOTATION_CHAIN.to_string(), String::new());
        }
        if let Some(bundle) = self.rekor_bundle {
            a.insert(ANNOTATION_BUNDLE.to_string(), bundle.to_json());
        }
        if let Some(p) = self.predicate_type {
            a.insert(ANNOTATION_PREDICATE_TYPE.to_string(), p.to_string());
        }
        a
    }
}

/// The manifest of a legacy `.sig`/`.att` image: a config listing the layers as its
/// uncompressed layers (their digests are their diff IDs), and the layers.
pub fn legacy_manifest(layers: Vec<Descriptor>) -> (crate::oci::Manifest, Vec<u8>) {
    let config = legacy_config(&layers);
    let manifest = crate::oci::Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_V1.to_string()),
        artifact_type: None,
        config: Descriptor::new(IMAGE_CONFIG_V1, &config),
        layers,
        subject: None,
        annotations: None,
        extra: BTreeMap::new(),
    };
    (manifest, config)
}

fn legacy_config(layers: &[Descriptor]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    }))
    .expect("configs serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Manifest;

    fn image() -> Digest {
        Digest::sha256_of(b"image manifest")
    }

    #[test]
    fn image_signature_statement_is_cosigns_shape() {
        let s = image_signature_statement(&image(), &BTreeMap::new());
        let v: Value = serde_json::from_slice(&s.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"digest": {"sha256": image().hex()}, "annotations": {}}],
                "predicateType": "https://sigstore.dev/cosign/sign/v1",
                "predicate": {}
            })
        );
        let with = image_signature_statement(
            &image(),
            &BTreeMap::from([("env".to_string(), "prod".to_string())]),
        );
        assert_eq!(with.subject[0].annotations.as_ref().unwrap()["env"], "prod");
    }

    #[test]
    fn predicate_type_names_and_uris() {
        assert_eq!(
            predicate_type("slsaprovenance").unwrap(),
            "https://slsa.dev/provenance/v0.2"
        );
        assert_eq!(
            predicate_type("slsaprovenance1").unwrap(),
            "https://slsa.dev/provenance/v1"
        );
        assert_eq!(
            predicate_type("spdxjson").unwrap(),
            "https://spdx.dev/Document"
        );
        assert_eq!(
            predicate_type("cyclonedx").unwrap(),
            "https://cyclonedx.org/bom"
        );
        assert_eq!(
            predicate_type("vuln").unwrap(),
            "https://cosign.sigstore.dev/attestation/vuln/v1"
        );
        assert_eq!(
            predicate_type("custom").unwrap(),
            "https://cosign.sigstore.dev/attestation/v1"
        );
        assert_eq!(
            predicate_type("https://example.com/p/v1").unwrap(),
            "https://example.com/p/v1"
        );
        assert_eq!(predicate_type("urn:x:y").unwrap(), "urn:x:y");
        for bad in ["sbom", "", "no scheme", ":x", "https:"] {
            assert!(predicate_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn predicate_values() {
        let custom = predicate_value("custom", b"hello", "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            custom,
            serde_json::json!({"Data": "hello", "Timestamp": "2026-01-01T00:00:00Z"})
        );
        assert_eq!(
            predicate_value("spdx", b"SPDXVersion: SPDX-2.3", "t").unwrap(),
            Value::String("SPDXVersion: SPDX-2.3".into())
        );
        assert!(predicate_value("slsaprovenance1", b"not json", "t").is_err());
        assert_eq!(
            predicate_value("cyclonedx", br#"{"bomFormat":"CycloneDX"}"#, "t").unwrap()["bomFormat"],
            "CycloneDX"
        );
    }

    #[test]
    fn referrer_manifest_names_subject_bundle_and_predicate() {
        let subject = Descriptor::new(MANIFEST_V1, b"image manifest");
        let bundle = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#;
        let m = bundle_referrer_manifest(
            &subject,
            bundle,
            "dsse-envelope",
            SIGN_PREDICATE_TYPE,
            "2026-11-30T00:00:00Z",
        );
        let json = m.to_json();
        let back = Manifest::from_json(&json).unwrap();
        assert_eq!(back.artifact_type.as_deref(), Some(BUNDLE_V0_3_MEDIA_TYPE));
        assert_eq!(back.config.media_type, EMPTY_V1);
        assert_eq!(
            back.config.digest.to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(back.layers.len(), 1);
        assert!(back.layers[0].digest.matches(bundle));
        assert_eq!(back.layers[0].size, bundle.len() as u64);
        assert_eq!(back.subject.as_ref().unwrap().digest, subject.digest);
        assert_eq!(
            back.annotations.as_ref().unwrap()[ANNOTATION_BUNDLE_PREDICATE_TYPE],
            SIGN_PREDICATE_TYPE
        );
        let entry = referrer_index_entry(&back, &json);
        assert!(entry.digest.matches(&json));
        assert_eq!(entry.artifact_type.as_deref(), Some(BUNDLE_V0_3_MEDIA_TYPE));
        assert_eq!(
            entry.annotation(ANNOTATION_BUNDLE_CONTENT),
            Some("dsse-envelope")
        );
    }

    #[test]
    fn simple_signing_payload_is_byte_exact() {
        let p = SimpleSigning::new("registry.example/app", &image(), &BTreeMap::new());
        let expected = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"registry.example/app"}},"image":{{"docker-manifest-digest":"{}"}},"type":"cosign container image signature"}},"optional":null}}"#,
            image()
        );
        assert_eq!(String::from_utf8(p.to_json()).unwrap(), expected);
        assert_eq!(SimpleSigning::parse(expected.as_bytes()).unwrap(), p);
        let annotated = SimpleSigning::new(
            "r/a",
            &image(),
            &BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
        );
        let text = String::from_utf8(annotated.to_json()).unwrap();
        assert!(text.ends_with(r#""optional":{"a":"1","b":"2"}}"#), "{text}");
        let wrong = expected.replace("cosign container image signature", "other");
        assert!(matches!(
            SimpleSigning::parse(wrong.as_bytes()),
            Err(CosignFormatError::SimpleSigningType(_))
        ));
    }

    #[test]
    fn rekor_bundle_annotation_round_trips_through_a_log_entry() {
        let body = br#"{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{}}"#;
        let annotation = RekorBundle {
            signed_entry_timestamp: vec![1, 2, 3],
            payload: RekorPayload {
                body: crate::encoding::encode_base64(body),
                integrated_time: 1_700_000_000,
                log_index: 7,
                log_id: "ab".repeat(32),
            },
        };
        let text = annotation.to_json();
        assert_eq!(
            text,
            format!(
                r#"{{"SignedEntryTimestamp":"AQID","Payload":{{"body":"{}","integratedTime":1700000000,"logIndex":7,"logID":"{}"}}}}"#,
                crate::encoding::encode_base64(body),
                "ab".repeat(32)
            )
        );
        let entry = RekorBundle::parse(&text).unwrap().to_log_entry().unwrap();
        assert_eq!(entry.kind_version.kind, "hashedrekord");
        assert_eq!(entry.canonicalized_body, body);
        assert_eq!(entry.log_id.key_id, vec![0xab; 32]);
        assert!(entry.inclusion_proof.is_none());
        assert_eq!(RekorBundle::from_log_entry(&entry).unwrap(), annotation);
        assert!(RekorBundle::parse(r#"{"SignedEntryTimestamp":"AQID"}"#).is_err());
    }

    #[test]
    fn legacy_layers_and_manifest() {
        let annotations = LegacyLayer {
            signature_b64: "c2ln",
            certificate_pem: Some("-----BEGIN CERTIFICATE-----\n"),
            rekor_bundle: None,
            predicate_type: None,
        }
        .annotations();
        assert_eq!(annotations[ANNOTATION_SIGNATURE], "c2ln");
        assert_eq!(annotations[ANNOTATION_CHAIN], "");
        assert!(!annotations.contains_key(ANNOTATION_BUNDLE));
        let layer = Descriptor::new(SIMPLE_SIGNING_MEDIA_TYPE, b"payload");
        let (manifest, config) = legacy_manifest(vec![layer.clone()]);
        assert!(manifest.config.digest.matches(&config));
        let config: Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            layer.digest.to_string().as_str()
        );
    }
}
